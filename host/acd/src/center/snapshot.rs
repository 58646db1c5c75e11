//! What the core tells about itself: the snapshot for metrics, the API and
//! the supervisors' views, and the call as a plugin sees it.

use super::*;

impl Acd {
    /// Queues, agents and calls as they are now.
    pub fn snapshot(&self, now_ms: u64) -> AcdSnapshot {
        let mut agents_by_state = BTreeMap::new();
        for a in self.agents.values() {
            *agents_by_state.entry(a.state.name()).or_default() += 1;
        }
        let staffed = self.agents.staffing();
        let caller = |id: &str| {
            self.calls
                .get(id)
                .map(|c| c.caller.clone())
                .unwrap_or_default()
        };
        AcdSnapshot {
            at_ms: now_ms,
            queues: self
                .queues
                .values()
                .map(|q| {
                    let (logged_in, ready) = staffed
                        .get(q.config.name.as_str())
                        .copied()
                        .unwrap_or_default();
                    QueueSnapshot {
                        name: q.config.name.clone(),
                        waiting: q.waiting.len() as u32,
                        longest_wait_ms: q.longest_wait_ms(now_ms),
                        agents_logged_in: logged_in,
                        agents_ready: ready,
                        calls: q
                            .waiting
                            .iter()
                            .map(|w| WaitingCall {
                                call_id: w.call_id.clone(),
                                caller: caller(&w.call_id),
                                priority: w.priority,
                                wait_ms: now_ms.saturating_sub(w.entered_ms),
                            })
                            .collect(),
                    }
                })
                .collect(),
            agents_by_state,
            agents: self
                .agents
                .values()
                .map(|a| AgentSnapshot {
                    id: a.config.id.clone(),
                    name: a.config.name.clone(),
                    state: a.state.clone(),
                    since_ms: a.state_since_ms,
                    calls_today: a.calls_today,
                    queues: a.config.queues.keys().cloned().collect(),
                })
                .collect(),
            calls: self
                .calls
                .values()
                .map(|c| CallSnapshot {
                    call_id: c.id.clone(),
                    caller: c.caller.clone(),
                    dialed: c.dialed.clone(),
                    trunk: c.trunk.clone(),
                    state: c.state.name(),
                    queue: c.queue.clone(),
                    agent: match &c.state {
                        CallState::Connected { agent } => Some(agent.clone()),
                        _ => None,
                    },
                    priority: c.priority,
                    arrived_ms: c.arrived_ms,
                    answered_ms: c.answered_ms,
                })
                .collect(),
        }
    }

    /// The call as plugins see it, without the queue figures.
    pub(super) fn call_info_without_queues(&self, call_id: &str) -> Option<CallInfo> {
        let c = self.calls.get(call_id)?;
        Some(CallInfo {
            call_id: c.id.clone(),
            caller: c.caller.clone(),
            dialed: c.dialed.clone(),
            trunk: c.trunk.clone(),
            arrived_at_ms: c.arrived_ms,
            ivr: c.ivr.clone(),
            attributes: c.attributes.clone(),
            customer: None,
            queues: vec![],
        })
    }

    /// The call as plugins see it, with live queue figures.
    pub fn call_info(&self, now_ms: u64, call_id: &str) -> Option<CallInfo> {
        let mut info = self.call_info_without_queues(call_id)?;
        let staffed = self.agents.staffing();
        let queues: Vec<QueueStats> = self
            .queues
            .values()
            .map(|q| {
                let (logged_in, ready) = staffed
                    .get(q.config.name.as_str())
                    .copied()
                    .unwrap_or_default();
                let waiting = q.waiting.len() as u32;
                let longest = q.longest_wait_ms(now_ms);
                QueueStats {
                    name: q.config.name.clone(),
                    waiting,
                    longest_wait_secs: (longest / 1000) as u32,
                    agents_ready: ready,
                    agents_logged_in: logged_in,
                    estimated_wait_secs: if ready > waiting {
                        0
                    } else {
                        (waiting + 1) * self.settings.assumed_handle_secs / logged_in.max(1)
                    },
                }
            })
            .collect();
        info.queues = queues;
        Some(info)
    }
}
