//! The ACD state machine: one per center, one state per call.
//!
//! Each concern owns its state, as quinn's connection splits its own: the
//! agents' table is a [`Roster`] (states, staffing, candidates, the day's
//! counts), each queue a `Queue` (its waiting callers), each live call a
//! [`Call`], the timers a `Timers` table, what a turn answers an
//! [`Outbox`]. The `Acd` holds them and runs the flows between them, one
//! file a flow: [`routing`] (arrival, router, IVR), [`queueing`] (hold,
//! overflow, dispatch), [`offers`] (ringing agents), [`agents`] (logout,
//! back to ready), [`ending`] (hang-ups, the record), [`recording`] (the
//! policy's state), [`control`] (the API's requests) and [`snapshot`]
//! (what the world and plugins are told).

use std::collections::{BTreeMap, HashMap};

use crate::vocabulary::{
    AgentCandidate, AgentInfo, CallInfo, IvrEntry, PolicyEvent, QueueStats, RouteDecision,
};

use super::agent::{Agent, AgentConfig, AgentState, Roster};
use super::model::*;
use super::queue::{Queue, QueueConfig, Waiting};
use super::strategy;
use super::timers::{Cancel, Start, Timers};

#[derive(Debug, Clone)]
pub struct AcdSettings {
    /// The media layer answers callers itself: it runs IVR steps and plays
    /// music to waiting callers. Without it (no relay), an IVR decision is
    /// answered at once with no digits and the router is asked again, and
    /// queued callers hear ringing until an agent answers.
    pub ivr_supported: bool,
    /// A recording policy is asked when a call connects and on its events.
    pub recording: bool,
    /// IVR steps one call may take before it is ended as failed (a router loop).
    pub max_ivr_steps: u32,
    /// Assumed handle time for the wait estimate given to routers, seconds.
    pub assumed_handle_secs: u32,
    /// Where days begin: agents' calls today start again at local midnight.
    pub calendar: crate::calendar::Calendar,
}

impl Default for AcdSettings {
    fn default() -> Self {
        Self {
            ivr_supported: false,
            recording: false,
            max_ivr_steps: 8,
            assumed_handle_secs: 180,
            calendar: crate::calendar::Calendar::utc(),
        }
    }
}

mod agents;
mod call;
mod control;
mod ending;
mod offers;
pub(crate) mod outbox;
mod queueing;
mod recording;
mod routing;
mod snapshot;

use call::{Call, CallState};
pub(crate) use outbox::Outbox;
pub use recording::{MAX_PENDING_ASKS, RecordingRefusal};

/// Why the host itself ends a call: what an unanswered one is recorded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostEnd {
    /// The call could not go on (media, transport, a failed transfer).
    Failed,
    /// Someone asked (the API's hang-up).
    Asked,
    /// The host is stopping.
    Stopping,
}

pub struct Acd {
    settings: AcdSettings,
    queues: BTreeMap<String, Queue>,
    agents: Roster,
    calls: HashMap<CallId, Call>,
    /// Numbers offers and timers: an answer or a timer of an older one is stale.
    seq: u64,
    /// What this turn answers, in order.
    out: Outbox,
    timers: Timers,
}

impl Acd {
    pub fn new(settings: AcdSettings, queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> Self {
        Self {
            settings,
            queues: queues
                .into_iter()
                .map(|q| (q.name.clone(), Queue::new(q)))
                .collect(),
            agents: Roster::new(agents),
            calls: HashMap::new(),
            timers: Timers::default(),
            seq: 0,
            out: Outbox::default(),
        }
    }

    pub fn agent_state(&self, agent: &str) -> Option<&AgentState> {
        self.agents.get(agent).map(|a| &a.state)
    }

    /// Call ids waiting in a queue, in serving order.
    pub fn waiting(&self, queue: &str) -> Vec<CallId> {
        self.queues
            .get(queue)
            .map(|q| q.waiting.iter().map(|w| w.call_id.clone()).collect())
            .unwrap_or_default()
    }

    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// When the core next needs [`Acd::handle_timeout`] (ms since the
    /// epoch; None: no timer runs).
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.next_deadline()
    }

