//! What a plugin returns (any value its WIT types allow, as JSON here):
//! validated without a panic; whatever passes is safe to put into SIP, a
//! log line or a page (no CR, LF or NUL in a target or reason).
#![no_main]

use ctihost::plugins::bindings::{Card, IvrStep, RecordingDecision, RouteDecision};
use ctihost::plugins::validate;
use libfuzzer_sys::fuzz_target;

struct Scope;

impl validate::DecisionScope for Scope {
    fn has_queue(&self, name: &str) -> bool {
        name == "general" || name == "vip"
    }
    fn has_agent(&self, id: &str) -> bool {
        id == "1001"
    }
    fn has_prompt(&self, name: &str) -> bool {
        name == "welcome"
    }
    fn has_skill(&self, skill: &str) -> bool {
        skill == "cards"
    }
}

fn clean(s: &str) -> bool {
    !s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(d) = serde_json::from_slice::<RouteDecision>(rest) {
                let ok = validate::route(&d, Some(&Scope)).is_ok();
                if ok && let RouteDecision::Forward(t) = &d {
                    assert!(clean(t), "{t:?}");
                }
                let _ = validate::route(&d, None);
            }
        }
        1 => {
            if let Ok(s) = serde_json::from_slice::<IvrStep>(rest) {
                let _ = validate::ivr_step(&s, Some(&Scope));
            }
        }
        2 => {
            if let Ok(c) = serde_json::from_slice::<Card>(rest) {
                let _ = validate::card(&c);
            }
        }
        3 => {
            if let Ok(r) = serde_json::from_slice::<RecordingDecision>(rest) {
                if validate::recording(&r).is_ok() {
                    assert!(clean(&r.reason), "{:?}", r.reason);
                }
            }
        }
        _ => {
            let s = String::from_utf8_lossy(rest);
            if validate::sip_target("forward target", &s).is_ok() {
                assert!(clean(&s) && !s.contains(['<', '>', '"', ',', ' ']), "{s:?}");
            }
        }
    }
});
