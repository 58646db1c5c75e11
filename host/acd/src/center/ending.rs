//! The end of a call: hang-ups from either side, the host ending it, and
//! the call record.

use super::*;

impl Acd {
    pub(super) fn hung_up(&mut self, now_ms: u64, call_id: &str, by_caller: bool) {
        let Some(c) = self.calls.get(call_id) else {
            return;
        };
        let state = c.state.clone();
        let queue = c.queue.clone();
        match state {
            CallState::Routing | CallState::Ivr => {
                if by_caller {
                    self.end_call(
                        now_ms,
                        call_id,
                        Disposition::AbandonedInIvr,
                        "caller hung up".into(),
                    );
                }
            }
            CallState::Queued | CallState::Ranking => {
                if let Some(q) = &queue {
                    if let Some(qq) = self.queues.get_mut(q) {
                        qq.remove(call_id);
                    }
                    self.out
                        .qlog(now_ms, call_id, q, None, QueueLogKind::Abandon);
                }
                self.end_call(
                    now_ms,
                    call_id,
                    Disposition::AbandonedInQueue,
                    "caller hung up while queued".into(),
                );
            }
            CallState::Ringing { agents } => {
                for (agent, seq) in agents {
                    if let Some(q) = &queue {
                        self.out
                            .qlog(now_ms, call_id, q, Some(&agent), QueueLogKind::Abandon);
                    }
                    self.withdraw_offer(now_ms, call_id, &agent, seq);
                }
                self.end_call(
                    now_ms,
                    call_id,
                    Disposition::AbandonedRinging,
                    "caller hung up while the agent's phone rang".into(),
                );
            }
            CallState::Connected { agent } => {
                if by_caller {
                    self.out.cmd(CallControl::HangUpAgent {
                        call_id: call_id.to_owned(),
                        agent: agent.clone(),
                    });
                } else {
                    self.out.cmd(CallControl::HangUpCaller {
                        call_id: call_id.to_owned(),
                    });
                }
                if let Some(q) = &queue {
                    self.out
                        .qlog(now_ms, call_id, q, Some(&agent), QueueLogKind::Complete);
                }
                let who = if by_caller { "caller" } else { "agent" };
                self.end_call(
                    now_ms,
                    call_id,
                    Disposition::Answered,
                    format!("{who} hung up"),
                );
                self.agent_done(now_ms, &agent, queue.as_deref());
            }
        }
    }

    /// The host ends the call: on a failure (`failed`), or because the API asked.
    pub(super) fn end_by_host(&mut self, now_ms: u64, call_id: &str, reason: &str, why: HostEnd) {
        let Some(c) = self.calls.get(call_id) else {
            return;
        };
        let (state, queue) = (c.state.clone(), c.queue.clone());
        if let Some(q) = &queue
            && let Some(qq) = self.queues.get_mut(q)
        {
            qq.remove(call_id);
        }
        let failed = why == HostEnd::Failed;
        let mut disposition = match why {
            HostEnd::Failed => Disposition::Failed,
            HostEnd::Asked => Disposition::Rejected,
            HostEnd::Stopping => Disposition::Interrupted,
        };
        match state {
            CallState::Ringing { agents } => {
                for (agent, seq) in agents {
                    self.withdraw_offer(now_ms, call_id, &agent, seq);
                }
            }
            CallState::Connected { agent } => {
                self.out.cmd(CallControl::HangUpAgent {
                    call_id: call_id.to_owned(),
                    agent: agent.clone(),
                });
                if !failed {
                    disposition = Disposition::Answered;
                    if let Some(q) = &queue {
                        self.out
                            .qlog(now_ms, call_id, q, Some(&agent), QueueLogKind::Complete);
                    }
                }
                self.agent_done(now_ms, &agent, queue.as_deref());
            }
            _ => {}
        }
        self.out.cmd(CallControl::HangUpCaller {
            call_id: call_id.to_owned(),
        });
        self.end_call(now_ms, call_id, disposition, reason.to_owned());
    }

    pub(super) fn end_call(
        &mut self,
        now_ms: u64,
        call_id: &str,
        disposition: Disposition,
        cause: String,
    ) {
        let Some(c) = self.calls.remove(call_id) else {
            return;
        };
        // A call's timers go with it: the table holds live calls' only.
        for timer in [c.max_wait_timer.clone(), c.announce_timer.clone()]
            .into_iter()
            .flatten()
        {
            self.timers.cancel(Cancel { timer });
        }
        if let Some(q) = c.queue.as_ref().and_then(|q| self.queues.get_mut(q)) {
            q.remove(call_id);
        }
        let secs = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1000.0;
        let record = CallRecord {
            wait_secs: c
                .queued_ms
                .map(|q| secs(q, c.answered_ms.unwrap_or(now_ms)))
                .unwrap_or(0.0),
            talk_secs: c.answered_ms.map(|a| secs(a, now_ms)).unwrap_or(0.0),
            call_id: c.id,
            caller: c.caller,
            dialed: c.dialed,
            trunk: c.trunk,
            arrived_ms: c.arrived_ms,
            queued_ms: c.queued_ms,
            offered_ms: c.offered_ms,
            answered_ms: c.answered_ms,
            ended_ms: now_ms,
            queue: c.queue,
            agent: c.agent,
            disposition,
            overflowed_from: c.overflowed_from,
            plugin_versions: c.plugin_versions,
            cause,
        };
        self.out.event(AcdEvent::CallEnded(Box::new(record)));
    }
}
