//! The call-center core: calls, queues, agents and the rules that connect them.
//!
//! Pure logic, driven by [`CallEvent`]s (with the current time) and answering
//! with [`Output`]s: [`Command`]s for the adapters (SIP, media, plugin calls,
//! timers) and [`AcdEvent`]s for the outside world (API, store). It never
//! touches a socket or a clock, so every rule is unit-tested without a network.

mod agent;
mod center;
mod model;
mod queue;
mod strategy;
#[cfg(test)]
mod tests;

pub use agent::{AgentConfig, AgentState};
pub use center::{Acd, AcdSettings};
pub use model::*;
pub use queue::QueueConfig;
pub use strategy::Strategy;
