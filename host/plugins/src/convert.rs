//! The edge between the WIT contract (`cti:plugin@0.1.0`, generated in
//! [`super::bindings`]) and the vocabulary the core speaks (crate `ctihost-vocabulary`).
//!
//! Every conversion is total and field for field: the two sides describe the
//! same data. A new WIT version gets its own conversions here and the core
//! does not change.

use ctihost_vocabulary as acd;

use super::bindings as wit;

/// Both ways for a record whose fields are the same on either side.
macro_rules! mirror {
    ($name:ident { $($field:ident),* $(,)? }) => {
        impl From<acd::$name> for wit::$name {
            fn from(v: acd::$name) -> Self {
                Self { $($field: v.$field),* }
            }
        }
        impl From<wit::$name> for acd::$name {
            fn from(v: wit::$name) -> Self {
                Self { $($field: v.$field),* }
            }
        }
    };
}

mirror!(Customer {
    id,
    name,
    segment,
    language,
    accounts,
    last_contact,
    notes,
    attributes,
});
mirror!(IvrEntry {
    step,
    digits,
    sensitive
});
mirror!(QueueStats {
    name,
    waiting,
    longest_wait_secs,
    agents_ready,
    agents_logged_in,
    estimated_wait_secs,
});
mirror!(IvrStep {
    name,
    prompt,
    max_digits,
    terminator,
    inter_digit_timeout_ms,
    sensitive,
});
mirror!(AgentCandidate {
    id,
    skills,
    idle_secs,
    calls_today
});
mirror!(AgentInfo { id, name, skills });

impl From<acd::CallInfo> for wit::CallInfo {
    fn from(c: acd::CallInfo) -> Self {
        Self {
            call_id: c.call_id,
            caller: c.caller,
            dialed: c.dialed,
            trunk: c.trunk,
            arrived_at_ms: c.arrived_at_ms,
            ivr: c.ivr.into_iter().map(Into::into).collect(),
            attributes: c.attributes,
            customer: c.customer.map(Into::into),
            queues: c.queues.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<wit::CallInfo> for acd::CallInfo {
    fn from(c: wit::CallInfo) -> Self {
        Self {
            call_id: c.call_id,
            caller: c.caller,
            dialed: c.dialed,
            trunk: c.trunk,
            arrived_at_ms: c.arrived_at_ms,
            ivr: c.ivr.into_iter().map(Into::into).collect(),
            attributes: c.attributes,
            customer: c.customer.map(Into::into),
            queues: c.queues.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<wit::RouteDecision> for acd::RouteDecision {
    fn from(d: wit::RouteDecision) -> Self {
        match d {
            wit::RouteDecision::Ivr(s) => Self::Ivr(s.into()),
            wit::RouteDecision::Queue(q) => Self::Queue(acd::QueueTarget {
                queue: q.queue,
                priority: q.priority,
                skills: q.skills,
                max_wait_secs: q.max_wait_secs,
                overflow: q.overflow,
            }),
            wit::RouteDecision::Agent(a) => Self::Agent(a),
            wit::RouteDecision::Forward(f) => Self::Forward(f),
            wit::RouteDecision::Reject(r) => Self::Reject(acd::Rejection {
                code: r.code,
                reason: r.reason,
            }),
        }
    }
}

impl From<acd::PolicyEvent> for wit::CallEvent {
    fn from(e: acd::PolicyEvent) -> Self {
        match e {
            acd::PolicyEvent::IvrStepEntered(s) => Self::IvrStepEntered(s.into()),
            acd::PolicyEvent::IvrStepLeft(s) => Self::IvrStepLeft(s),
            acd::PolicyEvent::Dtmf(d) => Self::Dtmf(d),
            acd::PolicyEvent::Transfer(t) => Self::Transfer(t),
            acd::PolicyEvent::AgentRequest(r) => Self::AgentRequest(r),
        }
    }
}

impl From<wit::RecordingDecision> for acd::RecordingDecision {
    fn from(d: wit::RecordingDecision) -> Self {
        Self {
            mode: match d.mode {
                wit::RecordMode::None => acd::RecordMode::None,
                wit::RecordMode::Caller => acd::RecordMode::Caller,
                wit::RecordMode::Agent => acd::RecordMode::Agent,
                wit::RecordMode::Both => acd::RecordMode::Both,
            },
            retention_days: d.retention_days,
            reason: d.reason,
        }
    }
}

impl From<wit::RecordingAction> for acd::RecordingAction {
    fn from(a: wit::RecordingAction) -> Self {
        match a {
            wit::RecordingAction::Keep => Self::Keep,
            wit::RecordingAction::Pause => Self::Pause,
            wit::RecordingAction::Resume => Self::Resume,
        }
    }
}

impl From<wit::Card> for acd::Card {
    fn from(c: wit::Card) -> Self {
        Self {
            title: c.title,
            fields: c
                .fields
                .into_iter()
                .map(|f| acd::CardField {
                    label: f.label,
                    value: f.value,
                })
                .collect(),
            links: c
                .links
                .into_iter()
                .map(|l| acd::CardLink {
                    label: l.label,
                    url: l.url,
                })
                .collect(),
            notes: c.notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two sides serialize alike: JSON written by one (the admin API, a
    /// test's input) reads as the other.
    #[test]
    fn a_call_converts_both_ways_and_serializes_alike() {
        let call = acd::CallInfo {
            call_id: "c1".into(),
            caller: "+8613800000000".into(),
            dialed: "95588".into(),
            trunk: "pstn".into(),
            arrived_at_ms: 7,
            ivr: vec![acd::IvrEntry {
                step: "menu".into(),
                digits: "1".into(),
                sensitive: false,
            }],
            attributes: vec![("X-Lang".into(), "zh".into())],
            customer: Some(acd::Customer {
                id: "42".into(),
                name: "Li".into(),
                segment: "vip".into(),
                language: None,
                accounts: vec!["6222".into()],
                last_contact: Some("2026-11-30".into()),
                notes: vec![],
                attributes: vec![],
            }),
            queues: vec![acd::QueueStats {
                name: "general".into(),
                waiting: 1,
                longest_wait_secs: 2,
                agents_ready: 3,
                agents_logged_in: 4,
                estimated_wait_secs: 5,
            }],
        };
        let there: wit::CallInfo = call.clone().into();
        assert_eq!(
            serde_json::to_value(&there).ok(),
            serde_json::to_value(&call).ok()
        );
        assert_eq!(acd::CallInfo::from(there), call);
    }

    #[test]
    fn a_route_decision_keeps_every_field() {
        let wit_decision = wit::RouteDecision::Queue(wit::QueueTarget {
            queue: "vip".into(),
            priority: 10,
            skills: vec!["cards".into()],
            max_wait_secs: Some(60),
            overflow: Some("queue:general".into()),
        });
        let json = serde_json::to_value(&wit_decision).ok();
        let core: acd::RouteDecision = wit_decision.into();
        assert_eq!(serde_json::to_value(&core).ok(), json);
    }
}
