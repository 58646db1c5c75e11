//! Waiting: holding a caller with music and announcements, queues' limits
//! and overflow, and the dispatch of waiting calls to free agents.

use super::*;

impl Acd {
    /// A call joined `queue`: with music or announcements configured (and a
    /// media layer to play them) the caller is answered and hears them.
    pub(super) fn hold(&mut self, now_ms: u64, call_id: &str, queue: &str) {
        let Some(q) = self.queues.get(queue) else {
            return;
        };
        let music = q.config.music_on_hold.clone();
        let every = q.config.announce_every_secs;
        if !self.settings.ivr_supported || (music.is_none() && every == 0) {
            return;
        }
        self.connect_caller(now_ms, call_id);
        self.out.cmd(MediaCommand::Hold {
            call_id: call_id.to_owned(),
            music,
        });
        self.schedule_announcement(now_ms, call_id, every);
    }

    pub(super) fn schedule_announcement(&mut self, now_ms: u64, call_id: &str, every_secs: u32) {
        if every_secs == 0 {
            return;
        }
        let timer = TimerId::Announce {
            call_id: call_id.to_owned(),
            seq: self.next_seq(),
        };
        if let Some(c) = self.calls.get_mut(call_id) {
            c.announce_timer = Some(timer.clone());
        }
        self.timers.start(Start {
            timer,
            at_ms: now_ms + every_secs as u64 * 1000,
        });
    }

    /// A waiting caller's announcement is due: its position and an estimate
    /// (position x assumed handle time / agents logged in), then the next one.
    pub(super) fn announce(&mut self, now_ms: u64, call_id: &str, timer: &TimerId) {
        let Some(c) = self.calls.get(call_id) else {
            return;
        };
        if c.announce_timer.as_ref() != Some(timer) {
            return;
        }
        let Some(queue) = c.queue.clone() else { return };
        let Some(q) = self.queues.get(&queue) else {
            return;
        };
        let every = q.config.announce_every_secs;
        if let Some(i) = q.waiting.iter().position(|w| w.call_id == call_id) {
            let position = i as u32 + 1;
            let staffed = self
                .agents
                .values()
                .filter(|a| a.in_queue(&queue) && a.logged_in())
                .count() as u32;
            let wait_secs = position * self.settings.assumed_handle_secs / staffed.max(1);
            self.out.cmd(MediaCommand::Announce {
                call_id: call_id.to_owned(),
                position,
                wait_secs,
            });
        }
        // Still ringing an agent: no announcement now, but keep the rhythm.
        if matches!(
            self.calls.get(call_id).map(|c| &c.state),
            Some(CallState::Queued | CallState::Ranking | CallState::Ringing { .. })
        ) {
            self.schedule_announcement(now_ms, call_id, every);
        }
    }

    pub(super) fn enqueue(
        &mut self,
        now_ms: u64,
        call_id: &str,
        queue: &str,
        max_wait_secs: Option<u32>,
    ) {
        let Some(q) = self.queues.get(queue) else {
            self.out.warn(
                Some(call_id),
                format!("router chose unknown queue {queue:?}"),
            );
            self.refuse(
                now_ms,
                call_id,
                480,
                "Temporarily Unavailable",
                Disposition::Failed,
                format!("unknown queue {queue}"),
            );
            return;
        };
        let members_in = self
            .agents
            .values()
            .any(|a| a.in_queue(queue) && a.logged_in());
        if q.full() || (!q.config.join_empty && !members_in) {
            let why = if q.full() {
                "queue full"
            } else {
                "no agent logged in"
            };
            self.overflow(now_ms, call_id, queue, why);
            return;
        }
        let max_wait = max_wait_secs.or(q.config.max_wait_secs);
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        c.queued_ms.get_or_insert(now_ms);
        c.entered_ms = now_ms;
        c.queue = Some(queue.to_owned());
        c.state = CallState::Queued;
        let waiting = Waiting {
            call_id: call_id.to_owned(),
            priority: c.priority,
            entered_ms: now_ms,
            skills: c.skills.clone(),
        };
        let position = self
            .queues
            .get_mut(queue)
            .map(|q| q.insert(waiting))
            .unwrap_or(0);
        self.out.event(AcdEvent::CallQueued {
            call_id: call_id.to_owned(),
            queue: queue.to_owned(),
            position,
        });
        self.out
            .qlog(now_ms, call_id, queue, None, QueueLogKind::EnterQueue);
        self.hold(now_ms, call_id, queue);
        if let Some(secs) = max_wait {
            let timer = TimerId::MaxWait {
                call_id: call_id.to_owned(),
                seq: self.next_seq(),
            };
            if let Some(c) = self.calls.get_mut(call_id) {
                c.max_wait_timer = Some(timer.clone());
            }
            self.timers.start(Start {
                timer,
                at_ms: now_ms + secs as u64 * 1000,
            });
        }
        self.dispatch(now_ms, queue);
    }

