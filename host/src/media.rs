//! Media: an RTP relay anchoring each call's audio at the host, between the
//! caller's leg and the agent's leg. SDP offered to either side carries the
//! host's address and a relay port from the configured range; each side is
//! latched to the address its packets actually come from (symmetric RTP, for
//! phones behind NAT); ports go back to the pool when the call's relay is
//! dropped. A caller whose RTP stops is reported after a configurable time.
//! Prompts, DTMF detection and the recorder tap in here next.

pub mod ports;
pub mod relay;
pub mod sdp;

pub use relay::{Media, MediaError, Relay, RelayStatus};
