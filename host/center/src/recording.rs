//! Carries the core's questions to the recording-policy plugin and its
//! answers back as events. The core asks one question per call at a time
//! and owns the recording's state; this side only invokes, answers an
//! agent's request from the API, and logs.

use std::collections::{HashMap, VecDeque};

use tokio::sync::{mpsc, oneshot};

use ctihost_acd::{
    CallEvent, CallId, CallInfo, PolicyEvent, RecordMode, RecordingAction, RecordingRefusal,
};
use ctihost_plugins::PluginHost;

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
    /// The core refused to put the request (no policy, no call, not connected).
    #[error(transparent)]
    Refused(#[from] RecordingRefusal),
    #[error("recording policy failed: {0}")]
    Failed(String),
    #[error("the call center is not running")]
    Stopped,
}

pub type PolicyReply = oneshot::Sender<Result<PolicyAnswer, PolicyRefusal>>;

/// The center's recording policy and the agents' requests waiting for it.
pub struct Policies {
    plugins: PluginHost,
    policy: Option<String>,
    /// Where answers go: the center's own event channel.
    events: mpsc::UnboundedSender<CallEvent>,
    /// Per call, the API's requests in the order the core will ask them.
    replies: HashMap<CallId, VecDeque<PolicyReply>>,
}

impl Policies {
    pub fn new(
        plugins: PluginHost,
        policy: Option<String>,
        events: mpsc::UnboundedSender<CallEvent>,
    ) -> Self {
        Self {
            plugins,
            policy,
            events,
            replies: HashMap::new(),
        }
    }

    /// An agent's request the core accepted (it will ask the policy with
    /// it, after any question the call already has).
    pub fn expect_request(&mut self, call_id: &str, reply: PolicyReply) {
        self.replies
            .entry(call_id.to_owned())
            .or_default()
            .push_back(reply);
    }

    /// The core asks (connect: `event` None); the answer comes back as an event.
    pub fn ask(
        &mut self,
        call_id: CallId,
        info: CallInfo,
        event: Option<PolicyEvent>,
        paused: bool,
    ) {
        let Some(policy) = self.policy.clone() else {
            return;
        };
        let reply = match &event {
            Some(PolicyEvent::AgentRequest(_)) => {
                self.replies.get_mut(&call_id).and_then(VecDeque::pop_front)
            }
            _ => None,
        };
        let (plugins, events) = (self.plugins.clone(), self.events.clone());
        tokio::spawn(async move {
            let answer = match event {
                None => decide(&plugins, call_id, policy, info).await,
                Some(event) => act(&plugins, call_id, policy, info, event, paused, reply).await,
            };
            let _ = events.send(answer);
        });
    }

    /// The call ended: requests still waiting get their answer.
    pub fn ended(&mut self, call_id: &str) {
        for reply in self.replies.remove(call_id).into_iter().flatten() {
            let _ = reply.send(Err(RecordingRefusal::NoCall(call_id.to_owned()).into()));
        }
    }
}

async fn decide(
    plugins: &PluginHost,
    call_id: CallId,
    policy: String,
    info: CallInfo,
) -> CallEvent {
    let (decision, plugin_version) = match plugins.on_connect(&policy, info).await {
        Ok((d, inv)) => {
            if d.mode == RecordMode::None {
                tracing::info!(call_id, policy, reason = d.reason, "not recorded");
            }
            (Some(d), inv.hash)
        }
        Err(e) => {
            tracing::error!(call_id, policy, error = %e, "recording policy unavailable; recording both legs");
            (None, format!("unavailable: {e}"))
        }
    };
    CallEvent::RecordingDecided {
        call_id,
        decision,
        plugin: policy,
        plugin_version,
    }
}

async fn act(
    plugins: &PluginHost,
    call_id: CallId,
    policy: String,
    info: CallInfo,
    event: PolicyEvent,
    paused: bool,
    reply: Option<PolicyReply>,
) -> CallEvent {
    let (action, plugin_version, answer) =
        match plugins.on_event(&policy, info, event, paused).await {
            Ok((action, inv)) => {
                let answer = Ok(PolicyAnswer {
                    action,
                    paused: action.apply(paused),
                    plugin_version: inv.version,
                    plugin_hash: inv.hash.clone(),
                    failure: inv.failure.map(|f| f.message),
                });
                (Some(action), inv.hash, answer)
            }
            Err(e) => (
                None,
                format!("unavailable: {e}"),
                Err(PolicyRefusal::Failed(e.to_string())),
            ),
        };
    if let Some(reply) = reply {
        let _ = reply.send(answer);
    }
    CallEvent::RecordingActed {
        call_id,
        action,
        plugin: policy,
        plugin_version,
    }
}
