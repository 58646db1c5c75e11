//! The core's timers. The core starts and cancels them as it handles
//! events and says when it next needs waking ([`crate::Acd::next_deadline`]);
//! the driver sleeps on that one deadline and calls
//! [`crate::Acd::handle_timeout`]. No task per timer, nothing to cancel
//! elsewhere, and a test moves time by hand.

use std::collections::{BTreeSet, HashMap};

use crate::model::TimerId;

/// Start (or move) a timer.
pub(crate) struct Start {
    pub timer: TimerId,
    pub at_ms: u64,
}

/// Cancel a timer (one that is not running is no error).
pub(crate) struct Cancel {
    pub timer: TimerId,
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    by_deadline: BTreeSet<(u64, TimerId)>,
    deadline_of: HashMap<TimerId, u64>,
}

impl Timers {
    pub fn start(&mut self, s: Start) {
        if let Some(old) = self.deadline_of.insert(s.timer.clone(), s.at_ms) {
            self.by_deadline.remove(&(old, s.timer.clone()));
        }
        self.by_deadline.insert((s.at_ms, s.timer));
    }

    pub fn cancel(&mut self, c: Cancel) {
        if let Some(at) = self.deadline_of.remove(&c.timer) {
            self.by_deadline.remove(&(at, c.timer));
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// The earliest timer due at `now_ms`, taken off the table.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<TimerId> {
        if self.next_deadline()? > now_ms {
            return None;
        }
        let (_, timer) = self.by_deadline.pop_first()?;
        self.deadline_of.remove(&timer);
        Some(timer)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.deadline_of.len()
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (&TimerId, u64)> {
        self.by_deadline.iter().map(|(at, t)| (t, *at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(agent: &str) -> TimerId {
        TimerId::WrapUp {
            agent: agent.into(),
            seq: 1,
        }
    }

    #[test]
    fn timers_fire_in_deadline_order_once_and_a_moved_or_cancelled_one_not_at_its_old_time() {
        let mut t = Timers::default();
        t.start(Start {
            timer: wrap("a"),
            at_ms: 30,
        });
        t.start(Start {
            timer: wrap("b"),
            at_ms: 10,
        });
        t.start(Start {
            timer: wrap("c"),
            at_ms: 20,
        });
        // Moved later; cancelled.
        t.start(Start {
            timer: wrap("b"),
            at_ms: 40,
        });
        t.cancel(Cancel { timer: wrap("c") });
        assert_eq!((t.len(), t.next_deadline()), (2, Some(30)));
        assert_eq!(t.pop_due(29), None);
        assert_eq!(t.pop_due(100), Some(wrap("a")));
        assert_eq!(t.pop_due(100), Some(wrap("b")));
        assert_eq!(
            (t.pop_due(100), t.next_deadline(), t.len()),
            (None, None, 0)
        );
    }
}
