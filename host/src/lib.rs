//! ctihost: a single-binary CTI platform for bank call centers.
//!
//! Library code takes configuration values and a shutdown signal; only the
//! binary reads the command line and the environment.

pub mod acd;
pub mod api;
pub mod calendar;
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
pub mod sip;
pub mod stop;
pub mod store;
