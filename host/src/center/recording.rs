//! Asks the recording-policy plugin about each connected call, in order: one
//! task per call takes the call's policy questions one after another (the
//! connect decision before any pause), keeps whether the recording is paused,
//! and sends the media layer what to do.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use crate::acd::{CallId, Command};
use crate::media::recorder::{Legs, RecordingPlan};
use crate::plugins::bindings::{CallEvent as PolicyEvent, CallInfo, RecordMode, RecordingAction};
use crate::plugins::{HookCall, HookOutput, PluginHost};

/// The policy's answer to an agent's request, for the API.
#[derive(Debug, Clone)]
pub struct PolicyAnswer {
    pub action: RecordingAction,
    pub paused: bool,
    pub plugin_version: String,
    pub plugin_hash: String,
    /// The plugin failed and its fallback answered (why).
    pub failure: Option<String>,
}

/// Why an agent's request got no answer from the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    #[error("no recording-policy plugin configured")]
    NoPolicy,
    #[error("no live call with id {0:?}")]
    NoCall(String),
    #[error("call {0} is not connected yet")]
    NotConnected(String),
    #[error("recording policy failed: {0}")]
    Failed(String),
    #[error("the call center is not running")]
    Stopped,
}

pub type PolicyReply = oneshot::Sender<Result<PolicyAnswer, PolicyRefusal>>;

struct Job {
    info: CallInfo,
    event: Option<PolicyEvent>,
    reply: Option<PolicyReply>,
}

/// The per-call policy tasks of a center.
pub struct Policies {
    plugins: PluginHost,
    policy: Option<String>,
    calls: mpsc::UnboundedSender<Command>,
    live: HashMap<CallId, mpsc::UnboundedSender<Job>>,
}

impl Policies {
    pub fn new(
        plugins: PluginHost,
        policy: Option<String>,
        calls: mpsc::UnboundedSender<Command>,
    ) -> Self {
        Self {
            plugins,
            policy,
            calls,
            live: HashMap::new(),
        }
    }

    /// A question from the ACD (connect: `event` None).
    pub fn ask(&mut self, call_id: CallId, info: CallInfo, event: Option<PolicyEvent>) {
        self.submit(call_id, info, event, None);
    }

    /// An agent's pause/resume request; Err when the call has no policy task
    /// (not connected, or no policy configured).
    pub fn request(&mut self, call_id: &str, info: CallInfo, request: String, reply: PolicyReply) {
        if !self.live.contains_key(call_id) {
            let why = match &self.policy {
                None => PolicyRefusal::NoPolicy,
                Some(_) => PolicyRefusal::NotConnected(call_id.to_owned()),
            };
            let _ = reply.send(Err(why));
            return;
        }
        self.submit(
            call_id.to_owned(),
            info,
            Some(PolicyEvent::AgentRequest(request)),
            Some(reply),
        );
    }

    /// The call ended: its task finishes what is queued and stops.
    pub fn ended(&mut self, call_id: &str) {
        self.live.remove(call_id);
    }

    fn submit(
        &mut self,
        call_id: CallId,
        info: CallInfo,
        event: Option<PolicyEvent>,
        reply: Option<PolicyReply>,
    ) {
        let Some(policy) = self.policy.clone() else {
            return;
        };
        let job = Job { info, event, reply };
        let tx = self.live.entry(call_id.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(
                call_id.clone(),
                policy,
                self.plugins.clone(),
                self.calls.clone(),
                rx,
            ));
            tx
        });
        let _ = tx.send(job);
    }
}

async fn run(
    call_id: CallId,
    policy: String,
    plugins: PluginHost,
    calls: mpsc::UnboundedSender<Command>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let mut paused = false;
    let mut recording = false;
    while let Some(job) = jobs.recv().await {
        let Some(event) = job.event else {
            let inv = plugins
                .invoke(&policy, HookCall::OnConnect { call: job.info })
                .await;
            let (decision, version) = match inv {
                Ok(inv) => match inv.output {
                    HookOutput::OnConnect(d) => (Some(d), inv.hash),
                    _ => (None, inv.hash),
                },
                Err(e) => {
                    tracing::error!(call_id, policy, error = %e, "recording policy unavailable; recording both legs");
                    (None, format!("unavailable: {e}"))
                }
            };
            let (legs, retention_days, reason) = match decision {
                Some(d) => match d.mode {
                    RecordMode::None => {
                        tracing::info!(call_id, policy, reason = d.reason, "not recorded");
                        continue;
                    }
                    RecordMode::Caller => (Legs::Caller, d.retention_days, d.reason),
                    RecordMode::Agent => (Legs::Agent, d.retention_days, d.reason),
                    RecordMode::Both => (Legs::Both, d.retention_days, d.reason),
                },
                None => (Legs::Both, 0, "no policy: recording both legs".into()),
            };
            recording = true;
            let _ = calls.send(Command::Record {
                call_id: call_id.clone(),
                plan: RecordingPlan {
                    legs,
                    retention_days,
                    policy: policy.clone(),
                    policy_version: version,
                    reason,
                },
            });
            if paused {
                let _ = calls.send(Command::PauseRecording {
                    call_id: call_id.clone(),
                    paused,
                });
            }
            continue;
        };
        let inv = plugins
            .invoke(
                &policy,
                HookCall::OnEvent {
                    call: job.info,
                    event,
                    paused,
                },
            )
            .await;
        let answer = match inv {
            Ok(inv) => {
                let action = match inv.output {
                    HookOutput::OnEvent(a) => a,
                    _ => RecordingAction::Keep,
                };
                let now = match action {
                    RecordingAction::Pause => true,
                    RecordingAction::Resume => false,
                    RecordingAction::Keep => paused,
                };
                if now != paused {
                    paused = now;
                    if recording {
                        let _ = calls.send(Command::PauseRecording {
                            call_id: call_id.clone(),
                            paused,
                        });
                    }
                }
                Ok(PolicyAnswer {
                    action,
                    paused,
                    plugin_version: inv.version,
                    plugin_hash: inv.hash,
                    failure: inv.failure.map(|f| f.message),
                })
            }
            Err(e) => Err(PolicyRefusal::Failed(e.to_string())),
        };
        if let Some(reply) = job.reply {
            let _ = reply.send(answer);
        }
    }
}
