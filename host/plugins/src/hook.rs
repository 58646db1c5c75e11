//! Hooks: the calls a plugin answers, their outputs, checks and fallbacks.

use serde::{Deserialize, Serialize};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use super::bindings::crm_connector::{CrmConnector, CrmConnectorPre};
use super::bindings::recording_policy::{RecordingPolicy, RecordingPolicyPre};
use super::bindings::router::{Router, RouterPre};
use super::bindings::screen_pop::{ScreenPop, ScreenPopPre};
use super::bindings::*;
use super::kind::PluginKind;
use super::manifest::Fallbacks;
use super::sandbox::InvocationState;
use super::validate::{self, DecisionScope};

/// One call into a plugin, with its arguments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "hook", rename_all = "kebab-case")]
pub enum HookCall {
    Route {
        call: CallInfo,
    },
    RankAgents {
        call: CallInfo,
        queue: String,
        candidates: Vec<AgentCandidate>,
    },
    BuildCard {
        call: CallInfo,
        agent: AgentInfo,
    },
    Lookup {
        key: LookupKey,
    },
    OnConnect {
        call: CallInfo,
    },
    OnEvent {
        call: CallInfo,
        event: CallEvent,
        paused: bool,
    },
}

/// Why a JSON input is no call of a hook (`ctihost plugin test`).
#[derive(Debug, thiserror::Error)]
pub enum HookInputError {
    #[error("input must be a JSON object")]
    NotAnObject,
    #[error("input does not fit hook {hook}: {source}")]
    DoesNotFit {
        hook: String,
        source: serde_json::Error,
    },
}

/// What a hook answered (or its fallback).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum HookOutput {
    Route(RouteDecision),
    RankAgents(Vec<String>),
    BuildCard(Card),
    Lookup(Result<Option<Customer>, CrmError>),
    OnConnect(RecordingDecision),
    OnEvent(RecordingAction),
}

