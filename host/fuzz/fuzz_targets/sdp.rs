//! An SDP offer or answer: read and rewritten for the relay without a
//! panic; a rewritten offer points its audio at the relay.
#![no_main]

use std::net::SocketAddr;

use ctihost::media::sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let relay = SocketAddr::from(([192, 0, 2, 7], 20002));
    let _ = sdp::audio_target(data);
    let _ = sdp::audio_profile(data);
    let _ = sdp::answer_direction(data);
    let _ = sdp::with_direction(data, "sendonly");
    if let Ok(out) = sdp::rewrite(data, relay) {
        assert_eq!(
            sdp::audio_target(&out),
            Some(relay),
            "a rewritten offer names the relay"
        );
    }
});
