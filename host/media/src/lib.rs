//! ctihost's media room: an RTP relay anchoring each call's audio at the
//! host, between the caller's leg and the agent's leg.
//!
//! SDP offered to either side carries the host's address and a relay port
//! from the configured range; each side is latched to the address its
//! packets actually come from (symmetric RTP, for phones behind NAT); ports
//! go back to the pool when the call's relay is dropped. A caller whose RTP
//! stops is reported after a configurable time. Before an agent answers the
//! relay plays prompts and music and collects digits (RFC 4733, or SIP INFO
//! handed in by the SIP room); the recorder taps both directions.
//!
//! # Map
//!
//! * [`Media`] - the relays of all calls by call id, the port pool and the
//!   prompts; [`Relay`] is one call's, driven by [`Control`] messages (the
//!   core's media commands) and reporting [`ctihost_acd::CallEvent`]s
//!   through an [`EventSink`].
//! * [`rtp`] - packets, the host's own outgoing streams (SSRC, sequence,
//!   clock) and the RFC 4733 DTMF detector; [`g711`] - A-law and mu-law.
//! * [`sdp`] - reading a peer's offer or answer, writing the host's;
//!   [`srtp`] - SRTP per leg, keyed by the SDES `a=crypto` lines.
//! * [`prompts`] - the built-in voice prompts and music (WAV files compiled
//!   in from `prompts/`, overridable from a directory); [`player`] - plays
//!   a queue of them into a leg.
//! * [`recorder`] - stereo WAV per call with silent spans for pauses and
//!   sensitive IVR steps, and the [`recorder::RecordingEntry`] the store
//!   indexes; [`sealed`] - the same audio encrypted at rest (AES-256-GCM
//!   chunks, a data key per file wrapped by the bank's master keys).
//! * [`ports`] - the bounded pool of relay ports.
//!
//! Arrows: this crate speaks the core's vocabulary (`ctihost-acd`) and reads
//! the clock and randomness (`ctihost-ground`); it knows nothing of SIP, plugins,
//! the store or the web.

pub mod g711;
pub mod player;
pub mod ports;
pub mod prompts;
pub mod recorder;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod sealed;
pub mod srtp;

pub use relay::{Control, EventSink, Media, MediaError, MediaSettings, Relay, RelayStatus};
