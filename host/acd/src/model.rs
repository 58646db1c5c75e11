//! What goes into and out of the ACD.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::vocabulary::{
    AgentCandidate, AgentInfo, CallInfo, IvrStep, PolicyEvent, RecordingAction, RecordingDecision,
    RouteDecision,
};

pub type CallId = String;
pub type AgentId = String;

/// Why an agent's phone did not take an offered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OfferFailure {
    /// 486 Busy Here.
    Busy,
    /// 480 Temporarily Unavailable / 408 Request Timeout: the phone is not reachable.
    Unavailable,
    /// 603 Decline: the agent refused.
    Declined,
    /// Any other failure of the agent leg.
    Failed,
}

/// Something that happened, fed to [`super::Acd::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// A new inbound call.
    Arrived {
        call_id: CallId,
        caller: String,
        dialed: String,
        trunk: String,
        attributes: Vec<(String, String)>,
    },
    /// The router plugin answered (`plugin_version` goes into the call record).
    RouteDecided {
        call_id: CallId,
        decision: RouteDecision,
        plugin: String,
        plugin_version: String,
    },
    /// The router ranked the candidates of a queued call (best first; empty =
    /// no opinion).
    AgentsRanked {
        call_id: CallId,
        ranking: Vec<AgentId>,
        plugin: String,
        /// None: the router could not be asked (nothing it decided).
        plugin_version: Option<String>,
    },
    /// The recording policy decided what to record when the call connected
    /// (None: it could not be asked, and both legs are recorded).
    RecordingDecided {
        call_id: CallId,
        decision: Option<RecordingDecision>,
        plugin: String,
        plugin_version: String,
    },
    /// The recording policy answered one of the call's events (None: it
    /// could not be asked, and nothing changes; the record keeps the
    /// version that last decided).
    RecordingActed {
        call_id: CallId,
        action: Option<RecordingAction>,
        plugin: String,
        plugin_version: String,
    },
    /// An agent asks the recording policy to "pause" or "resume" (checked
    /// with [`super::Acd::recording_request`] first).
    RecordingRequested {
        call_id: CallId,
        request: String,
    },
    /// The screen-pop built the card of an offered call.
    CardBuilt {
        call_id: CallId,
        plugin: String,
        plugin_version: String,
    },
    /// An IVR step ended with these digits.
    DigitsCollected {
        call_id: CallId,
        step: String,
        digits: String,
    },
    /// The caller pressed a key outside an IVR step (for the recording
    /// policy; never logged).
    Dtmf {
        call_id: CallId,
        digit: char,
    },
    /// The agent's phone answered the offered call.
    AgentAnswered {
        call_id: CallId,
        agent: AgentId,
    },
    /// The agent's phone refused or failed the offered call.
    OfferFailed {
        call_id: CallId,
        agent: AgentId,
        failure: OfferFailure,
    },
    CallerHungUp {
        call_id: CallId,
    },
    AgentHungUp {
        call_id: CallId,
    },
    /// The call could not go on (media or transport failure).
    CallFailed {
        call_id: CallId,
        reason: String,
    },
    AgentLogin {
        agent: AgentId,
    },
    AgentLogout {
        agent: AgentId,
    },
    AgentReady {
        agent: AgentId,
    },
    AgentNotReady {
        agent: AgentId,
        reason: String,
    },
    /// The agent finished after-call work early.
    WrapUpDone {
        agent: AgentId,
    },
    /// Change a waiting call's priority (it moves in the queue at once).
    SetPriority {
        call_id: CallId,
        priority: i32,
    },
    /// The host is stopping: end the call both ways now. An answered call
    /// keeps its disposition; one that never reached an agent is
    /// `interrupted`.
    HostStopping {
        call_id: CallId,
    },
    /// End the call from the API (`by`: who asked, for the record).
    HangUp {
        call_id: CallId,
        by: String,
    },
    /// Blind transfer from the API: the call leaves its agent or queue for `target`.
    Transfer {
        call_id: CallId,
        target: TransferTarget,
        by: String,
    },
}

/// Where a blind transfer sends a call. JSON: `{"queue": "vip"}`,
/// `{"agent": "1002"}` or `{"number": "95588"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum TransferTarget {
    Queue(String),
    Agent(AgentId),
    Number(String),
}

impl std::fmt::Display for TransferTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferTarget::Queue(q) => write!(f, "queue {q}"),
            TransferTarget::Agent(a) => write!(f, "agent {a}"),
            TransferTarget::Number(n) => write!(f, "number {n}"),
        }
    }
}

