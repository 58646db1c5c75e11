//! One live call: where it stands, what it went through, what it waits for.

use std::collections::BTreeMap;

use super::recording;
use crate::model::{AgentId, CallId, TimerId};
use crate::vocabulary::{IvrEntry, IvrStep};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum CallState {
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
    pub(super) fn name(&self) -> &'static str {
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
pub(super) struct Call {
    pub(super) id: CallId,
    pub(super) caller: String,
    pub(super) dialed: String,
    pub(super) trunk: String,
    pub(super) attributes: Vec<(String, String)>,
    pub(super) arrived_ms: u64,
    pub(super) ivr: Vec<IvrEntry>,
    pub(super) ivr_step: Option<IvrStep>,
    pub(super) state: CallState,
    pub(super) queued_ms: Option<u64>,
    pub(super) offered_ms: Option<u64>,
    pub(super) answered_ms: Option<u64>,
    pub(super) queue: Option<String>,
    pub(super) agent: Option<AgentId>,
    pub(super) priority: i32,
    pub(super) skills: Vec<String>,
    /// First time the call entered its current queue (kept across re-queues).
    pub(super) entered_ms: u64,
    pub(super) overflow: Option<String>,
    pub(super) overflowed_from: Vec<String>,
    pub(super) plugin_versions: BTreeMap<String, String>,
    pub(super) max_wait_timer: Option<TimerId>,
    /// The caller's leg is answered (by the IVR, the queue's music or an agent).
    pub(super) connected: bool,
    pub(super) announce_timer: Option<TimerId>,
    pub(super) recording: recording::Recording,
}

impl Call {
    /// A call that just arrived: the router is asked first.
    pub(super) fn new(
        id: CallId,
        caller: String,
        dialed: String,
        trunk: String,
        attributes: Vec<(String, String)>,
        now_ms: u64,
    ) -> Self {
        Self {
            id,
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
        }
    }

    /// A plugin decided something for this call: its record names the version.
    pub(super) fn note_version(&mut self, plugin: String, version: String) {
        self.plugin_versions.insert(plugin, version);
    }
}
