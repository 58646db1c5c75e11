//! A SIP INFO's Content-Type and body: a key is one of 0-9 * # A-D.
#![no_main]

use ctihost::sip::info_dtmf::{InfoBody, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ctype, body) = match data.split_first() {
        Some((0, b)) => (None, b),
        Some((1, b)) => (Some("application/dtmf-relay"), b),
        Some((2, b)) => (Some("application/dtmf"), b),
        Some((_, b)) => {
            let cut = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
            let ct = std::str::from_utf8(&b[..cut]).unwrap_or("");
            return check(parse(Some(ct), b.get(cut + 1..).unwrap_or(&[])));
        }
        None => return,
    };
    check(parse(ctype, body));
});

fn check(r: InfoBody) {
    if let InfoBody::Digit(d) = r {
        assert!(d.is_ascii_digit() || "*#ABCD".contains(d), "{d:?}");
    }
}
