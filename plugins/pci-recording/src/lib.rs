//! PCI recording policy: record both legs; pause while a sensitive IVR step
//! runs and on configured DTMF triggers; retention by customer segment.

use std::collections::BTreeMap;

use ctihost_sdk::host;
use ctihost_sdk::recording_policy::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    #[serde(default = "both")]
    mode: String,
    #[serde(default = "seven_years")]
    default_retention_days: u32,
    /// Retention by customer segment, e.g. vip = 3650.
    #[serde(default)]
    retention_days: BTreeMap<String, u32>,
    /// Keys that pause recording (e.g. the agent tells the caller "press * then your card number").
    #[serde(default)]
    pause_digits: Vec<String>,
    #[serde(default)]
    resume_digits: Vec<String>,
}

fn both() -> String {
    "both".into()
}
fn seven_years() -> u32 {
    2555
}

struct PciRecording;

impl Guest for PciRecording {
    fn on_connect(call: CallInfo) -> RecordingDecision {
        let cfg = config();
        let mode = match cfg.mode.as_str() {
            "none" => RecordMode::None,
            "caller" => RecordMode::Caller,
            "agent" => RecordMode::Agent,
            _ => RecordMode::Both,
        };
        let segment = call.segment().unwrap_or("unknown").to_lowercase();
        let retention_days = cfg
            .retention_days
            .get(&segment)
            .copied()
            .unwrap_or(cfg.default_retention_days);
        RecordingDecision {
            mode,
            retention_days,
            reason: format!("pci policy: segment {segment}"),
        }
    }

    fn on_event(_call: CallInfo, event: CallEvent, paused: bool) -> RecordingAction {
        let cfg = config();
        match event {
            CallEvent::IvrStepEntered(step) if step.sensitive && !paused => {
                host::counter_add("pause_sensitive_step", 1);
                RecordingAction::Pause
            }
            CallEvent::IvrStepLeft(_) if paused => RecordingAction::Resume,
            CallEvent::Dtmf(d) if !paused && cfg.pause_digits.contains(&d) => {
                host::counter_add("pause_dtmf", 1);
                RecordingAction::Pause
            }
            CallEvent::Dtmf(d) if paused && cfg.resume_digits.contains(&d) => {
                RecordingAction::Resume
            }
            CallEvent::AgentRequest(r) if r == "pause" && !paused => RecordingAction::Pause,
            CallEvent::AgentRequest(r) if r == "resume" && paused => RecordingAction::Resume,
            _ => RecordingAction::Keep,
        }
    }
}

fn config() -> Config {
    host::config().unwrap_or(Config {
        mode: both(),
        default_retention_days: seven_years(),
        retention_days: BTreeMap::new(),
        pause_digits: vec![],
        resume_digits: vec![],
    })
}

ctihost_sdk::export_recording_policy!(PciRecording);