/// Why the center refused a request of the API (checked before it is applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the state things are in now.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the call center is not running")]
    Stopped,
}

/// The core's timers (see `timers.rs`); `seq` tells a timer of an earlier
/// ring or wrap-up from the current one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerId {
    MaxWait {
        call_id: CallId,
        seq: u64,
    },
    RingNoAnswer {
        call_id: CallId,
        agent: AgentId,
        seq: u64,
    },
    WrapUp {
        agent: AgentId,
        seq: u64,
    },
    /// Time to tell a waiting caller its position and wait.
    Announce {
        call_id: CallId,
        seq: u64,
    },
}

/// What the core asks of plugins; the driver asks and the answer comes
/// back as a [`CallEvent`].
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// Ask the router plugin for a decision; answer with `RouteDecided`.
    Router {
        call_id: CallId,
        info: Box<CallInfo>,
    },
    /// Ask the router plugin to rank candidates; answer with `AgentsRanked`.
    Ranking {
        call_id: CallId,
        queue: String,
        info: Box<CallInfo>,
        candidates: Vec<AgentCandidate>,
    },
    /// Ask the recording policy: at connect (`event` None) whether and what
    /// to record, later what an event changes (`paused`: the recording's
    /// state now). One ask per call at a time, in order; answer with
    /// `RecordingDecided` or `RecordingActed`.
    RecordingPolicy {
        call_id: CallId,
        info: Box<CallInfo>,
        event: Option<PolicyEvent>,
        paused: bool,
    },
}

/// Call control, carried out by the SIP side.
#[derive(Debug, Clone, PartialEq)]
pub enum CallControl {
    /// Ring the agent's phone with the call.
    Offer {
        call_id: CallId,
        agent: AgentId,
        sip_user: String,
    },
    /// Stop ringing that agent (the call went elsewhere or the caller left).
    CancelOffer { call_id: CallId, agent: AgentId },
    /// Connect the caller with the agent who answered.
    Bridge { call_id: CallId, agent: AgentId },
    /// Send the call outside the center.
    Forward { call_id: CallId, target: String },
    /// Refuse the call.
    Reject {
        call_id: CallId,
        code: u16,
        reason: String,
    },
    /// End the caller's leg (the agent hung up, or the call failed).
    HangUpCaller { call_id: CallId },
    /// End the agent's leg (the caller hung up).
    HangUpAgent { call_id: CallId, agent: AgentId },
}

/// Media, carried out on the call's relay (by call id).
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Play a prompt and collect digits; answer with `DigitsCollected`.
    RunIvr { call_id: CallId, step: IvrStep },
    /// The call waits in a queue: answer the caller if need be and play
    /// music (None: silence between announcements).
    Hold {
        call_id: CallId,
        music: Option<String>,
    },
    /// Tell a waiting caller where it stands.
    Announce {
        call_id: CallId,
        position: u32,
        wait_secs: u32,
    },
    /// Start recording the call (from the policy's decision).
    Record {
        call_id: CallId,
        plan: RecordingPlan,
    },
    /// Pause or resume the call's recording.
    PauseRecording { call_id: CallId, paused: bool },
}

/// What the adapters carry out: one channel, each audience its own type,
/// so every consumer matches every command of its audience.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Call(CallControl),
    Media(MediaCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Legs {
    Caller,
    Agent,
    Both,
}

/// What the recording policy decided, as the recorder needs it (data the
/// center hands the media layer; defined here so `media` depends on `acd`,
/// never the reverse).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingPlan {
    pub legs: Legs,
    /// 0 keeps the recording until deleted by hand.
    pub retention_days: u32,
    pub policy: String,
    /// Content hash of the policy plugin that decided ("fallback: ..." if it failed).
    pub policy_version: String,
    pub reason: String,
}

/// How a call ended, as the call record says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    Answered,
    AbandonedInQueue,
    AbandonedRinging,
    /// The caller hung up before reaching a queue (routing, IVR).
    AbandonedInIvr,
    Rejected,
    Overflowed,
    Forwarded,
    Failed,
    /// The host stopped (a crash, `kill -9`) while the call was live; the
    /// record is written at the next start from what was known.
    Interrupted,
}

impl Disposition {
    /// The name used in call records and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::AbandonedInQueue => "abandoned-in-queue",
            Disposition::AbandonedRinging => "abandoned-ringing",
            Disposition::AbandonedInIvr => "abandoned-in-ivr",
            Disposition::Rejected => "rejected",
            Disposition::Overflowed => "overflowed",
            Disposition::Forwarded => "forwarded",
            Disposition::Failed => "failed",
            Disposition::Interrupted => "interrupted",
        }
    }
}

