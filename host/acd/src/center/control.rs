//! Requests of the API (agent state, hang-up, transfer): checked against the
//! live state before they are applied, so a refusal reaches the asker as an
//! answer instead of a warning in the log.

use super::{Acd, CallState, HostEnd};
use crate::AgentState;
use crate::model::*;

impl Acd {
    /// Whether `event` can be applied now; the API asks before it sends it.
    pub fn check(&self, event: &CallEvent) -> Result<(), Refusal> {
        match event {
            CallEvent::AgentReady { agent } | CallEvent::AgentLogin { agent } => {
                self.known_agent(agent).map(|_| ())
            }
            CallEvent::AgentLogout { agent } => match self.known_agent(agent)? {
                AgentState::OnCall { .. } => Err(Refusal::Conflict(format!(
                    "agent {agent} is on a call and cannot log out now"
                ))),
                _ => Ok(()),
            },
            CallEvent::AgentNotReady { agent, reason } => {
                if reason.trim().is_empty() {
                    return Err(Refusal::Invalid("a not-ready state needs a reason".into()));
                }
                match self.known_agent(agent)? {
                    AgentState::LoggedOut => {
                        Err(Refusal::Conflict(format!("agent {agent} is logged out")))
                    }
                    _ => Ok(()),
                }
            }
            CallEvent::WrapUpDone { agent } => match self.known_agent(agent)? {
                AgentState::WrapUp => Ok(()),
                other => Err(Refusal::Conflict(format!(
                    "agent {agent} is not in wrap-up (state: {})",
                    other.name()
                ))),
            },
            CallEvent::HangUp { call_id, .. } | CallEvent::HostStopping { call_id } => {
                self.known_call(call_id).map(|_| ())
            }
            CallEvent::Transfer {
                call_id, target, ..
            } => {
                let call = self.known_call(call_id)?;
                match target {
                    TransferTarget::Queue(q) if !self.queues.contains_key(q) => {
                        Err(Refusal::NotFound(format!("no queue named {q:?}")))
                    }
                    TransferTarget::Agent(a) => {
                        if matches!(&call.state, CallState::Connected { agent } if agent == a) {
                            return Err(Refusal::Conflict(format!(
                                "the call is already with agent {a}"
                            )));
                        }
                        match self.known_agent(a)? {
                            AgentState::Ready => Ok(()),
                            other => Err(Refusal::Conflict(format!(
                                "agent {a} is not ready (state: {})",
                                other.name()
                            ))),
                        }
                    }
                    TransferTarget::Number(n) => {
                        if n.is_empty()
                            || !n
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "+*#.-_:@".contains(c))
                        {
                            return Err(Refusal::Invalid(format!(
                                "{n:?} is not a number or SIP address"
                            )));
                        }
                        if matches!(call.state, CallState::Connected { .. }) {
                            // A 302 only works before the answer; after it the
                            // host would need an outgoing leg of its own.
                            return Err(Refusal::Conflict(
                                "a connected call can be transferred to a queue or an agent; \
                                 to an outside number only before it is answered"
                                    .into(),
                            ));
                        }
                        Ok(())
                    }
                    TransferTarget::Queue(_) => Ok(()),
                }
            }
            CallEvent::SetPriority { call_id, .. } => self.known_call(call_id).map(|_| ()),
            // Not requests of the API: what the network, the media and the
            // plugins report is applied as it comes (each handler ignores
            // what no longer fits).
            CallEvent::Arrived { .. }
            | CallEvent::RouteDecided { .. }
            | CallEvent::AgentsRanked { .. }
            | CallEvent::RecordingDecided { .. }
            | CallEvent::RecordingActed { .. }
            | CallEvent::RecordingRequested { .. }
            | CallEvent::CardBuilt { .. }
            | CallEvent::DigitsCollected { .. }
            | CallEvent::Dtmf { .. }
            | CallEvent::AgentAnswered { .. }
            | CallEvent::OfferFailed { .. }
            | CallEvent::CallerHungUp { .. }
            | CallEvent::AgentHungUp { .. }
            | CallEvent::CallFailed { .. } => Ok(()),
        }
    }

    fn known_agent(&self, agent: &str) -> Result<&AgentState, Refusal> {
        self.agents
            .get(agent)
            .map(|a| &a.state)
            .ok_or_else(|| Refusal::NotFound(format!("no agent with id {agent:?}")))
    }

    fn known_call(&self, call_id: &str) -> Result<&super::Call, Refusal> {
        self.calls
            .get(call_id)
            .ok_or_else(|| Refusal::NotFound(format!("no live call with id {call_id:?}")))
    }

    /// Blind transfer: detach the call from its queue, ringing agents or
    /// connected agent, then route it to `target`.
    pub(super) fn transfer(
        &mut self,
        now_ms: u64,
        call_id: &str,
        target: TransferTarget,
        by: String,
    ) {
        if let Err(e) = self.check(&CallEvent::Transfer {
            call_id: call_id.to_owned(),
            target: target.clone(),
            by: by.clone(),
        }) {
            self.out
                .warn(Some(call_id), format!("transfer refused: {e}"));
            return;
        }
        self.ask_policy(
            now_ms,
            call_id,
            Some(crate::vocabulary::PolicyEvent::Transfer(target.to_string())),
        );
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        let (state, queue) = (c.state.clone(), c.queue.clone());
        // Routing: the router's late answer is ignored once the state moved on.
        c.state = CallState::Routing;
        c.ivr_step = None;
        match state {
            CallState::Queued | CallState::Ranking => {
                if let Some(q) = queue.as_ref().and_then(|q| self.queues.get_mut(q)) {
                    q.remove(call_id);
                }
                self.cancel_max_wait(call_id);
            }
            CallState::Ringing { agents } => {
                for (agent, seq) in agents {
                    self.withdraw_offer(now_ms, call_id, &agent, seq);
                }
                self.cancel_max_wait(call_id);
            }
            CallState::Connected { agent } => {
                self.out.cmd(CallControl::HangUpAgent {
                    call_id: call_id.to_owned(),
                    agent: agent.clone(),
                });
                if let Some(q) = &queue {
                    self.out
                        .qlog(now_ms, call_id, q, Some(&agent), QueueLogKind::Complete);
                }
                self.agent_done(now_ms, &agent, queue.as_deref());
            }
            CallState::Routing | CallState::Ivr => {}
        }
        self.out.event(AcdEvent::CallTransferred {
            call_id: call_id.to_owned(),
            target: target.clone(),
            by: by.clone(),
        });
        match target {
            TransferTarget::Queue(q) => {
                if let Some(c) = self.calls.get_mut(call_id) {
                    c.overflow = None;
                }
                self.enqueue(now_ms, call_id, &q, None);
            }
            TransferTarget::Agent(a) => {
                // Still ready? Withdrawing offers above may have changed nothing for `a`.
                if self
                    .agents
                    .get(&a)
                    .is_some_and(|x| x.state == AgentState::Ready)
                {
                    if let Some(c) = self.calls.get_mut(call_id) {
                        c.queued_ms.get_or_insert(now_ms);
                    }
                    self.offer(now_ms, call_id, None, vec![a]);
                } else {
                    self.end_by_host(
                        now_ms,
                        call_id,
                        &format!("transfer to agent {a} failed: not ready"),
                        HostEnd::Failed,
                    );
                }
            }
            TransferTarget::Number(n) => self.send_on(
                now_ms,
                call_id,
                &n,
                Disposition::Forwarded,
                format!("transferred to {n} by {by}"),
            ),
        }
    }
}
