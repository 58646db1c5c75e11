//! Who is watching the event stream: a screen-pop card is built only when
//! someone will see it (the agent's desktop, or a supervisor), so a center
//! without desktops does not pay a plugin call and a CRM lookup per offer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

#[derive(Default)]
pub struct Watchers {
    agents: Mutex<HashMap<String, usize>>,
    supervisors: AtomicUsize,
}

/// Held while a stream is open; dropping it unregisters the watcher.
pub struct Watching {
    watchers: Arc<Watchers>,
    agent: Option<String>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        match &self.agent {
            Some(a) => {
                let mut agents = self.watchers.agents.lock();
                if let Some(n) = agents.get_mut(a) {
                    *n -= 1;
                    if *n == 0 {
                        agents.remove(a);
                    }
                }
            }
            None => {
                self.watchers.supervisors.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl Watchers {
    /// An agent's stream (`Some(agent)`) or one that sees every agent (`None`).
    pub fn watch(self: &Arc<Self>, agent: Option<&str>) -> Watching {
        match agent {
            Some(a) => *self.agents.lock().entry(a.to_owned()).or_default() += 1,
            None => {
                self.supervisors.fetch_add(1, Ordering::AcqRel);
            }
        }
        Watching {
            watchers: self.clone(),
            agent: agent.map(str::to_owned),
        }
    }

    /// Whether a card for `agent` would be seen by anyone.
    pub fn wants(&self, agent: &str) -> bool {
        self.supervisors.load(Ordering::Acquire) > 0 || self.agents.lock().contains_key(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_is_wanted_while_its_agent_or_a_supervisor_watches() {
        let w = Arc::new(Watchers::default());
        assert!(!w.wants("1001"));
        let a = w.watch(Some("1001"));
        let a2 = w.watch(Some("1001"));
        assert!(w.wants("1001") && !w.wants("1002"));
        drop(a);
        assert!(w.wants("1001"));
        drop(a2);
        assert!(!w.wants("1001"));
        let s = w.watch(None);
        assert!(w.wants("1002"));
        drop(s);
        assert!(!w.wants("1002"));
    }
}
