//! A TCP stream: framing by Content-Length never loops, never reads past
//! the buffer, and frames the same messages whether the bytes arrive at
//! once or split in two at any point.
#![no_main]

use ctihost::sip::wire::{Frame, RawMessage, frame};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 16 * 1024;

/// The messages framed off `chunks` fed one after the other, as the
/// connection's reader does (buffer, frame, drain).
fn messages(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match frame(&buf, MAX) {
                Frame::Incomplete => break,
                Frame::KeepAlive(n) => {
                    assert!(n > 0 && n <= buf.len());
                    buf.drain(..n);
                }
                Frame::Message(n) => {
                    assert!(n > 0 && n <= buf.len());
                    let _ = RawMessage::parse(&buf[..n]);
                    out.push(buf.drain(..n).collect());
                }
                Frame::TooLarge { head } => {
                    if let Some(h) = head {
                        assert!(h <= buf.len());
                        let _ = RawMessage::parse_head(&buf[..h]);
                    }
                    return out; // the connection is closed
                }
                Frame::Invalid => return out,
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let split = data[0] as usize % data.len();
    let data = &data[1..];
    let split = split.min(data.len());
    let whole = messages(&[data]);
    let parts = messages(&[&data[..split], &data[split..]]);
    assert_eq!(whole, parts, "framing depends on how the bytes arrive");
});
