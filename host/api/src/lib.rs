//! ctihost's web room: what people and their tools see of the center.
//!
//! # Map
//!
//! * [`admin`] - the admin API behind the admin token: plugins (list,
//!   reload, rollback, history), call records and their export, reports,
//!   SIP registrations, media, recordings, the drain; [`auth`] - the token
//!   and sessions as axum extractors.
//! * [`cti`] - the CTI API for agents' desktops and supervisors (state,
//!   calls, transfer, recording requests); [`events`] - its WebSocket event
//!   stream; [`wallboard`] - the supervisors' live figures.
//! * [`session`] - desktop logins and sessions (kept in the store),
//!   [`password`] - argon2 hashes, [`login_pool`] - the bounded threads
//!   that check passwords, [`audit_budget`] - audit rows per source.
//! * [`recording_audio`] - a call's recording for the admin token and
//!   supervisors: decrypted when sealed, hash-checked, audited.
//! * [`pages`] - the embedded desktop and wallboard pages, the OpenAPI
//!   document.
//! * [`metrics`] - the host's counters and their Prometheus rendering
//!   (it implements the SIP room's and the driver's counter traits);
//!   [`reports`] - interval reports from the call records.
//! * [`stop_request`] - the port through which the API asks the host to
//!   stop; the binary carries the stop out.
//!
//! Arrows: the API stands on every room below it (the driver's handle,
//! the store, the plugin runtime, the SIP endpoint, the relays) and none of
//! them names it; only the binary (`ctihost`) is above it.

pub mod admin;
pub mod audit_budget;
pub mod auth;
pub mod cti;
pub mod events;
pub mod login_pool;
pub mod pages;
pub mod password;
pub mod recording_audio;
pub mod session;
pub mod wallboard;

pub mod metrics;
pub mod reports;
pub mod stop_request;

// The rooms below, by the names the modules use.
use ctihost_acd as acd;
use ctihost_acd::calendar;
use ctihost_center as center;
use ctihost_ground::{clock, log_limit, random, shutdown};
use ctihost_media as media;
use ctihost_plugins as plugins;
use ctihost_sip as sip;
use ctihost_store as store;

pub use admin::router as admin_router;
