//! The ACD state machine: one per center, one state per call.

use std::collections::{BTreeMap, HashMap};

use crate::vocabulary::{
    AgentCandidate, AgentInfo, CallInfo, IvrEntry, IvrStep, PolicyEvent, QueueStats, RouteDecision,
};

use super::agent::{Agent, AgentConfig, AgentState};
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

mod control;
mod recording;
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

#[derive(Debug, Clone, PartialEq)]
enum CallState {
    Routing,
    Ivr,
    Queued,
    /// Waiting in the queue for the router's ranking of free agents.
    Ranking,
    Ringing {
        agents: Vec<(AgentId, u64)>,
    },
    Connected {
        agent: AgentId,
    },
}

impl CallState {
    fn name(&self) -> &'static str {
        match self {
            CallState::Routing => "routing",
            CallState::Ivr => "ivr",
            CallState::Queued | CallState::Ranking => "queued",
            CallState::Ringing { .. } => "ringing",
            CallState::Connected { .. } => "connected",
        }
    }
}

#[derive(Debug, Clone)]
struct Call {
    id: CallId,
    caller: String,
    dialed: String,
    trunk: String,
    attributes: Vec<(String, String)>,
    arrived_ms: u64,
    ivr: Vec<IvrEntry>,
    ivr_step: Option<IvrStep>,
    state: CallState,
    queued_ms: Option<u64>,
    offered_ms: Option<u64>,
    answered_ms: Option<u64>,
    queue: Option<String>,
    agent: Option<AgentId>,
    priority: i32,
    skills: Vec<String>,
    /// First time the call entered its current queue (kept across re-queues).
    entered_ms: u64,
    overflow: Option<String>,
    overflowed_from: Vec<String>,
    plugin_versions: BTreeMap<String, String>,
    max_wait_timer: Option<TimerId>,
    /// The caller's leg is answered (by the IVR, the queue's music or an agent).
    connected: bool,
    announce_timer: Option<TimerId>,
    recording: recording::Recording,
}

pub struct Acd {
    settings: AcdSettings,
    queues: BTreeMap<String, Queue>,
    agents: BTreeMap<AgentId, Agent>,
    calls: HashMap<CallId, Call>,
    seq: u64,
    out: Vec<Output>,
    timers: Timers,
    /// Start of the next local day (0: not yet known).
    next_day_ms: u64,
}

