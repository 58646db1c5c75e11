//! ctihost: a single-binary CTI platform for bank call centers.
//!
//! Library code takes configuration values and a shutdown signal; only the
//! binary reads the command line and the environment.
//!
//! # Map
//!
//! * [`acd`] - the call-center core, its own crate (`ctihost-acd`): events
//!   in, asks/commands/events out, its own timers and vocabulary.
//! * [`center`] - the driver, its own crate (`ctihost-center`): runs the
//!   core, puts its asks to [`plugins`], writes call records to [`store`],
//!   hands commands to [`sip`] through a channel.
//! * [`plugins`] - the WebAssembly runtime, its own crate
//!   (`ctihost-plugins`): WIT bindings, typed calls in the core's
//!   vocabulary, sandbox limits, versions, hot reload, rollback; its
//!   storage through traits the [`store`] implements. [`stock_plugins`] -
//!   the default plugins compiled into the binary.
//! * [`sip`] - transports, transactions, registrar, dialogs, the B2BUA, its
//!   own crate (`ctihost-sip`); [`media`] - relay, prompts, DTMF, recorder,
//!   its own crate (`ctihost-media`).
//! * [`store`] - sled: call records, logs, recordings' index, sessions,
//!   plugin data, its own crate (`ctihost-store`); [`api`] - admin and CTI
//!   REST, events, pages, metrics.
//! * [`clock`], [`random`], [`log_limit`], [`shutdown`] - the ground floor
//!   every room stands on (crate `ctihost-ground`).
//! * [`server`] wires them for `ctihost run`; [`stop`] drains and stops;
//!   [`tls`] loads (or, for the API, generates) the TLS identities;
//!   [`config`] reads the TOML; the binary's `cli` is the command line.
//!
//! `docs/architecture.md` draws the arrows between them.

// The web room is its own crate; `crate::api` keeps naming it here.
pub use ctihost_api as api;
pub use ctihost_api::{metrics, reports};
// The core is its own crate; `crate::acd` keeps naming it here.
pub use ctihost_acd as acd;
pub use ctihost_acd::calendar;
// The driver is its own crate; `crate::center` keeps naming it here.
pub use ctihost_center as center;
// The ground crate's: every room uses them.
pub use ctihost_ground::{clock, log_limit, random, shutdown};
pub mod config;
pub mod demo;
// Media is its own crate; `crate::media` keeps naming it here.
pub use ctihost_media as media;
// The plugin runtime is its own crate; `crate::plugins` keeps naming it here.
pub use ctihost_plugins as plugins;
pub mod server;
// SIP is its own crate; `crate::sip` keeps naming it here.
pub use ctihost_sip as sip;
pub mod stock_plugins;
pub mod stop;
pub mod tls;
// The store is its own crate; `crate::store` keeps naming it here.
pub use ctihost_store as store;
