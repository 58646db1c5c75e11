//! Offering a call to agents' phones: ringing, the answer, an offer lost
//! (busy, no answer, declined) and offers withdrawn.

use super::*;

impl Acd {
    pub(super) fn offer(
        &mut self,
        now_ms: u64,
        call_id: &str,
        queue: Option<&str>,
        agents: Vec<AgentId>,
    ) {
        if let Some(q) = queue.and_then(|q| self.queues.get_mut(q)) {
            q.remove(call_id);
            q.last_offered = agents.last().cloned();
        }
        let ring_secs = queue
            .and_then(|q| self.queues.get(q))
            .map(|q| q.config.ring_timeout_secs)
            .unwrap_or(15);
        let mut ringing = Vec::new();
        for agent in agents {
            let Some(sip_user) = self.agents.get(&agent).map(|a| a.config.sip_user.clone()) else {
                continue;
            };
            self.set_agent(
                now_ms,
                &agent,
                AgentState::Ringing {
                    call_id: call_id.to_owned(),
                },
            );
            // The event goes first: the desktop's card must not trail the ring.
            // Without the queue figures: a pass over every agent per offer
            // would cost the center's loop more than the card is worth.
            if let Some(info) = self.call_info_without_queues(call_id) {
                let agent_info = self
                    .agents
                    .get(&agent)
                    .map(|a| AgentInfo {
                        id: agent.clone(),
                        name: a.config.name.clone(),
                        skills: a.config.skills.keys().cloned().collect(),
                    })
                    .unwrap_or_else(|| AgentInfo {
                        id: agent.clone(),
                        name: String::new(),
                        skills: vec![],
                    });
                self.out.event(AcdEvent::CallOffered {
                    call_id: call_id.to_owned(),
                    agent: agent.clone(),
                    queue: queue.map(str::to_owned),
                    call: Box::new(info),
                    agent_info,
                });
            }
            let seq = self.next_seq();
            self.out.cmd(CallControl::Offer {
                call_id: call_id.to_owned(),
                agent: agent.clone(),
                sip_user,
            });
            self.timers.start(Start {
                timer: TimerId::RingNoAnswer {
                    call_id: call_id.to_owned(),
                    agent: agent.clone(),
                    seq,
                },
                at_ms: now_ms + ring_secs as u64 * 1000,
            });
            if let Some(q) = queue {
                self.out
                    .qlog(now_ms, call_id, q, Some(&agent), QueueLogKind::Offered);
            }
            ringing.push((agent, seq));
        }
        if let Some(c) = self.calls.get_mut(call_id) {
            c.offered_ms.get_or_insert(now_ms);
            c.state = CallState::Ringing { agents: ringing };
        }
    }

    pub(super) fn answered(&mut self, now_ms: u64, call_id: &str, agent: &str) {
        let Some(c) = self.calls.get_mut(call_id) else {
            self.out.cmd(CallControl::CancelOffer {
                call_id: call_id.to_owned(),
                agent: agent.to_owned(),
            });
            return;
        };
        let CallState::Ringing { agents } = &c.state else {
            let stale = c.state
                != (CallState::Connected {
                    agent: agent.to_owned(),
                });
            if stale {
                self.out.cmd(CallControl::CancelOffer {
                    call_id: call_id.to_owned(),
                    agent: agent.to_owned(),
                });
            }
            return;
        };
        let Some(&(_, seq)) = agents.iter().find(|(a, _)| a == agent) else {
            self.out.cmd(CallControl::CancelOffer {
                call_id: call_id.to_owned(),
                agent: agent.to_owned(),
            });
            return;
        };
        let others: Vec<(AgentId, u64)> =
            agents.iter().filter(|(a, _)| a != agent).cloned().collect();
        c.state = CallState::Connected {
            agent: agent.to_owned(),
        };
        // A transferred call keeps its first answer (talk time runs from it).
        c.answered_ms.get_or_insert(now_ms);
        c.agent = Some(agent.to_owned());
        let queue = c.queue.clone();
        self.timers.cancel(Cancel {
            timer: TimerId::RingNoAnswer {
                call_id: call_id.to_owned(),
                agent: agent.to_owned(),
                seq,
            },
        });
        for (other, oseq) in others {
            self.withdraw_offer(now_ms, call_id, &other, oseq);
        }
        self.cancel_max_wait(call_id);
        if let Some(a) = self.agents.get_mut(agent) {
            a.calls_today += 1;
        }
        self.set_agent(
            now_ms,
            agent,
            AgentState::OnCall {
                call_id: call_id.to_owned(),
            },
        );
        self.connect_caller(now_ms, call_id);
        self.out.cmd(CallControl::Bridge {
            call_id: call_id.to_owned(),
            agent: agent.to_owned(),
        });
        self.out.event(AcdEvent::CallConnected {
            call_id: call_id.to_owned(),
            agent: agent.to_owned(),
        });
        if let Some(q) = queue {
            self.out
                .qlog(now_ms, call_id, &q, Some(agent), QueueLogKind::Connect);
        }
    }

    /// An offer to `agent` ended without an answer: the agent goes not-ready
    /// and, when nobody else is ringing, the caller goes back to its place.
    pub(super) fn offer_lost(
        &mut self,
        now_ms: u64,
        call_id: &str,
        agent: &str,
        reason: &str,
        kind: QueueLogKind,
        seq: Option<u64>,
    ) {
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        let CallState::Ringing { agents } = &mut c.state else {
            return;
        };
        let Some(i) = agents
            .iter()
            .position(|(a, s)| a == agent && seq.is_none_or(|q| q == *s))
        else {
            return;
        };
        let (_, aseq) = agents.remove(i);
        let nobody_left = agents.is_empty();
        let queue = c.queue.clone();
        self.out.cmd(CallControl::CancelOffer {
            call_id: call_id.to_owned(),
            agent: agent.to_owned(),
        });
        if seq.is_none() {
            self.timers.cancel(Cancel {
                timer: TimerId::RingNoAnswer {
                    call_id: call_id.to_owned(),
                    agent: agent.to_owned(),
                    seq: aseq,
                },
            });
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.pending_not_ready = None;
        }
        self.set_agent(
            now_ms,
            agent,
            AgentState::NotReady {
                reason: reason.to_owned(),
            },
        );
        if let Some(q) = &queue {
            self.out.qlog(now_ms, call_id, q, Some(agent), kind);
        }
        if nobody_left {
            match queue {
                Some(q) => self.requeue(now_ms, call_id, &q),
                None => {
                    // A direct offer to one agent: nowhere to go back to.
                    self.refuse(
                        now_ms,
                        call_id,
                        480,
                        "Temporarily Unavailable",
                        Disposition::Rejected,
                        format!("agent {agent} did not answer"),
                    );
                }
            }
        }
    }

    /// Stop ringing `agent` for the call (someone else took it, or the caller
    /// left): cancel the offer and its timer; the agent is free again.
    pub(super) fn withdraw_offer(&mut self, now_ms: u64, call_id: &str, agent: &str, seq: u64) {
        self.out.cmd(CallControl::CancelOffer {
            call_id: call_id.to_owned(),
            agent: agent.to_owned(),
        });
        self.timers.cancel(Cancel {
            timer: TimerId::RingNoAnswer {
                call_id: call_id.to_owned(),
                agent: agent.to_owned(),
                seq,
            },
        });
        self.agent_to_ready(now_ms, agent, false);
    }
}
