//! What the core knows of a call when it asks for a decision, and the
//! decisions it takes back: the core's own words for the plugin contract.
//!
//! These mirror the records of `cti:plugin/types` field for field (and
//! serialize the same way), but they are not the generated bindings: the
//! plugin runtime converts at its edge, so a new WIT version changes the
//! conversions, not the core. Data only, in a crate of its own: the core
//! (`ctihost-acd`) and the plugin runtime both speak it and neither depends
//! on the other.

use serde::{Deserialize, Serialize};

/// A customer as a CRM connector knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub segment: String,
    pub language: Option<String>,
    /// Account numbers in clear: never logged.
    pub accounts: Vec<String>,
    pub last_contact: Option<String>,
    pub notes: Vec<String>,
    pub attributes: Vec<(String, String)>,
}

/// Digits a caller entered in one IVR step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IvrEntry {
    pub step: String,
    pub digits: String,
    /// The digits are never logged or stored; they reach plugins only.
    pub sensitive: bool,
}

/// Live figures of one queue when a plugin is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    pub name: String,
    pub waiting: u32,
    pub longest_wait_secs: u32,
    pub agents_ready: u32,
    pub agents_logged_in: u32,
    pub estimated_wait_secs: u32,
}

/// Everything a plugin may know about a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    pub call_id: String,
    pub caller: String,
    pub dialed: String,
    pub trunk: String,
    pub arrived_at_ms: u64,
    /// IVR steps answered so far, oldest first.
    pub ivr: Vec<IvrEntry>,
    pub attributes: Vec<(String, String)>,
    pub customer: Option<Customer>,
    pub queues: Vec<QueueStats>,
}

/// Play a prompt, then collect digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IvrStep {
    pub name: String,
    pub prompt: String,
    /// 0 plays the prompt only.
    pub max_digits: u8,
    pub terminator: Option<String>,
    pub inter_digit_timeout_ms: u32,
    /// Card numbers, PINs: never logged, stored or recorded.
    pub sensitive: bool,
}

/// Put the call in a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTarget {
    pub queue: String,
    /// Higher is served first.
    pub priority: i32,
    pub skills: Vec<String>,
    /// None: the queue's own.
    pub max_wait_secs: Option<u32>,
    /// "queue:NAME" or a number/URI to forward to.
    pub overflow: Option<String>,
}

impl QueueTarget {
    /// A plain queue decision, for tests and fallbacks.
    pub fn plain(queue: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            priority: 0,
            skills: vec![],
            max_wait_secs: None,
            overflow: None,
        }
    }
}

/// Refuse the call with a SIP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: u16,
    pub reason: String,
}

/// What a router decided for a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteDecision {
    Ivr(IvrStep),
    Queue(QueueTarget),
    /// Offer the call to one agent, by id.
    Agent(String),
    /// Send the call outside the center (number or SIP URI).
    Forward(String),
    Reject(Rejection),
}

/// An agent a queued call could be offered to (for the router's ranking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCandidate {
    pub id: String,
    /// Skills with levels 1-100.
    pub skills: Vec<(String, u8)>,
    pub idle_secs: u32,
    pub calls_today: u32,
}

/// The agent a call is offered to (for the screen-pop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub id: String,
    pub name: String,
    pub skills: Vec<String>,
}

/// Something that happened on a call, for the recording policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyEvent {
    IvrStepEntered(IvrStep),
    /// By step name.
    IvrStepLeft(String),
    /// One of 0-9 * # A-D.
    Dtmf(String),
    /// The call is being transferred to this target.
    Transfer(String),
    /// "pause" or "resume", from the agent's desktop.
    AgentRequest(String),
}

/// Which legs of a call to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordMode {
    None,
    Caller,
    Agent,
    Both,
}

/// A recording policy's decision when a call connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingDecision {
    pub mode: RecordMode,
    /// 0 keeps the recording until deleted by hand.
    pub retention_days: u32,
    /// Why, for the audit log.
    pub reason: String,
}

/// What the recording policy wants done about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordingAction {
    Keep,
    /// The paused span is recorded as silence.
    Pause,
    Resume,
}

impl RecordingAction {
    /// Whether the recording is paused after this action.
    pub fn apply(self, paused: bool) -> bool {
        match self {
            RecordingAction::Pause => true,
            RecordingAction::Resume => false,
            RecordingAction::Keep => paused,
        }
    }
}

/// One labelled value on a screen-pop card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardField {
    pub label: String,
    pub value: String,
}

/// A link on a screen-pop card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardLink {
    pub label: String,
    /// Absolute URL (checked before it reaches a page).
    pub url: String,
}

/// What the agent sees when a call is offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub title: String,
    pub fields: Vec<CardField>,
    pub links: Vec<CardLink>,
    pub notes: Vec<String>,
}
