//! A configuration file: a bad one is refused with an error naming where,
//! never a panic.
#![no_main]

use ctihost::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(text, std::path::Path::new("fuzz.toml")) {
        assert!(!e.to_string().is_empty());
    }
});