    /// Fire every timer due at `now_ms`, earliest first.
    pub fn handle_timeout(&mut self, now_ms: u64) -> Vec<Output> {
        self.agents.roll_day(now_ms, &self.settings.calendar);
        while let Some(timer) = self.timers.pop_due(now_ms) {
            self.timer(now_ms, timer);
        }
        self.out.drain()
    }

    #[cfg(test)]
    pub(crate) fn pending_timers(&self) -> impl Iterator<Item = (&TimerId, u64)> {
        self.timers.iter()
    }

    /// Apply one event at time `now_ms`; returns what must happen next.
    pub fn handle(&mut self, now_ms: u64, event: CallEvent) -> Vec<Output> {
        self.agents.roll_day(now_ms, &self.settings.calendar);
        match event {
            CallEvent::Arrived {
                call_id,
                caller,
                dialed,
                trunk,
                attributes,
            } => self.arrived(now_ms, call_id, caller, dialed, trunk, attributes),
            CallEvent::RouteDecided {
                call_id,
                decision,
                plugin,
                plugin_version,
            } => {
                if let Some(c) = self.calls.get_mut(&call_id)
                    && c.state == CallState::Routing
                {
                    c.plugin_versions.insert(plugin, plugin_version);
                    self.apply_decision(now_ms, &call_id, decision);
                }
            }
            CallEvent::DigitsCollected {
                call_id,
                step,
                digits,
            } => {
                if let Some(c) = self.calls.get_mut(&call_id)
                    && c.state == CallState::Ivr
                {
                    let sensitive = c.ivr_step.take().is_some_and(|s| s.sensitive);
                    c.ivr.push(IvrEntry {
                        step: step.clone(),
                        digits,
                        sensitive,
                    });
                    c.state = CallState::Routing;
                    self.ask_policy(now_ms, &call_id, Some(PolicyEvent::IvrStepLeft(step)));
                    self.ask_router(now_ms, &call_id);
                }
            }
            CallEvent::AgentsRanked {
                call_id,
                ranking,
                plugin,
                plugin_version,
            } => {
                if let Some(version) = plugin_version {
                    self.note_version(&call_id, plugin, version);
                }
                self.ranked(now_ms, &call_id, ranking)
            }
            CallEvent::RecordingDecided {
                call_id,
                decision,
                plugin,
                plugin_version,
            } => self.recording_decided(now_ms, &call_id, decision, plugin, plugin_version),
            CallEvent::RecordingActed {
                call_id,
                action,
                plugin,
                plugin_version,
            } => self.recording_acted(now_ms, &call_id, action, plugin, plugin_version),
            CallEvent::RecordingRequested { call_id, request } => {
                if self.recording_request(&call_id).is_ok() {
                    self.ask_policy(now_ms, &call_id, Some(PolicyEvent::AgentRequest(request)));
                }
            }
            CallEvent::CardBuilt {
                call_id,
                plugin,
                plugin_version,
            } => self.note_version(&call_id, plugin, plugin_version),
            CallEvent::Dtmf { call_id, digit } => {
                if self
                    .calls
                    .get(&call_id)
                    .is_some_and(|c| c.connected && c.state != CallState::Ivr)
                {
                    self.ask_policy(now_ms, &call_id, Some(PolicyEvent::Dtmf(digit.to_string())));
                }
            }
            CallEvent::AgentAnswered { call_id, agent } => self.answered(now_ms, &call_id, &agent),
            CallEvent::OfferFailed {
                call_id,
                agent,
                failure,
            } => {
                let reason = match failure {
                    OfferFailure::Busy => "busy",
                    OfferFailure::Unavailable => "unavailable",
                    OfferFailure::Declined => "declined",
                    OfferFailure::Failed => "phone-failed",
                };
                self.offer_lost(
                    now_ms,
                    &call_id,
                    &agent,
                    reason,
                    QueueLogKind::OfferFailed,
                    None,
                );
            }
            CallEvent::CallerHungUp { call_id } => self.hung_up(now_ms, &call_id, true),
            CallEvent::AgentHungUp { call_id } => self.hung_up(now_ms, &call_id, false),
            CallEvent::CallFailed { call_id, reason } => {
                self.end_by_host(now_ms, &call_id, &reason, HostEnd::Failed)
            }
            CallEvent::AgentLogin { agent } => {
                if self.agents.get(&agent).is_some_and(|a| !a.logged_in()) {
                    self.agent_to_ready(now_ms, &agent, true);
                }
            }
            CallEvent::AgentLogout { agent } => self.logout(now_ms, &agent),
            CallEvent::AgentReady { agent } => {
                let Some(a) = self.agents.get_mut(&agent) else {
                    return self.out.drain();
                };
                a.pending_not_ready = None;
                if matches!(a.state, AgentState::NotReady { .. } | AgentState::WrapUp) {
                    self.agent_to_ready(now_ms, &agent, false);
                }
            }
            CallEvent::AgentNotReady { agent, reason } => {
                let Some(a) = self.agents.get_mut(&agent) else {
                    return self.out.drain();
                };
                match a.state {
                    AgentState::Ready | AgentState::WrapUp | AgentState::NotReady { .. } => {
                        self.set_agent(now_ms, &agent, AgentState::NotReady { reason });
                    }
                    AgentState::Ringing { .. } | AgentState::OnCall { .. } => {
                        a.pending_not_ready = Some(reason)
                    }
                    AgentState::LoggedOut => {}
                }
            }
            CallEvent::WrapUpDone { agent } => {
                if self
                    .agents
                    .get(&agent)
                    .is_some_and(|a| a.state == AgentState::WrapUp)
                {
                    self.agent_to_ready(now_ms, &agent, false);
                }
            }
            CallEvent::SetPriority { call_id, priority } => {
                self.set_priority(now_ms, &call_id, priority)
            }
            CallEvent::HangUp { call_id, by } => {
                self.end_by_host(now_ms, &call_id, &format!("ended by {by}"), HostEnd::Asked)
            }
            CallEvent::HostStopping { call_id } => self.end_by_host(
                now_ms,
                &call_id,
                "ended by the host's stop",
                HostEnd::Stopping,
            ),
            CallEvent::Transfer {
                call_id,
                target,
                by,
            } => self.transfer(now_ms, &call_id, target, by),
        }
        self.out.drain()
    }

