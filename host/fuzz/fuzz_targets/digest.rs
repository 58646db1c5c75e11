//! An Authorization / Proxy-Authorization value: parsed and verified
//! against a credential without a panic.
#![no_main]

use ctihost::sip::digest::{Credential, DigestResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(r) = DigestResponse::parse(text) else {
        return;
    };
    let _ = (r.algorithm(), r.get("uri"), r.get("nc"), r.get("username"));
    let cred = Credential::from_password("1001", "ctihost", "demo-1001");
    let _ = r.verify("REGISTER", &cred);
    let _ = r.verify("INVITE", &cred);
});
