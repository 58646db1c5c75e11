//! One datagram: parsed, checked against the grammar, answered, its
//! addresses read and its transaction keyed, without a panic; a message
//! that parses is written back and parses to the same thing.
#![no_main]

use ctihost::sip::syntax::check_request;
use ctihost::sip::transaction::{client_key, server_key};
use ctihost::sip::wire::{RawMessage, addr_uri, param, response, uri_user};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = RawMessage::parse_head(data);
    let Ok(msg) = RawMessage::parse(data) else {
        return;
    };
    if msg.is_request() {
        let _ = check_request(&msg);
        let _ = server_key(&msg);
    } else {
        let _ = client_key(&msg);
    }
    let _ = response(&msg, 400, "Bad Request", Some("t1"), &[]);
    let _ = (msg.branch(), msg.sent_by(), msg.method(), msg.uri());
    for h in ["From", "To", "Contact", "Via"] {
        for v in msg.all(h) {
            let uri = addr_uri(v);
            let _ = (uri_user(uri), param(v, "tag"), param(v, "branch"));
        }
    }
    // Written back (Content-Length last and exact), a message parses to
    // the same start line, headers and body.
    let again = RawMessage::parse(&msg.to_bytes()).expect("a message the host wrote parses"); // ok: a panic here is the finding this target looks for
    let others = |m: &RawMessage| -> Vec<(String, String)> {
        m.headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("Content-Length"))
            .cloned()
            .collect()
    };
    assert_eq!(again.start, msg.start);
    assert_eq!(others(&again), others(&msg));
    assert_eq!(again.body, msg.body);
});