impl Acd {
    pub fn new(settings: AcdSettings, queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> Self {
        Self {
            settings,
            queues: queues
                .into_iter()
                .map(|q| (q.name.clone(), Queue::new(q)))
                .collect(),
            agents: agents
                .into_iter()
                .map(|a| (a.id.clone(), Agent::new(a)))
                .collect(),
            calls: HashMap::new(),
            timers: Timers::default(),
            seq: 0,
            out: Vec::new(),
            next_day_ms: 0,
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

    /// A local midnight passed (or the first event): the "today" counts start
    /// again, so "fewest calls today" is fair from the first call of the day.
    fn new_day(&mut self, now_ms: u64) {
        if self.next_day_ms != 0 {
            for a in self.agents.values_mut() {
                a.calls_today = 0;
            }
        }
        let cal = &self.settings.calendar;
        self.next_day_ms = cal.end_of(
            crate::calendar::Interval::Day,
            cal.start_of(crate::calendar::Interval::Day, now_ms),
        );
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
        if now_ms >= self.next_day_ms {
            self.new_day(now_ms);
        }
        while let Some(timer) = self.timers.pop_due(now_ms) {
            self.timer(now_ms, timer);
        }
        self.drain()
    }

    #[cfg(test)]
    pub(crate) fn pending_timers(&self) -> impl Iterator<Item = (&TimerId, u64)> {
        self.timers.iter()
    }

    /// Apply one event at time `now_ms`; returns what must happen next.
    pub fn handle(&mut self, now_ms: u64, event: CallEvent) -> Vec<Output> {
        if now_ms >= self.next_day_ms {
            self.new_day(now_ms);
        }
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
                    return self.drain();
                };
                a.pending_not_ready = None;
                if matches!(a.state, AgentState::NotReady { .. } | AgentState::WrapUp) {
                    self.agent_to_ready(now_ms, &agent, false);
                }
            }
            CallEvent::AgentNotReady { agent, reason } => {
                let Some(a) = self.agents.get_mut(&agent) else {
                    return self.drain();
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
        self.drain()
    }

    /// A plugin decided something for a live call: its record names the version.
    fn note_version(&mut self, call_id: &str, plugin: String, version: String) {
        if let Some(c) = self.calls.get_mut(call_id) {
            c.plugin_versions.insert(plugin, version);
        }
    }

    fn drain(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    fn cmd(&mut self, c: impl Into<Output>) {
        self.out.push(c.into());
    }

    fn event(&mut self, e: AcdEvent) {
        self.out.push(Output::Event(e));
    }

    fn warn(&mut self, call_id: Option<&str>, message: String) {
        self.event(AcdEvent::Warning {
            call_id: call_id.map(str::to_owned),
            message,
        });
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn qlog(
        &mut self,
        now_ms: u64,
        call_id: &str,
        queue: &str,
        agent: Option<&str>,
        kind: QueueLogKind,
    ) {
        self.event(AcdEvent::QueueLog {
            at_ms: now_ms,
            call_id: call_id.to_owned(),
            queue: queue.to_owned(),
            agent: agent.map(str::to_owned),
            kind,
        });
    }

    fn set_agent(&mut self, now_ms: u64, agent: &str, state: AgentState) {
        if let Some(a) = self.agents.get_mut(agent)
            && a.state != state
        {
            a.state = state.clone();
            a.state_since_ms = now_ms;
            self.event(AcdEvent::AgentStateChanged {
                agent: agent.to_owned(),
                state,
            });
        }
    }

    fn arrived(
        &mut self,
        now_ms: u64,
        call_id: CallId,
        caller: String,
        dialed: String,
        trunk: String,
        attributes: Vec<(String, String)>,
    ) {
        if self.calls.contains_key(&call_id) {
            self.warn(Some(&call_id), "duplicate call id ignored".into());
            return;
        }
        self.event(AcdEvent::CallArrived {
            call_id: call_id.clone(),
            caller: caller.clone(),
            dialed: dialed.clone(),
        });
        self.calls.insert(
            call_id.clone(),
            Call {
                id: call_id.clone(),
                caller,
                dialed,
                trunk,
                attributes,
                arrived_ms: now_ms,
                ivr: vec![],
                ivr_step: None,
                state: CallState::Routing,
                queued_ms: None,
                offered_ms: None,
                answered_ms: None,
                queue: None,
                agent: None,
                priority: 0,
                skills: vec![],
                entered_ms: now_ms,
                overflow: None,
                overflowed_from: vec![],
                plugin_versions: BTreeMap::new(),
                max_wait_timer: None,
                connected: false,
                announce_timer: None,
                recording: Default::default(),
            },
        );
        self.ask_router(now_ms, &call_id);
    }

    /// Per queue, in one pass over the agents: (logged in, ready).
    fn staffing(&self) -> HashMap<&str, (u32, u32)> {
        let mut staffed: HashMap<&str, (u32, u32)> = HashMap::new();
        for a in self.agents.values().filter(|a| a.logged_in()) {
            for q in a.config.queues.keys() {
                let e = staffed.entry(q.as_str()).or_default();
                e.0 += 1;
                e.1 += u32::from(a.state == AgentState::Ready);
            }
        }
        staffed
    }

    /// Queues, agents and calls as they are now.
    pub fn snapshot(&self, now_ms: u64) -> AcdSnapshot {
        let mut agents_by_state = BTreeMap::new();
        for a in self.agents.values() {
            *agents_by_state.entry(a.state.name()).or_default() += 1;
        }
        let staffed = self.staffing();
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
    fn call_info_without_queues(&self, call_id: &str) -> Option<CallInfo> {
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
        let staffed = self.staffing();
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

    fn ask_router(&mut self, now_ms: u64, call_id: &str) {
        if let Some(info) = self.call_info(now_ms, call_id) {
            self.cmd(Ask::Router {
                call_id: call_id.to_owned(),
                info: Box::new(info),
            });
        }
    }

    fn apply_decision(&mut self, now_ms: u64, call_id: &str, decision: RouteDecision) {
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
                    self.cmd(MediaCommand::RunIvr {
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
    fn connect_caller(&mut self, now_ms: u64, call_id: &str) {
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        if std::mem::replace(&mut c.connected, true) {
            return;
        }
        self.ask_policy(now_ms, call_id, None);
    }

    /// A call joined `queue`: with music or announcements configured (and a
    /// media layer to play them) the caller is answered and hears them.
    fn hold(&mut self, now_ms: u64, call_id: &str, queue: &str) {
        let Some(q) = self.queues.get(queue) else {
            return;
        };
        let music = q.config.music_on_hold.clone();
        let every = q.config.announce_every_secs;
        if !self.settings.ivr_supported || (music.is_none() && every == 0) {
            return;
        }
        self.connect_caller(now_ms, call_id);
        self.cmd(MediaCommand::Hold {
            call_id: call_id.to_owned(),
            music,
        });
        self.schedule_announcement(now_ms, call_id, every);
    }

    fn schedule_announcement(&mut self, now_ms: u64, call_id: &str, every_secs: u32) {
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
    fn announce(&mut self, now_ms: u64, call_id: &str, timer: &TimerId) {
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
            self.cmd(MediaCommand::Announce {
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

    fn enqueue(&mut self, now_ms: u64, call_id: &str, queue: &str, max_wait_secs: Option<u32>) {
        let Some(q) = self.queues.get(queue) else {
            self.warn(
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
        self.event(AcdEvent::CallQueued {
            call_id: call_id.to_owned(),
            queue: queue.to_owned(),
            position,
        });
        self.qlog(now_ms, call_id, queue, None, QueueLogKind::EnterQueue);
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
    fn overflow(&mut self, now_ms: u64, call_id: &str, from: &str, why: &str) {
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
        self.qlog(now_ms, call_id, from, None, QueueLogKind::Overflow);
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        c.overflowed_from.push(from.to_owned());
        match target.strip_prefix("queue:") {
            Some(next) if c.overflowed_from.iter().any(|q| q == next) || next == from => {
                self.warn(Some(call_id), format!("overflow loop {from} -> {next}"));
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

    fn cancel_max_wait(&mut self, call_id: &str) {
        if let Some(t) = self
            .calls
            .get_mut(call_id)
            .and_then(|c| c.max_wait_timer.take())
        {
            self.timers.cancel(Cancel { timer: t });
        }
    }

    /// Free agents of `queue` that could take a call needing `skills`.
    fn candidates(&self, queue: &str, skills: &[String]) -> Vec<&Agent> {
        self.agents
            .values()
            .filter(|a| a.in_queue(queue) && a.state == AgentState::Ready && a.has_skills(skills))
            .collect()
    }

    /// Offer waiting calls to free agents, best call first.
    fn dispatch(&mut self, now_ms: u64, queue: &str) {
        loop {
            let Some(q) = self.queues.get(queue) else {
                return;
            };
            let mut pick = None;
            // Free agents once per pass, not once per waiting call (W x A string lookups).
            let ready = self.candidates(queue, &[]);
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
                    self.cmd(Ask::Ranking {
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

    fn ranked(&mut self, now_ms: u64, call_id: &str, ranking: Vec<AgentId>) {
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
        let free = self.candidates(&queue, &skills);
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

    fn offer(&mut self, now_ms: u64, call_id: &str, queue: Option<&str>, agents: Vec<AgentId>) {
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
                self.event(AcdEvent::CallOffered {
                    call_id: call_id.to_owned(),
                    agent: agent.clone(),
                    queue: queue.map(str::to_owned),
                    call: Box::new(info),
                    agent_info,
                });
            }
            let seq = self.next_seq();
            self.cmd(CallControl::Offer {
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
                self.qlog(now_ms, call_id, q, Some(&agent), QueueLogKind::Offered);
            }
            ringing.push((agent, seq));
        }
        if let Some(c) = self.calls.get_mut(call_id) {
            c.offered_ms.get_or_insert(now_ms);
            c.state = CallState::Ringing { agents: ringing };
        }
    }

    fn answered(&mut self, now_ms: u64, call_id: &str, agent: &str) {
        let Some(c) = self.calls.get_mut(call_id) else {
            self.cmd(CallControl::CancelOffer {
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
                self.cmd(CallControl::CancelOffer {
                    call_id: call_id.to_owned(),
                    agent: agent.to_owned(),
                });
            }
            return;
        };
        let Some(&(_, seq)) = agents.iter().find(|(a, _)| a == agent) else {
            self.cmd(CallControl::CancelOffer {
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
        self.cmd(CallControl::Bridge {
            call_id: call_id.to_owned(),
            agent: agent.to_owned(),
        });
        self.event(AcdEvent::CallConnected {
            call_id: call_id.to_owned(),
            agent: agent.to_owned(),
        });
        if let Some(q) = queue {
            self.qlog(now_ms, call_id, &q, Some(agent), QueueLogKind::Connect);
        }
    }

    /// An offer to `agent` ended without an answer: the agent goes not-ready
    /// and, when nobody else is ringing, the caller goes back to its place.
    fn offer_lost(
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
        self.cmd(CallControl::CancelOffer {
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
            self.qlog(now_ms, call_id, q, Some(agent), kind);
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

    /// Back into `queue` at the place the call had.
    fn requeue(&mut self, now_ms: u64, call_id: &str, queue: &str) {
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
        self.event(AcdEvent::CallQueued {
            call_id: call_id.to_owned(),
            queue: queue.to_owned(),
            position,
        });
        self.dispatch(now_ms, queue);
    }

    fn set_priority(&mut self, now_ms: u64, call_id: &str, priority: i32) {
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

    fn hung_up(&mut self, now_ms: u64, call_id: &str, by_caller: bool) {
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
                    self.qlog(now_ms, call_id, q, None, QueueLogKind::Abandon);
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
                        self.qlog(now_ms, call_id, q, Some(&agent), QueueLogKind::Abandon);
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
                    self.cmd(CallControl::HangUpAgent {
                        call_id: call_id.to_owned(),
                        agent: agent.clone(),
                    });
                } else {
                    self.cmd(CallControl::HangUpCaller {
                        call_id: call_id.to_owned(),
                    });
                }
                if let Some(q) = &queue {
                    self.qlog(now_ms, call_id, q, Some(&agent), QueueLogKind::Complete);
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
    fn end_by_host(&mut self, now_ms: u64, call_id: &str, reason: &str, why: HostEnd) {
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
                self.cmd(CallControl::HangUpAgent {
                    call_id: call_id.to_owned(),
                    agent: agent.clone(),
                });
                if !failed {
                    disposition = Disposition::Answered;
                    if let Some(q) = &queue {
                        self.qlog(now_ms, call_id, q, Some(&agent), QueueLogKind::Complete);
                    }
                }
                self.agent_done(now_ms, &agent, queue.as_deref());
            }
            _ => {}
        }
        self.cmd(CallControl::HangUpCaller {
            call_id: call_id.to_owned(),
        });
        self.end_call(now_ms, call_id, disposition, reason.to_owned());
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

    fn logout(&mut self, now_ms: u64, agent: &str) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        match a.state.clone() {
            AgentState::OnCall { call_id } => {
                self.warn(
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
    fn agent_done(&mut self, now_ms: u64, agent: &str, queue: Option<&str>) {
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

    /// Stop ringing `agent` for the call (someone else took it, or the caller
    /// left): cancel the offer and its timer; the agent is free again.
    fn withdraw_offer(&mut self, now_ms: u64, call_id: &str, agent: &str, seq: u64) {
        self.cmd(CallControl::CancelOffer {
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

    fn agent_to_ready(&mut self, now_ms: u64, agent: &str, login: bool) {
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

    /// Send the call outside the center and end it with `disposition`.
    fn send_on(
        &mut self,
        now_ms: u64,
        call_id: &str,
        target: &str,
        disposition: Disposition,
        cause: String,
    ) {
        self.cmd(CallControl::Forward {
            call_id: call_id.to_owned(),
            target: target.to_owned(),
        });
        self.end_call(now_ms, call_id, disposition, cause);
    }

    /// Refuse the caller with a SIP status and end the call with `disposition`.
    fn refuse(
        &mut self,
        now_ms: u64,
        call_id: &str,
        code: u16,
        reason: impl Into<String>,
        disposition: Disposition,
        cause: String,
    ) {
        self.cmd(CallControl::Reject {
            call_id: call_id.to_owned(),
            code,
            reason: reason.into(),
        });
        self.end_call(now_ms, call_id, disposition, cause);
    }

    fn end_call(&mut self, now_ms: u64, call_id: &str, disposition: Disposition, cause: String) {
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
        self.event(AcdEvent::CallEnded(Box::new(record)));
    }
}
