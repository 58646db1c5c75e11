//! ctihost: a single-binary CTI platform for bank call centers.
//!
//! Library code takes configuration values and a shutdown signal; only the
//! binary reads the command line and the environment.
//!
//! # Map
//!
//! * [`acd`] - the call-center core, its own crate (`ctihost-acd`): events
//!   in, asks/commands/events out, its own timers and vocabulary.
//! * [`center`] - the driver: runs the core, puts its asks to [`plugins`],
//!   writes call records to [`store`], hands commands to [`sip`].
//! * [`plugins`] - the WebAssembly runtime: WIT bindings, typed calls in the
//!   core's vocabulary, sandbox limits, versions, hot reload, rollback.
//! * [`sip`] - transports, transactions, registrar, dialogs, the B2BUA;
//!   [`media`] - relay, prompts, DTMF, recorder.
//! * [`store`] - sled: call records, logs, recordings' index, sessions,
//!   plugin data; [`api`] - admin and CTI REST, events, pages, metrics.
//! * [`server`] wires them for `ctihost run`; [`stop`] drains and stops;
//!   [`config`] reads the TOML; the binary's `cli` is the command line.
//!
//! `docs/architecture.md` draws the arrows between them.

pub mod api;
// The core is its own crate; `crate::acd` keeps naming it here.
pub use ctihost_acd as acd;
pub use ctihost_acd::calendar;
pub mod center;
pub mod clock;
pub mod config;
pub mod demo;
pub mod log_limit;
pub mod media;
pub mod metrics;
pub mod plugins;
pub mod random;
pub mod reports;
pub mod server;
pub mod shutdown;
pub mod sip;
pub mod stop;
pub mod store;