impl HookCall {
    pub fn name(&self) -> &'static str {
        match self {
            HookCall::Route { .. } => "route",
            HookCall::RankAgents { .. } => "rank-agents",
            HookCall::BuildCard { .. } => "build-card",
            HookCall::Lookup { .. } => "lookup",
            HookCall::OnConnect { .. } => "on-connect",
            HookCall::OnEvent { .. } => "on-event",
        }
    }

    pub fn kind(&self) -> PluginKind {
        match self {
            HookCall::Route { .. } | HookCall::RankAgents { .. } => PluginKind::Router,
            HookCall::BuildCard { .. } => PluginKind::ScreenPop,
            HookCall::Lookup { .. } => PluginKind::CrmConnector,
            HookCall::OnConnect { .. } | HookCall::OnEvent { .. } => PluginKind::RecordingPolicy,
        }
    }

    /// Give the call another id (offline samples must not look like the
    /// host's self-test, which a plugin could special-case).
    pub fn set_call_id(&mut self, id: &str) {
        match self {
            HookCall::Route { call }
            | HookCall::RankAgents { call, .. }
            | HookCall::BuildCard { call, .. }
            | HookCall::OnConnect { call }
            | HookCall::OnEvent { call, .. } => call.call_id = id.to_owned(),
            HookCall::Lookup { .. } => {}
        }
    }

    pub fn call_id(&self) -> &str {
        match self {
            HookCall::Route { call }
            | HookCall::RankAgents { call, .. }
            | HookCall::BuildCard { call, .. }
            | HookCall::OnConnect { call }
            | HookCall::OnEvent { call, .. } => &call.call_id,
            HookCall::Lookup { .. } => "-",
        }
    }

    /// Build a call from a hook name and its JSON input. Hooks that take only
    /// the call accept the `call-info` object itself.
    pub fn from_json(hook: &str, input: serde_json::Value) -> Result<Self, HookInputError> {
        let single_call = matches!(hook, "route" | "on-connect");
        let mut obj = match input {
            serde_json::Value::Object(o) if single_call && !o.contains_key("call") => {
                let mut m = serde_json::Map::new();
                m.insert("call".into(), serde_json::Value::Object(o));
                m
            }
            serde_json::Value::Object(o) if hook == "lookup" && !o.contains_key("key") => {
                let mut m = serde_json::Map::new();
                m.insert("key".into(), serde_json::Value::Object(o));
                m
            }
            serde_json::Value::Object(o) => o,
            _ => return Err(HookInputError::NotAnObject),
        };
        obj.insert("hook".into(), serde_json::Value::String(hook.to_owned()));
        serde_json::from_value(serde_json::Value::Object(obj)).map_err(|source| {
            HookInputError::DoesNotFit {
                hook: hook.to_owned(),
                source,
            }
        })
    }

    /// The decision used when the plugin fails.
    pub fn fallback(&self, configured: &Fallbacks) -> HookOutput {
        match self {
            HookCall::Route { .. } => {
                HookOutput::Route(configured.route.clone().unwrap_or_else(|| {
                    RouteDecision::Queue(QueueTarget {
                        queue: "general".into(),
                        priority: 0,
                        skills: vec![],
                        max_wait_secs: None,
                        overflow: None,
                    })
                }))
            }
            HookCall::RankAgents { .. } => HookOutput::RankAgents(vec![]),
            HookCall::BuildCard { call, .. } => {
                HookOutput::BuildCard(configured.build_card.clone().unwrap_or_else(|| Card {
                    title: call.caller.clone(),
                    fields: vec![
                        CardField {
                            label: "Caller".into(),
                            value: call.caller.clone(),
                        },
                        CardField {
                            label: "Dialed".into(),
                            value: call.dialed.clone(),
                        },
                    ],
                    links: vec![],
                    notes: vec!["Customer details unavailable".into()],
                }))
            }
            HookCall::Lookup { .. } => HookOutput::Lookup(Err(configured
                .lookup
                .clone()
                .unwrap_or_else(|| CrmError::Unavailable("CRM connector failed".into())))),
            HookCall::OnConnect { .. } => {
                HookOutput::OnConnect(configured.on_connect.clone().unwrap_or(RecordingDecision {
                    mode: RecordMode::Both,
                    retention_days: 0,
                    reason: "fallback: recording policy failed; recording both legs".into(),
                }))
            }
            HookCall::OnEvent { event, .. } => {
                HookOutput::OnEvent(match (&configured.on_event, event) {
                    // A failing policy must not let a card number reach the disk.
                    (_, CallEvent::IvrStepEntered(step)) if step.sensitive => {
                        RecordingAction::Pause
                    }
                    (Some(a), _) => *a,
                    (None, _) => RecordingAction::Keep,
                })
            }
        }
    }

    /// Check a plugin's answer; the error says what is wrong with it. With
    /// a `scope`, what a decision names must exist in the center.
    pub fn validate(
        &self,
        out: &HookOutput,
        max_bytes: usize,
        scope: Option<&dyn DecisionScope>,
    ) -> Result<(), validate::InvalidOutput> {
        let size = json_size(out);
        if size > max_bytes {
            return Err(validate::InvalidOutput::TooLarge {
                size,
                max: max_bytes,
            });
        }
        match (self, out) {
            (HookCall::Route { .. }, HookOutput::Route(d)) => validate::route(d, scope),
            (HookCall::RankAgents { candidates, .. }, HookOutput::RankAgents(ids)) => {
                match ids
                    .iter()
                    .find(|id| !candidates.iter().any(|c| &c.id == *id))
                {
                    Some(bad) => Err(validate::InvalidOutput::Field(format!(
                        "ranked unknown agent {:?}",
                        bad.escape_default().to_string()
                    ))),
                    None => Ok(()),
                }
            }
            (HookCall::BuildCard { .. }, HookOutput::BuildCard(c)) => validate::card(c),
            (HookCall::Lookup { .. }, HookOutput::Lookup(r)) => validate::lookup(r),
            (HookCall::OnConnect { .. }, HookOutput::OnConnect(d)) => validate::recording(d),
            (HookCall::OnEvent { .. }, HookOutput::OnEvent(_)) => Ok(()),
            _ => Err(validate::InvalidOutput::WrongHook(self.name())),
        }
    }
}

