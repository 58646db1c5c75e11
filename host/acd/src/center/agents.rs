//! Agents' availability as calls come and go: logout, the end of a call's
//! work, back to ready.

use super::*;

impl Acd {
    pub(super) fn logout(&mut self, now_ms: u64, agent: &str) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        match a.state.clone() {
            AgentState::OnCall { call_id } => {
                self.out.warn(
                    Some(&call_id),
                    format!("agent {agent} cannot log out during a call"),
                );
                return;
            }
            AgentState::Ringing { call_id } => {
                self.offer_lost(
                    now_ms,
                    &call_id,
                    agent,
                    "logged-out",
                    QueueLogKind::OfferFailed,
                    None,
                );
            }
            _ => {}
        }
        self.set_agent(now_ms, agent, AgentState::LoggedOut);
        // Queues left with nobody send their callers on, where configured.
        let queues: Vec<String> = self
            .queues
            .values()
            .filter(|q| {
                q.config.leave_when_empty
                    && self
                        .agents
                        .get(agent)
                        .is_some_and(|a| a.in_queue(&q.config.name))
            })
            .map(|q| q.config.name.clone())
            .collect();
        for q in queues {
            if self
                .agents
                .values()
                .any(|a| a.in_queue(&q) && a.logged_in())
            {
                continue;
            }
            let waiting: Vec<CallId> = self
                .queues
                .get_mut(&q)
                .map(|qq| qq.waiting.drain(..).map(|w| w.call_id).collect())
                .unwrap_or_default();
            for call_id in waiting {
                self.overflow(now_ms, &call_id, &q, "no agent logged in");
            }
        }
    }

    /// The agent's part in a call ended: wrap-up, then ready (or not ready).
    pub(super) fn agent_done(&mut self, now_ms: u64, agent: &str, queue: Option<&str>) {
        let wrap = queue
            .and_then(|q| self.queues.get(q))
            .map(|q| q.config.wrap_up_secs)
            .unwrap_or(0);
        if let Some(a) = self.agents.get_mut(agent) {
            a.idle_since_ms = now_ms;
        }
        if wrap == 0 {
            self.agent_to_ready(now_ms, agent, false);
            return;
        }
        let seq = self.next_seq();
        if let Some(a) = self.agents.get_mut(agent) {
            a.wrap_up_seq = seq;
        }
        self.set_agent(now_ms, agent, AgentState::WrapUp);
        self.timers.start(Start {
            timer: TimerId::WrapUp {
                agent: agent.to_owned(),
                seq,
            },
            at_ms: now_ms + wrap as u64 * 1000,
        });
    }

    pub(super) fn agent_to_ready(&mut self, now_ms: u64, agent: &str, login: bool) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if let Some(reason) = a.pending_not_ready.take() {
            self.set_agent(now_ms, agent, AgentState::NotReady { reason });
            return;
        }
        if login || a.idle_since_ms == 0 {
            a.idle_since_ms = now_ms;
        }
        self.set_agent(now_ms, agent, AgentState::Ready);
        let queues: Vec<String> = self
            .agents
            .get(agent)
            .map(|a| a.config.queues.keys().cloned().collect())
            .unwrap_or_default();
        // Serve the queue with the longest-waiting caller first.
        let mut queues: Vec<(u64, String)> = queues
            .into_iter()
            .map(|q| {
                (
                    self.queues
                        .get(&q)
                        .and_then(|qq| qq.waiting.first().map(|w| w.entered_ms))
                        .unwrap_or(u64::MAX),
                    q,
                )
            })
            .collect();
        queues.sort();
        for (_, q) in queues {
            if self
                .agents
                .get(agent)
                .is_none_or(|a| a.state != AgentState::Ready)
            {
                break;
            }
            self.dispatch(now_ms, &q);
        }
    }
}
