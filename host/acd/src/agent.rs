//! Agents: who they are (config) and where they stand (state).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{AgentId, CallId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub id: AgentId,
    #[serde(default)]
    pub name: String,
    /// SIP user their phone registers as.
    pub sip_user: String,
    /// Skill -> level 1..=100.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Queue -> weight (higher = preferred for that queue; default 1).
    #[serde(default)]
    pub queues: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum AgentState {
    LoggedOut,
    Ready,
    NotReady {
        reason: String,
    },
    /// Chosen for a call; the phone is ringing.
    Ringing {
        call_id: CallId,
    },
    OnCall {
        call_id: CallId,
    },
    /// After-call work; back to ready by timer or `WrapUpDone`.
    WrapUp,
}

impl AgentState {
    /// The state's name in metrics and the API.
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged-out",
            AgentState::Ready => "ready",
            AgentState::NotReady { .. } => "not-ready",
            AgentState::Ringing { .. } => "ringing",
            AgentState::OnCall { .. } => "on-call",
            AgentState::WrapUp => "wrap-up",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub config: AgentConfig,
    pub state: AgentState,
    /// When the agent entered `state`.
    pub state_since_ms: u64,
    /// When the agent last became free (ready or end of a call), for longest-idle.
    pub idle_since_ms: u64,
    pub calls_today: u32,
    /// A not-ready asked for during a call applies when the call's work is done.
    pub pending_not_ready: Option<String>,
    pub wrap_up_seq: u64,
}

impl Agent {
    pub fn new(config: AgentConfig) -> Self {
        Self {
            config,
            state: AgentState::LoggedOut,
            state_since_ms: 0,
            idle_since_ms: 0,
            calls_today: 0,
            pending_not_ready: None,
            wrap_up_seq: 0,
        }
    }

    pub fn in_queue(&self, queue: &str) -> bool {
        self.config.queues.contains_key(queue)
    }

    pub fn logged_in(&self) -> bool {
        self.state != AgentState::LoggedOut
    }

    pub fn has_skills(&self, skills: &[String]) -> bool {
        skills.iter().all(|s| self.config.skills.contains_key(s))
    }

    pub fn weight(&self, queue: &str) -> u32 {
        self.config.queues.get(queue).copied().unwrap_or(0)
    }
}