    /// Send a call on from `from`: to the router's or the queue's overflow target.
    pub(super) fn overflow(&mut self, now_ms: u64, call_id: &str, from: &str, why: &str) {
        let target = self
            .calls
            .get_mut(call_id)
            .and_then(|c| c.overflow.take())
            .or_else(|| {
                self.queues
                    .get(from)
                    .and_then(|q| q.config.overflow.clone())
            });
        self.cancel_max_wait(call_id);
        let Some(target) = target else {
            let (code, reason) = if why == "queue full" {
                (486, "Busy Here")
            } else {
                (480, "Temporarily Unavailable")
            };
            self.refuse(
                now_ms,
                call_id,
                code,
                reason,
                Disposition::Rejected,
                format!("{why} in {from}"),
            );
            return;
        };
        self.out
            .qlog(now_ms, call_id, from, None, QueueLogKind::Overflow);
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        c.overflowed_from.push(from.to_owned());
        match target.strip_prefix("queue:") {
            Some(next) if c.overflowed_from.iter().any(|q| q == next) || next == from => {
                self.out
                    .warn(Some(call_id), format!("overflow loop {from} -> {next}"));
                self.refuse(
                    now_ms,
                    call_id,
                    480,
                    "Temporarily Unavailable",
                    Disposition::Overflowed,
                    format!("overflow loop after {why}"),
                );
            }
            Some(next) => {
                let next = next.to_owned();
                self.enqueue(now_ms, call_id, &next, None);
            }
            None => {
                self.send_on(
                    now_ms,
                    call_id,
                    &target,
                    Disposition::Overflowed,
                    format!("{why}: forwarded to {target}"),
                );
            }
        }
    }

    pub(super) fn cancel_max_wait(&mut self, call_id: &str) {
        if let Some(t) = self
            .calls
            .get_mut(call_id)
            .and_then(|c| c.max_wait_timer.take())
        {
            self.timers.cancel(Cancel { timer: t });
        }
    }