fn json_size(v: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

/// A component checked against its world, ready to instantiate.
pub enum Pre {
    Router(RouterPre<InvocationState>),
    ScreenPop(ScreenPopPre<InvocationState>),
    CrmConnector(CrmConnectorPre<InvocationState>),
    RecordingPolicy(RecordingPolicyPre<InvocationState>),
}

/// A live instance of one of the worlds.
pub enum Instance {
    Router(Router),
    ScreenPop(ScreenPop),
    CrmConnector(CrmConnector),
    RecordingPolicy(RecordingPolicy),
}

impl Pre {
    /// Type-check the component's exports against the world of `kind`.
    pub fn new(kind: PluginKind, pre: InstancePre<InvocationState>) -> wasmtime::Result<Self> {
        Ok(match kind {
            PluginKind::Router => Pre::Router(RouterPre::new(pre)?),
            PluginKind::ScreenPop => Pre::ScreenPop(ScreenPopPre::new(pre)?),
            PluginKind::CrmConnector => Pre::CrmConnector(CrmConnectorPre::new(pre)?),
            PluginKind::RecordingPolicy => Pre::RecordingPolicy(RecordingPolicyPre::new(pre)?),
        })
    }

    pub fn component(&self) -> &Component {
        match self {
            Pre::Router(p) => p.instance_pre().component(),
            Pre::ScreenPop(p) => p.instance_pre().component(),
            Pre::CrmConnector(p) => p.instance_pre().component(),
            Pre::RecordingPolicy(p) => p.instance_pre().component(),
        }
    }

    pub async fn instantiate(
        &self,
        store: &mut Store<InvocationState>,
    ) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::Router(p) => Instance::Router(p.instantiate_async(store).await?),
            Pre::ScreenPop(p) => Instance::ScreenPop(p.instantiate_async(store).await?),
            Pre::CrmConnector(p) => Instance::CrmConnector(p.instantiate_async(store).await?),
            Pre::RecordingPolicy(p) => Instance::RecordingPolicy(p.instantiate_async(store).await?),
        })
    }
}

impl Instance {
    pub async fn run(
        &self,
        store: &mut Store<InvocationState>,
        call: &HookCall,
    ) -> wasmtime::Result<HookOutput> {
        Ok(match (self, call) {
            (Instance::Router(r), HookCall::Route { call }) => {
                HookOutput::Route(r.call_route(store, call).await?)
            }
            (
                Instance::Router(r),
                HookCall::RankAgents {
                    call,
                    queue,
                    candidates,
                },
            ) => HookOutput::RankAgents(r.call_rank_agents(store, call, queue, candidates).await?),
            (Instance::ScreenPop(s), HookCall::BuildCard { call, agent }) => {
                HookOutput::BuildCard(s.call_build_card(store, call, agent).await?)
            }
            (Instance::CrmConnector(c), HookCall::Lookup { key }) => HookOutput::Lookup(
                c.cti_plugin_crm()
                    .call_lookup(store, &key.clone().into())
                    .await?
                    .map_err(CrmError::from),
            ),
            (Instance::RecordingPolicy(p), HookCall::OnConnect { call }) => {
                HookOutput::OnConnect(p.call_on_connect(store, call).await?)
            }
            (
                Instance::RecordingPolicy(p),
                HookCall::OnEvent {
                    call,
                    event,
                    paused,
                },
            ) => HookOutput::OnEvent(p.call_on_event(store, call, event, *paused).await?),
            (_, call) => {
                return Err(wasmtime::Error::msg(format!(
                    "hook {} does not belong to this plugin's world",
                    call.name()
                )));
            }
        })
    }
}

/// A realistic call used by self-tests and as the CLI's example input.
pub fn sample_call() -> CallInfo {
    CallInfo {
        call_id: "selftest-0001".into(),
        caller: "+8613800138000".into(),
        dialed: "95588".into(),
        trunk: "pstn".into(),
        arrived_at_ms: 1_764_400_000_000,
        ivr: vec![],
        attributes: vec![],
        customer: None,
        queues: vec![QueueStats {
            name: "general".into(),
            waiting: 1,
            longest_wait_secs: 12,
            agents_ready: 2,
            agents_logged_in: 3,
            estimated_wait_secs: 20,
        }],
    }
}

/// The calls a self-test makes for each kind.
pub fn self_test_calls(kind: PluginKind) -> Vec<HookCall> {
    let call = sample_call();
    match kind {
        PluginKind::Router => vec![
            HookCall::Route { call: call.clone() },
            HookCall::RankAgents {
                call,
                queue: "general".into(),
                candidates: vec![AgentCandidate {
                    id: "1001".into(),
                    skills: vec![("general".into(), 50)],
                    idle_secs: 30,
                    calls_today: 4,
                }],
            },
        ],
        PluginKind::ScreenPop => vec![HookCall::BuildCard {
            call,
            agent: AgentInfo {
                id: "1001".into(),
                name: "Agent".into(),
                skills: vec!["general".into()],
            },
        }],
        PluginKind::CrmConnector => vec![HookCall::Lookup {
            key: LookupKey::Phone(call.caller),
        }],
        PluginKind::RecordingPolicy => vec![
            HookCall::OnConnect { call: call.clone() },
            HookCall::OnEvent {
                call,
                event: CallEvent::Dtmf("1".into()),
                paused: false,
            },
        ],
    }
}