    /// A plugin decided something for a live call: its record names the version.
    fn note_version(&mut self, call_id: &str, plugin: String, version: String) {
        if let Some(c) = self.calls.get_mut(call_id) {
            c.note_version(plugin, version);
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn set_agent(&mut self, now_ms: u64, agent: &str, state: AgentState) {
        self.agents.set_state(now_ms, agent, state, &mut self.out);
    }

    fn timer(&mut self, now_ms: u64, timer: TimerId) {
        match timer {
            TimerId::MaxWait { ref call_id, .. } => {
                let Some(c) = self.calls.get(call_id) else {
                    return;
                };
                if c.max_wait_timer.as_ref() != Some(&timer)
                    || !matches!(c.state, CallState::Queued | CallState::Ranking)
                {
                    return;
                }
                let Some(queue) = c.queue.clone() else { return };
                if let Some(q) = self.queues.get_mut(&queue) {
                    q.remove(call_id);
                }
                if let Some(c) = self.calls.get_mut(call_id) {
                    c.max_wait_timer = None;
                }
                self.overflow(now_ms, call_id, &queue, "max wait reached");
            }
            TimerId::RingNoAnswer {
                call_id,
                agent,
                seq,
            } => {
                self.offer_lost(
                    now_ms,
                    &call_id,
                    &agent,
                    "ring-no-answer",
                    QueueLogKind::RingNoAnswer,
                    Some(seq),
                );
            }
            TimerId::Announce { ref call_id, .. } => self.announce(now_ms, call_id, &timer),
            TimerId::WrapUp { agent, seq } => {
                if self
                    .agents
                    .get(&agent)
                    .is_some_and(|a| a.state == AgentState::WrapUp && a.wrap_up_seq == seq)
                {
                    self.agent_to_ready(now_ms, &agent, false);
                }
            }
        }
    }
}