    /// Offer waiting calls to free agents, best call first.
    pub(super) fn dispatch(&mut self, now_ms: u64, queue: &str) {
        loop {
            let Some(q) = self.queues.get(queue) else {
                return;
            };
            let mut pick = None;
            // Free agents once per pass, not once per waiting call (W x A string lookups).
            let ready = self.agents.candidates(queue, &[]);
            if ready.is_empty() {
                return;
            }
            for w in &q.waiting {
                if self
                    .calls
                    .get(&w.call_id)
                    .is_none_or(|c| c.state != CallState::Queued)
                {
                    continue;
                }
                let free: Vec<&Agent> = ready
                    .iter()
                    .copied()
                    .filter(|a| a.has_skills(&w.skills))
                    .collect();
                if free.is_empty() {
                    continue;
                }
                let ordered = strategy::order(
                    q.config.strategy,
                    queue,
                    &w.skills,
                    &free,
                    q.last_offered.as_deref(),
                );
                let ids: Vec<AgentId> =
                    ordered.iter().map(|&i| free[i].config.id.clone()).collect();
                pick = Some((w.call_id.clone(), ids));
                break;
            }
            let Some((call_id, ids)) = pick else { return };
            let (strategy, ranking) = (q.config.strategy, q.config.plugin_ranking);
            if ranking {
                let candidates = ids
                    .iter()
                    .filter_map(|id| self.agents.get(id))
                    .map(|a| AgentCandidate {
                        id: a.config.id.clone(),
                        skills: a
                            .config
                            .skills
                            .iter()
                            .map(|(k, v)| (k.clone(), *v))
                            .collect(),
                        idle_secs: (now_ms.saturating_sub(a.idle_since_ms) / 1000) as u32,
                        calls_today: a.calls_today,
                    })
                    .collect();
                if let Some(info) = self.call_info(now_ms, &call_id) {
                    if let Some(c) = self.calls.get_mut(&call_id) {
                        c.state = CallState::Ranking;
                    }
                    self.out.cmd(Ask::Ranking {
                        call_id,
                        queue: queue.to_owned(),
                        info: Box::new(info),
                        candidates,
                    });
                }
                continue;
            }
            let chosen = if strategy == strategy::Strategy::RingAll {
                ids
            } else {
                ids.into_iter().take(1).collect()
            };
            self.offer(now_ms, &call_id, Some(queue), chosen);
        }
    }

    pub(super) fn ranked(&mut self, now_ms: u64, call_id: &str, ranking: Vec<AgentId>) {
        let Some(c) = self.calls.get(call_id) else {
            return;
        };
        if c.state != CallState::Ranking {
            return;
        }
        let (Some(queue), skills) = (c.queue.clone(), c.skills.clone()) else {
            return;
        };
        let Some(q) = self.queues.get(&queue) else {
            return;
        };
        let free = self.agents.candidates(&queue, &skills);
        let ordered = strategy::order(
            q.config.strategy,
            &queue,
            &skills,
            &free,
            q.last_offered.as_deref(),
        );
        let by_strategy: Vec<AgentId> =
            ordered.iter().map(|&i| free[i].config.id.clone()).collect();
        // The router's order first (for agents still free), then the strategy's.
        let mut ids: Vec<AgentId> = ranking
            .into_iter()
            .filter(|id| by_strategy.contains(id))
            .collect();
        ids.extend(
            by_strategy
                .into_iter()
                .filter(|id| !ids.contains(id))
                .collect::<Vec<_>>(),
        );
        if let Some(c) = self.calls.get_mut(call_id) {
            c.state = CallState::Queued;
        }
        match ids.into_iter().next() {
            Some(first) => self.offer(now_ms, call_id, Some(&queue), vec![first]),
            None => self.dispatch(now_ms, &queue),
        }
    }

    /// Back into `queue` at the place the call had.
    pub(super) fn requeue(&mut self, now_ms: u64, call_id: &str, queue: &str) {
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        c.state = CallState::Queued;
        let w = Waiting {
            call_id: call_id.to_owned(),
            priority: c.priority,
            entered_ms: c.entered_ms,
            skills: c.skills.clone(),
        };
        let position = self.queues.get_mut(queue).map(|q| q.insert(w)).unwrap_or(0);
        self.out.event(AcdEvent::CallQueued {
            call_id: call_id.to_owned(),
            queue: queue.to_owned(),
            position,
        });
        self.dispatch(now_ms, queue);
    }

    pub(super) fn set_priority(&mut self, now_ms: u64, call_id: &str, priority: i32) {
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        c.priority = priority;
        if c.state != CallState::Queued {
            return;
        }
        let Some(queue) = c.queue.clone() else { return };
        if let Some(q) = self.queues.get_mut(&queue)
            && let Some(mut w) = q.remove(call_id)
        {
            w.priority = priority;
            q.insert(w);
        }
        self.dispatch(now_ms, &queue);
    }
}
