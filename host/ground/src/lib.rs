//! The ground floor every room of the host stands on, so that no room needs
//! another for it.
//!
//! * [`clock`] - the wall clock in milliseconds and microseconds since the
//!   Unix epoch (record stamps, latency stamps compared across processes).
//! * [`random`] - bytes and hex tokens from the OS source (session tokens,
//!   nonce secrets, SIP tags and branches, RTP SSRCs).
//! * [`log_limit`] - log lines the network or a plugin can cause at its own
//!   rate (a refused message, a bad login, a failing plugin) are written at
//!   most a few a second per cause, with a count of the rest.
//! * [`shutdown`] - one shutdown for every long-lived loop of every room
//!   (mini-redis's model): each loop holds a `Shutdown`, `run` waits for all.
//!
//! The call-center core uses none of them: it is handed `now` with each
//! event, writes no log and runs no loop.

pub mod clock;
pub mod log_limit;
pub mod random;
pub mod shutdown;
