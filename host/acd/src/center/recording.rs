//! The recording policy's side of a call: the core asks it one question at
//! a time, in the order things happened (the connect decision before any
//! pause), owns whether the recording runs and is paused, and tells the
//! media layer. Each answer's plugin version goes into the call record.

use std::collections::VecDeque;

use super::Acd;
use crate::model::*;
use crate::vocabulary::{PolicyEvent, RecordMode, RecordingAction, RecordingDecision};

/// Questions a call may have queued for its policy: a caller who types a
/// card number fast must not grow the host (each digit is one question).
pub const MAX_PENDING_ASKS: usize = 64;

/// What the core knows of a call's recording.
#[derive(Debug, Clone, Default)]
pub(super) struct Recording {
    /// A question is with the policy; the next waits in `pending`.
    asking: bool,
    pending: VecDeque<Option<PolicyEvent>>,
    /// The recorder was told to record.
    recording: bool,
    paused: bool,
    /// Questions dropped past [`MAX_PENDING_ASKS`] (warned once per call).
    dropped: u32,
}

/// Why an agent's pause/resume request cannot go to the policy now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingRefusal {
    #[error("no recording-policy plugin configured")]
    NoPolicy,
    #[error("no live call with id {0:?}")]
    NoCall(String),
    #[error("call {0} is not connected yet")]
    NotConnected(String),
}

impl Acd {
    /// Whether an agent's request for `call_id` can go to the policy now.
    pub fn recording_request(&self, call_id: &str) -> Result<(), RecordingRefusal> {
        if !self.settings.recording {
            return Err(RecordingRefusal::NoPolicy);
        }
        match self.calls.get(call_id) {
            None => Err(RecordingRefusal::NoCall(call_id.to_owned())),
            Some(c) if !c.connected => Err(RecordingRefusal::NotConnected(call_id.to_owned())),
            Some(_) => Ok(()),
        }
    }

    /// Put a question to the policy, or queue it behind the one it has.
    pub(super) fn ask_policy(&mut self, now_ms: u64, call_id: &str, event: Option<PolicyEvent>) {
        if !self.settings.recording {
            return;
        }
        let Some(c) = self.calls.get_mut(call_id).filter(|c| c.connected) else {
            return;
        };
        if c.recording.asking {
            if c.recording.pending.len() >= MAX_PENDING_ASKS {
                c.recording.dropped += 1;
                if c.recording.dropped == 1 {
                    let message = format!(
                        "{MAX_PENDING_ASKS} questions already wait for the recording policy; \
                         further ones are dropped for this call"
                    );
                    self.out.warn(Some(call_id), message);
                }
                return;
            }
            c.recording.pending.push_back(event);
            return;
        }
        self.send_ask(now_ms, call_id, event);
    }

    fn send_ask(&mut self, now_ms: u64, call_id: &str, event: Option<PolicyEvent>) {
        let Some(info) = self.call_info(now_ms, call_id) else {
            return;
        };
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        c.recording.asking = true;
        let paused = c.recording.paused;
        self.out.cmd(Ask::RecordingPolicy {
            call_id: call_id.to_owned(),
            info: Box::new(info),
            event,
            paused,
        });
    }

    /// The connect decision came back.
    pub(super) fn recording_decided(
        &mut self,
        now_ms: u64,
        call_id: &str,
        decision: Option<RecordingDecision>,
        plugin: String,
        plugin_version: String,
    ) {
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        c.recording.asking = false;
        let (legs, retention_days, reason) = match decision {
            Some(RecordingDecision {
                mode: RecordMode::None,
                ..
            }) => (None, 0, String::new()),
            Some(d) => {
                let legs = match d.mode {
                    RecordMode::Caller => Legs::Caller,
                    RecordMode::Agent => Legs::Agent,
                    RecordMode::Both | RecordMode::None => Legs::Both,
                };
                (Some(legs), d.retention_days, d.reason)
            }
            None => (
                Some(Legs::Both),
                0,
                "no policy: recording both legs".to_owned(),
            ),
        };
        if let Some(legs) = legs {
            c.recording.recording = true;
            let paused = c.recording.paused;
            self.out.cmd(MediaCommand::Record {
                call_id: call_id.to_owned(),
                plan: RecordingPlan {
                    legs,
                    retention_days,
                    policy: plugin.clone(),
                    policy_version: plugin_version.clone(),
                    reason,
                },
            });
            if paused {
                self.out.cmd(MediaCommand::PauseRecording {
                    call_id: call_id.to_owned(),
                    paused,
                });
            }
        }
        self.policy_answered(now_ms, call_id, plugin, Some(plugin_version));
    }

    /// An event's answer came back.
    pub(super) fn recording_acted(
        &mut self,
        now_ms: u64,
        call_id: &str,
        action: Option<RecordingAction>,
        plugin: String,
        plugin_version: String,
    ) {
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        c.recording.asking = false;
        let before = c.recording.paused;
        let now = action.map_or(before, |a| a.apply(before));
        c.recording.paused = now;
        if now != before && c.recording.recording {
            self.out.cmd(MediaCommand::PauseRecording {
                call_id: call_id.to_owned(),
                paused: now,
            });
        }
        let decided = action.is_some().then_some(plugin_version);
        self.policy_answered(now_ms, call_id, plugin, decided);
    }

    /// Note who decided (None: nothing was) and put the next question.
    fn policy_answered(
        &mut self,
        now_ms: u64,
        call_id: &str,
        plugin: String,
        version: Option<String>,
    ) {
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        if let Some(version) = version {
            c.plugin_versions.insert(plugin, version);
        }
        if let Some(next) = c.recording.pending.pop_front() {
            self.send_ask(now_ms, call_id, next);
        }
    }
}
