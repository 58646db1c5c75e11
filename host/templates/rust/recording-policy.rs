//! A recording policy: record both legs and keep them 90 days; pause while a
//! sensitive IVR step (card number, PIN) runs, resume after it.

use ctihost_sdk::recording_policy::*;

struct Plugin;

impl Guest for Plugin {
    fn on_connect(_call: CallInfo) -> RecordingDecision {
        RecordingDecision { mode: RecordMode::Both, retention_days: 90, reason: "default policy".into() }
    }

    fn on_event(_call: CallInfo, event: CallEvent, paused: bool) -> RecordingAction {
        match event {
            CallEvent::IvrStepEntered(step) if step.sensitive && !paused => RecordingAction::Pause,
            CallEvent::IvrStepLeft(_) if paused => RecordingAction::Resume,
            _ => RecordingAction::Keep,
        }
    }
}

ctihost_sdk::export_recording_policy!(Plugin);
