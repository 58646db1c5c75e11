//! The call-center core of ctihost: calls, queues, agents and the rules that
//! connect them.
//!
//! Pure logic. It never touches a socket, a clock, a file or a plugin: the
//! driver feeds it one [`CallEvent`] at a time with the current time and
//! carries out what it answers. So every rule is unit-tested without a
//! network, and a simulator can run the same core.
//!
//! # Concepts
//!
//! * [`Acd`] - the state machine of one center: its agents, its queues and
//!   one state per live call. [`Acd::handle`] takes an event and returns
//!   [`Output`]s; [`Acd::check`] says beforehand whether a request of the API
//!   fits the state things are in ([`Refusal`]).
//! * [`CallEvent`] - what happened: a call arrived, a plugin decided, digits
//!   were collected, a leg answered or hung up, an agent changed state, the
//!   API asked for something.
//! * [`Output`] - what the core answers, one type per audience, each
//!   matched exhaustively by its consumer: [`Ask`] for the plugins (router,
//!   ranking, recording policy; the answers come back as events),
//!   [`CallControl`] for SIP (ring, bridge, forward, reject, hang up),
//!   [`MediaCommand`] for the call's relay (play and collect, hold,
//!   announce, record, pause) and [`AcdEvent`] for the world. [`Command`]
//!   carries the adapters' two on one channel.
//! * Timers are the core's own: [`Acd::next_deadline`] says when it next
//!   needs waking and [`Acd::handle_timeout`] fires what is due, so the
//!   driver sleeps on one deadline (as `sip::transaction` does).
//! * [`AcdEvent`] - what the outside world is told: the API's event stream
//!   and the store's call records ([`CallRecord`]) and queue log.
//! * [`vocabulary`] - the core's own words for what plugins are told and
//!   what they decide ([`CallInfo`], [`RouteDecision`], [`IvrStep`], ...).
//!   They mirror the WIT contract but are not its generated bindings: the
//!   plugin runtime converts at its edge, so a new WIT version does not
//!   reach the core.
//! * [`calendar`] - where days begin in the center's time zone (agents'
//!   calls today, reports).
//! * [`AcdSnapshot`] - the live state for metrics, the API and the
//!   supervisor's views.
//!
//! Dependencies: serde, thiserror and jiff (time zones) only.

mod agent;
pub mod calendar;
mod center;
mod model;
mod queue;
mod strategy;
#[cfg(test)]
mod tests;
mod timers;
/// The words shared with the plugin runtime (crate `ctihost-vocabulary`).
pub use ctihost_vocabulary as vocabulary;

pub use agent::{AgentConfig, AgentState};
pub use center::{Acd, AcdSettings, MAX_PENDING_ASKS, RecordingRefusal};
pub use model::*;
pub use queue::QueueConfig;
pub use strategy::Strategy;
pub use vocabulary::{
    AgentCandidate, AgentInfo, CallInfo, Card, CardField, CardLink, Customer, IvrEntry, IvrStep,
    PolicyEvent, QueueStats, QueueTarget, RecordMode, RecordingAction, RecordingDecision,
    Rejection, RouteDecision,
};
