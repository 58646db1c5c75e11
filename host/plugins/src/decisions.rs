//! The core's questions to plugins as typed calls, in the core's vocabulary:
//! one method per hook, so a caller never matches a [`HookOutput`] and never
//! falls back silently on an output of the wrong shape (that is an
//! [`InvokeError::WrongOutput`]).

use ctihost_vocabulary as acd;

use super::registry::{Invocation, InvokeError, PluginHost};
use super::{HookCall, HookOutput};

/// A plugin's answer and the invocation that gave it (version, failure).
pub type Decided<T> = (T, Invocation);

impl PluginHost {
    /// Ask a router what to do with a call.
    pub async fn route(
        &self,
        name: &str,
        call: impl Into<acd::CallInfo>,
    ) -> Result<Decided<acd::RouteDecision>, InvokeError> {
        let call = call.into().into();
        self.decide(name, HookCall::Route { call }, |o| match o {
            HookOutput::Route(d) => Some(d.clone().into()),
            _ => None,
        })
        .await
    }

    /// Ask a router to rank a queued call's candidates, best first.
    pub async fn rank_agents(
        &self,
        name: &str,
        call: acd::CallInfo,
        queue: String,
        candidates: Vec<acd::AgentCandidate>,
    ) -> Result<Decided<Vec<String>>, InvokeError> {
        let hook = HookCall::RankAgents {
            call: call.into(),
            queue,
            candidates: candidates.into_iter().map(Into::into).collect(),
        };
        self.decide(name, hook, |o| match o {
            HookOutput::RankAgents(r) => Some(r.clone()),
            _ => None,
        })
        .await
    }

    /// Ask a screen-pop for the card of a call offered to an agent.
    pub async fn build_card(
        &self,
        name: &str,
        call: acd::CallInfo,
        agent: acd::AgentInfo,
    ) -> Result<Decided<acd::Card>, InvokeError> {
        let hook = HookCall::BuildCard {
            call: call.into(),
            agent: agent.into(),
        };
        self.decide(name, hook, |o| match o {
            HookOutput::BuildCard(c) => Some(c.clone().into()),
            _ => None,
        })
        .await
    }

    /// Ask a recording policy what to record of a call that connected.
    pub async fn on_connect(
        &self,
        name: &str,
        call: acd::CallInfo,
    ) -> Result<Decided<acd::RecordingDecision>, InvokeError> {
        let hook = HookCall::OnConnect { call: call.into() };
        self.decide(name, hook, |o| match o {
            HookOutput::OnConnect(d) => Some(d.clone().into()),
            _ => None,
        })
        .await
    }

    /// Ask a recording policy what an event of the call changes.
    pub async fn on_event(
        &self,
        name: &str,
        call: acd::CallInfo,
        event: acd::PolicyEvent,
        paused: bool,
    ) -> Result<Decided<acd::RecordingAction>, InvokeError> {
        let hook = HookCall::OnEvent {
            call: call.into(),
            event: event.into(),
            paused,
        };
        self.decide(name, hook, |o| match o {
            HookOutput::OnEvent(a) => Some((*a).into()),
            _ => None,
        })
        .await
    }
}

impl PluginHost {
    /// Invoke `hook` and take the answer `pick` finds in its output.
    async fn decide<T>(
        &self,
        name: &str,
        hook: HookCall,
        pick: impl FnOnce(&HookOutput) -> Option<T>,
    ) -> Result<Decided<T>, InvokeError> {
        let hook_name = hook.name();
        let inv = self.invoke(name, hook).await?;
        match pick(&inv.output) {
            Some(answer) => Ok((answer, inv)),
            None => Err(InvokeError::WrongOutput {
                name: name.to_owned(),
                hook: hook_name,
            }),
        }
    }
}
