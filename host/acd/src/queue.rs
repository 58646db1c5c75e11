//! Queues: configuration and the ordered list of waiting calls.

use serde::{Deserialize, Serialize};

use super::model::CallId;
use super::strategy::Strategy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    #[serde(default)]
    pub strategy: Strategy,
    /// Longest wait before overflow, seconds (the router may set its own).
    pub max_wait_secs: Option<u32>,
    /// "queue:NAME" or a number/URI to forward to, when the wait is too long,
    /// the queue is full, or no agent is logged in.
    pub overflow: Option<String>,
    /// Most calls waiting; further callers overflow (or get 486).
    pub max_length: Option<u32>,
    /// Let calls join when no member is logged in.
    #[serde(default = "yes")]
    pub join_empty: bool,
    /// Send waiting calls on (overflow) when the last member logs out.
    #[serde(default)]
    pub leave_when_empty: bool,
    /// Seconds an agent's phone rings before ring-no-answer.
    #[serde(default = "ring_timeout")]
    pub ring_timeout_secs: u32,
    /// After-call work, seconds.
    #[serde(default)]
    pub wrap_up_secs: u32,
    /// Ask the router plugin to rank the candidates.
    #[serde(default)]
    pub plugin_ranking: bool,
    /// Answer-time target for service level, seconds.
    #[serde(default = "sl_threshold")]
    pub service_level_secs: u32,
    /// Prompt looped to waiting callers (with the media relay). A queue with
    /// music or announcements answers its callers when they join it.
    pub music_on_hold: Option<String>,
    /// Tell waiting callers their position and estimated wait this often,
    /// seconds (0: never).
    #[serde(default)]
    pub announce_every_secs: u32,
}

fn yes() -> bool {
    true
}
fn ring_timeout() -> u32 {
    15
}
fn sl_threshold() -> u32 {
    20
}

impl QueueConfig {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            strategy: Strategy::default(),
            max_wait_secs: None,
            overflow: None,
            max_length: None,
            join_empty: true,
            leave_when_empty: false,
            music_on_hold: None,
            announce_every_secs: 0,
            ring_timeout_secs: ring_timeout(),
            wrap_up_secs: 0,
            plugin_ranking: false,
            service_level_secs: sl_threshold(),
        }
    }
}

/// A call waiting in a queue. Order: priority (high first), then the time it
/// first entered the queue, so a re-queued caller keeps its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub call_id: CallId,
    pub priority: i32,
    pub entered_ms: u64,
    pub skills: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Queue {
    pub config: QueueConfig,
    pub waiting: Vec<Waiting>,
    pub last_offered: Option<String>,
}

impl Queue {
    pub fn new(config: QueueConfig) -> Self {
        Self {
            config,
            waiting: Vec::new(),
            last_offered: None,
        }
    }

    /// Insert in order; returns the 1-based position.
    pub fn insert(&mut self, w: Waiting) -> usize {
        let pos = self
            .waiting
            .iter()
            .position(|o| {
                (w.priority, std::cmp::Reverse(w.entered_ms))
                    > (o.priority, std::cmp::Reverse(o.entered_ms))
            })
            .unwrap_or(self.waiting.len());
        self.waiting.insert(pos, w);
        pos + 1
    }

    /// How long the longest-waiting call has waited (0 when none waits).
    pub fn longest_wait_ms(&self, now_ms: u64) -> u64 {
        self.waiting
            .iter()
            .map(|w| now_ms.saturating_sub(w.entered_ms))
            .max()
            .unwrap_or(0)
    }

    pub fn remove(&mut self, call_id: &str) -> Option<Waiting> {
        let i = self.waiting.iter().position(|w| w.call_id == call_id)?;
        Some(self.waiting.remove(i))
    }

    pub fn full(&self) -> bool {
        self.config
            .max_length
            .is_some_and(|m| self.waiting.len() >= m as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, priority: i32, entered_ms: u64) -> Waiting {
        Waiting {
            call_id: id.into(),
            priority,
            entered_ms,
            skills: vec![],
        }
    }

    #[test]
    fn priority_first_then_arrival() {
        let mut q = Queue::new(QueueConfig::named("q"));
        assert_eq!(q.insert(w("a", 0, 10)), 1);
        assert_eq!(q.insert(w("b", 0, 20)), 2);
        assert_eq!(q.insert(w("vip", 5, 30)), 1);
        // A re-queued call keeps its original place.
        assert_eq!(q.insert(w("early", 0, 5)), 2);
        let order: Vec<&str> = q.waiting.iter().map(|w| w.call_id.as_str()).collect();
        assert_eq!(order, ["vip", "early", "a", "b"]);
    }
}
