//! A recording policy for the host's tests: `mode = "trap"` panics on every
//! real call (the host must fall back to recording both legs); otherwise it
//! records both legs for `retention_days` and follows agents' requests.

use ctihost_sdk::host;
use ctihost_sdk::recording_policy::*;

struct TestPolicy;

fn trapping(call: &CallInfo) -> bool {
    !call.call_id.starts_with("selftest") && host::config_get("mode").as_deref() == Some("trap")
}

impl Guest for TestPolicy {
    fn on_connect(call: CallInfo) -> RecordingDecision {
        if trapping(&call) {
            panic!("test policy told to trap");
        }
        RecordingDecision {
            mode: RecordMode::Both,
            retention_days: host::config_get("retention_days")
                .and_then(|d| d.parse().ok())
                .unwrap_or(1),
            reason: "test policy".into(),
        }
    }

    fn on_event(call: CallInfo, event: CallEvent, paused: bool) -> RecordingAction {
        if trapping(&call) {
            panic!("test policy told to trap");
        }
        match event {
            CallEvent::AgentRequest(r) if r == "pause" && !paused => RecordingAction::Pause,
            CallEvent::AgentRequest(r) if r == "resume" && paused => RecordingAction::Resume,
            _ => RecordingAction::Keep,
        }
    }
}

ctihost_sdk::export_recording_policy!(TestPolicy);
