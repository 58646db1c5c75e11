//! Agents: who they are (config) and where they stand (state).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::model::{AcdEvent, AgentId, CallId};
use crate::calendar::{Calendar, Interval};

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

/// Every agent of the center: the agents concern owns their table, their
/// state changes and the day their "calls today" count.
#[derive(Debug)]
pub struct Roster {
    agents: BTreeMap<AgentId, Agent>,
    /// Start of the next local day (0: not yet known).
    next_day_ms: u64,
}

impl Roster {
    pub fn new(configs: Vec<AgentConfig>) -> Self {
        Self {
            agents: configs
                .into_iter()
                .map(|a| (a.id.clone(), Agent::new(a)))
                .collect(),
            next_day_ms: 0,
        }
    }

    pub fn get(&self, agent: &str) -> Option<&Agent> {
        self.agents.get(agent)
    }

    pub fn get_mut(&mut self, agent: &str) -> Option<&mut Agent> {
        self.agents.get_mut(agent)
    }

    pub fn values(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// Move an agent to `state`; a real change is told to the world.
    pub(crate) fn set_state(
        &mut self,
        now_ms: u64,
        agent: &str,
        state: AgentState,
        out: &mut crate::center::Outbox,
    ) {
        if let Some(a) = self.agents.get_mut(agent)
            && a.state != state
        {
            a.state = state.clone();
            a.state_since_ms = now_ms;
            out.event(AcdEvent::AgentStateChanged {
                agent: agent.to_owned(),
                state,
            });
        }
    }

    /// Per queue, in one pass over the agents: (logged in, ready).
    pub fn staffing(&self) -> HashMap<&str, (u32, u32)> {
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

    /// Free agents of `queue` that could take a call needing `skills`.
    pub fn candidates(&self, queue: &str, skills: &[String]) -> Vec<&Agent> {
        self.agents
            .values()
            .filter(|a| a.in_queue(queue) && a.state == AgentState::Ready && a.has_skills(skills))
            .collect()
    }

    /// At a local midnight (or the first event): the "today" counts start
    /// again, so "fewest calls today" is fair from the first call of the day.
    pub fn roll_day(&mut self, now_ms: u64, calendar: &Calendar) {
        if now_ms < self.next_day_ms {
            return;
        }
        if self.next_day_ms != 0 {
            for a in self.agents.values_mut() {
                a.calls_today = 0;
            }
        }
        self.next_day_ms = calendar.end_of(Interval::Day, calendar.start_of(Interval::Day, now_ms));
    }
}
