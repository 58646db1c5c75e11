//! ctihost's SIP room: the adapter between the wire and the call-center
//! core. It turns trunk INVITEs into the core's `CallEvent`s and executes
//! the core's call-control commands as SIP legs.
//!
//! # Map
//!
//! * [`wire`] - framing and a tolerant raw view of a message (around
//!   `rsip`'s gaps); [`syntax`] - the RFC 3261 grammar checked before a
//!   transaction exists; [`flow`] - where a message came from or goes.
//! * [`transaction`] - the four RFC 3261 state machines, sans-IO: they own
//!   their timers and say their next deadline.
//! * [`transport`] - UDP and TCP on tokio; [`endpoint`] - checks each
//!   message, runs the transaction layer, hands requests to the registrar
//!   or the B2BUA, drives the timers; [`source_rate`] - requests per source.
//! * [`registrar`] - phones' REGISTER with [`digest`] authentication;
//!   bindings go to a sink (the store) so a restart still reaches them.
//! * [`b2bua`] - calls: the caller's leg, agents' legs, each side a
//!   [`dialog`] (tags, CSeq, route set); [`info_dtmf`] - keys sent by INFO.
//! * [`metrics`] - what the room counts, as a trait the host's metrics
//!   implement.
//!
//! Arrows: this crate speaks the core's events and commands (`ctihost-acd`),
//! opens each call's relay in `ctihost-media`, and stands on
//! `ctihost-ground`. It knows nothing of plugins, the store or the web: the
//! driver it reports to is a [`b2bua::CallSink`] (which may refuse a new
//! call at its door), its sinks and counters are traits or closures handed
//! in by the wiring.

pub mod b2bua;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod flow;
pub mod info_dtmf;
pub mod metrics;
pub mod registrar;
pub mod source_rate;
pub mod syntax;
pub mod transaction;
pub mod transport;
pub mod wire;

pub use metrics::SipMetrics;
