//! Media: an RTP relay anchoring each call's audio at the host, between the
//! caller's leg and the agent's leg. SDP offered to either side carries the
//! host's address and a relay port from the configured range; each side is
//! latched to the address its packets actually come from (symmetric RTP, for
//! phones behind NAT); ports go back to the pool when the call's relay is
//! dropped. A caller whose RTP stops is reported after a configurable time.
//! Before an agent answers the relay plays prompts and music and collects
//! digits (RFC 4733, or SIP INFO through the B2BUA); the recorder taps both
//! directions.

pub mod g711;
pub mod player;
pub mod ports;
pub mod prompts;
pub mod recorder;
pub mod relay;
pub mod rtp;
pub mod sdp;

pub use relay::{Control, EventSink, Media, MediaError, MediaSettings, Relay, RelayStatus};
