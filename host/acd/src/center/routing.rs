//! A call's way in: its arrival, the router's decision, the IVR, and the
//! ways out before a queue (forward, reject).

use super::*;

impl Acd {
    pub(super) fn arrived(
        &mut self,
        now_ms: u64,
        call_id: CallId,
        caller: String,
        dialed: String,
        trunk: String,
        attributes: Vec<(String, String)>,
    ) {
        if self.calls.contains_key(&call_id) {
            self.out
                .warn(Some(&call_id), "duplicate call id ignored".into());
            return;
        }
        self.out.event(AcdEvent::CallArrived {
            call_id: call_id.clone(),
            caller: caller.clone(),
            dialed: dialed.clone(),
        });
        self.calls.insert(
            call_id.clone(),
            Call::new(call_id.clone(), caller, dialed, trunk, attributes, now_ms),
        );
        self.ask_router(now_ms, &call_id);
    }

    pub(super) fn ask_router(&mut self, now_ms: u64, call_id: &str) {
        if let Some(info) = self.call_info(now_ms, call_id) {
            self.out.cmd(Ask::Router {
                call_id: call_id.to_owned(),
                info: Box::new(info),
            });
        }
    }

    pub(super) fn apply_decision(&mut self, now_ms: u64, call_id: &str, decision: RouteDecision) {
        match decision {
            RouteDecision::Ivr(step) => {
                let Some(c) = self.calls.get_mut(call_id) else {
                    return;
                };
                if c.ivr.len() as u32 >= self.settings.max_ivr_steps {
                    self.refuse(
                        now_ms,
                        call_id,
                        500,
                        "Routing Loop",
                        Disposition::Failed,
                        "router kept asking for IVR steps".into(),
                    );
                    return;
                }
                if self.settings.ivr_supported {
                    c.state = CallState::Ivr;
                    c.ivr_step = Some(step.clone());
                    self.connect_caller(now_ms, call_id);
                    self.ask_policy(
                        now_ms,
                        call_id,
                        Some(PolicyEvent::IvrStepEntered(step.clone())),
                    );
                    self.out.cmd(MediaCommand::RunIvr {
                        call_id: call_id.to_owned(),
                        step,
                    });
                } else {
                    c.ivr.push(IvrEntry {
                        step: step.name,
                        digits: String::new(),
                        sensitive: step.sensitive,
                    });
                    self.ask_router(now_ms, call_id);
                }
            }
            RouteDecision::Queue(t) => {
                if let Some(c) = self.calls.get_mut(call_id) {
                    c.priority = t.priority;
                    c.skills = t.skills.clone();
                    c.overflow = t.overflow.clone();
                }
                self.enqueue(now_ms, call_id, &t.queue, t.max_wait_secs);
            }
            RouteDecision::Agent(agent) => {
                let ready = self
                    .agents
                    .get(&agent)
                    .is_some_and(|a| a.state == AgentState::Ready);
                if ready {
                    if let Some(c) = self.calls.get_mut(call_id) {
                        c.queued_ms.get_or_insert(now_ms);
                    }
                    self.offer(now_ms, call_id, None, vec![agent]);
                } else {
                    self.refuse(
                        now_ms,
                        call_id,
                        486,
                        "Busy Here",
                        Disposition::Rejected,
                        format!("agent {agent} not available"),
                    );
                }
            }
            RouteDecision::Forward(target) => {
                self.send_on(
                    now_ms,
                    call_id,
                    &target,
                    Disposition::Forwarded,
                    format!("forwarded to {target}"),
                );
            }
            RouteDecision::Reject(r) => {
                self.refuse(
                    now_ms,
                    call_id,
                    r.code,
                    r.reason.clone(),
                    Disposition::Rejected,
                    format!("{} {}", r.code, r.reason),
                );
            }
        }
    }

    /// The caller's leg is answered now (IVR, music or agent): the first
    /// time, the recording policy decides what to record.
    pub(super) fn connect_caller(&mut self, now_ms: u64, call_id: &str) {
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        if std::mem::replace(&mut c.connected, true) {
            return;
        }
        self.ask_policy(now_ms, call_id, None);
    }

    /// Send the call outside the center and end it with `disposition`.
    pub(super) fn send_on(
        &mut self,
        now_ms: u64,
        call_id: &str,
        target: &str,
        disposition: Disposition,
        cause: String,
    ) {
        self.out.cmd(CallControl::Forward {
            call_id: call_id.to_owned(),
            target: target.to_owned(),
        });
        self.end_call(now_ms, call_id, disposition, cause);
    }

    /// Refuse the caller with a SIP status and end the call with `disposition`.
    pub(super) fn refuse(
        &mut self,
        now_ms: u64,
        call_id: &str,
        code: u16,
        reason: impl Into<String>,
        disposition: Disposition,
        cause: String,
    ) {
        self.out.cmd(CallControl::Reject {
            call_id: call_id.to_owned(),
            code,
            reason: reason.into(),
        });
        self.end_call(now_ms, call_id, disposition, cause);
    }
}