/// One record per call (CDR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: CallId,
    pub caller: String,
    pub dialed: String,
    pub trunk: String,
    pub arrived_ms: u64,
    pub queued_ms: Option<u64>,
    pub offered_ms: Option<u64>,
    pub answered_ms: Option<u64>,
    pub ended_ms: u64,
    /// The last queue the call waited in.
    pub queue: Option<String>,
    pub agent: Option<AgentId>,
    pub disposition: Disposition,
    /// Seconds from entering the first queue to answer (or to the end).
    pub wait_secs: f64,
    pub talk_secs: f64,
    /// Queues the call overflowed from, in order.
    pub overflowed_from: Vec<String>,
    /// Plugin name -> content hash of every plugin version that decided something.
    pub plugin_versions: BTreeMap<String, String>,
    /// Why it ended, in words (reject reason, failure).
    pub cause: String,
}

/// Queue events, as the queue log keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueLogKind {
    EnterQueue,
    Offered,
    RingNoAnswer,
    OfferFailed,
    Connect,
    Abandon,
    Overflow,
    Complete,
}

/// What the ACD tells the outside world.
#[derive(Debug, Clone, PartialEq)]
pub enum AcdEvent {
    CallArrived {
        call_id: CallId,
        caller: String,
        dialed: String,
    },
    CallQueued {
        call_id: CallId,
        queue: String,
        position: usize,
    },
    /// Sent before the agent's phone is rung, with what the screen-pop needs.
    CallOffered {
        call_id: CallId,
        agent: AgentId,
        queue: Option<String>,
        call: Box<CallInfo>,
        agent_info: AgentInfo,
    },
    CallTransferred {
        call_id: CallId,
        target: TransferTarget,
        by: String,
    },
    CallConnected {
        call_id: CallId,
        agent: AgentId,
    },
    CallEnded(Box<CallRecord>),
    AgentStateChanged {
        agent: AgentId,
        state: super::AgentState,
    },
    QueueLog {
        at_ms: u64,
        call_id: CallId,
        queue: String,
        agent: Option<AgentId>,
        kind: QueueLogKind,
    },
    /// A rule could not be applied as asked (unknown queue, IVR loop, ...).
    Warning {
        call_id: Option<CallId>,
        message: String,
    },
}

/// Everything [`super::Acd::handle`] answers, by audience.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Ask(Ask),
    Call(CallControl),
    Media(MediaCommand),
    Event(AcdEvent),
}

impl From<Ask> for Output {
    fn from(a: Ask) -> Self {
        Output::Ask(a)
    }
}

impl From<CallControl> for Output {
    fn from(c: CallControl) -> Self {
        Output::Call(c)
    }
}

impl From<MediaCommand> for Output {
    fn from(m: MediaCommand) -> Self {
        Output::Media(m)
    }
}

impl From<AcdEvent> for Output {
    fn from(e: AcdEvent) -> Self {
        Output::Event(e)
    }
}

/// Live state of the center, for metrics, the API and the supervisor's views.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AcdSnapshot {
    pub at_ms: u64,
    pub queues: Vec<QueueSnapshot>,
    /// Agent state name ("ready", "on-call", ...) -> agents in it.
    pub agents_by_state: BTreeMap<&'static str, u32>,
    pub agents: Vec<AgentSnapshot>,
    pub calls: Vec<CallSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSnapshot {
    pub name: String,
    pub waiting: u32,
    pub longest_wait_ms: u64,
    pub agents_logged_in: u32,
    pub agents_ready: u32,
    /// Waiting calls in serving order.
    pub calls: Vec<WaitingCall>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingCall {
    pub call_id: CallId,
    pub caller: String,
    pub priority: i32,
    pub wait_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSnapshot {
    pub id: AgentId,
    pub name: String,
    #[serde(flatten)]
    pub state: super::AgentState,
    /// When the agent entered this state (ms since the epoch).
    pub since_ms: u64,
    pub calls_today: u32,
    pub queues: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallSnapshot {
    pub call_id: CallId,
    pub caller: String,
    pub dialed: String,
    pub trunk: String,
    /// "routing", "ivr", "queued", "ringing" or "connected".
    pub state: &'static str,
    pub queue: Option<String>,
    pub agent: Option<AgentId>,
    pub priority: i32,
    pub arrived_ms: u64,
    pub answered_ms: Option<u64>,
}
