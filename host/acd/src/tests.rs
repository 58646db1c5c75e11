//! The ACD's rules, driven event by event with no network.

use std::collections::BTreeMap;

use super::*;
use crate::vocabulary::{
    IvrStep, PolicyEvent, QueueTarget, RecordMode, RecordingAction, RecordingDecision, Rejection,
    RouteDecision,
};

fn agent(id: &str, queues: &[(&str, u32)], skills: &[(&str, u8)]) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        name: id.into(),
        sip_user: format!("sip-{id}"),
        skills: skills
            .iter()
            .map(|(s, l)| (s.to_string(), *l))
            .collect::<BTreeMap<_, _>>(),
        queues: queues.iter().map(|(q, w)| (q.to_string(), *w)).collect(),
    }
}

struct Sim {
    acd: Acd,
    now: u64,
    out: Vec<Output>,
}

impl Sim {
    fn new(queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> Self {
        Self {
            acd: Acd::new(AcdSettings::default(), queues, agents),
            now: 1_000_000,
            out: vec![],
        }
    }

    fn at(&mut self, secs: u64) -> &mut Self {
        self.now = 1_000_000 + secs * 1000;
        self
    }

    fn ev(&mut self, e: CallEvent) -> Vec<Output> {
        let o = self.acd.handle(self.now, e);
        self.out.extend(o.clone());
        o
    }

    fn login(&mut self, a: &str) {
        self.ev(CallEvent::AgentLogin { agent: a.into() });
    }

    /// A call arrives and the router sends it to `q`.
    fn call(&mut self, id: &str, q: QueueTarget) -> Vec<Output> {
        let o = self.ev(CallEvent::Arrived {
            call_id: id.into(),
            caller: "+8613800000000".into(),
            dialed: "95588".into(),
            trunk: "pstn".into(),
            attributes: vec![],
        });
        assert!(
            o.iter()
                .any(|x| matches!(x, Output::Ask(Ask::Router { call_id, .. }) if call_id == id))
        );
        self.ev(CallEvent::RouteDecided {
            call_id: id.into(),
            decision: RouteDecision::Queue(q),
            plugin: "router".into(),
            plugin_version: "abc123".into(),
        })
    }

    fn state(&self, a: &str) -> AgentState {
        self.acd.agent_state(a).cloned().unwrap()
    }

    fn record(&self, id: &str) -> CallRecord {
        self.out
            .iter()
            .find_map(|o| match o {
                Output::Event(AcdEvent::CallEnded(r)) if r.call_id == id => Some((**r).clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no record for {id}"))
    }

    fn qlog(&self, id: &str) -> Vec<(QueueLogKind, Option<String>)> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Event(AcdEvent::QueueLog {
                    call_id,
                    kind,
                    agent,
                    ..
                }) if call_id == id => Some((*kind, agent.clone())),
                _ => None,
            })
            .collect()
    }
}

fn offers(o: &[Output]) -> Vec<(String, String)> {
    o.iter()
        .filter_map(|x| match x {
            Output::Call(CallControl::Offer { call_id, agent, .. }) => {
                Some((call_id.clone(), agent.clone()))
            }
            _ => None,
        })
        .collect()
}

impl Sim {
    /// A running timer that `f` picks, with its deadline.
    fn running(&self, f: impl Fn(&TimerId) -> bool) -> Option<(TimerId, u64)> {
        self.acd
            .pending_timers()
            .find(|(t, _)| f(t))
            .map(|(t, at)| (t.clone(), at))
    }

    fn timer(&self, f: impl Fn(&TimerId) -> bool) -> TimerId {
        self.running(f).expect("timer started").0
    }

    /// Time passes to `t`'s deadline (if it runs and the clock is not past
    /// it) and every due timer fires.
    fn fire(&mut self, t: TimerId) -> Vec<Output> {
        if let Some((_, at)) = self.running(|x| x == &t) {
            self.now = self.now.max(at);
        }
        let o = self.acd.handle_timeout(self.now);
        self.out.extend(o.clone());
        o
    }
}

fn has(o: &[Output], c: impl Into<Output>) -> bool {
    let c = c.into();
    o.iter().any(|x| x == &c)
}

#[test]
fn answered_call_with_wrap_up_and_record() {
    let mut q = QueueConfig::named("cards");
    q.wrap_up_secs = 10;
    let mut s = Sim::new(vec![q], vec![agent("1001", &[("cards", 1)], &[])]);
    s.login("1001");
    let o = s.call("c1", QueueTarget::plain("cards"));
    assert_eq!(offers(&o), [("c1".into(), "1001".into())]);
    assert_eq!(
        s.state("1001"),
        AgentState::Ringing {
            call_id: "c1".into()
        }
    );
    s.at(4);
    let o = s.ev(CallEvent::AgentAnswered {
        call_id: "c1".into(),
        agent: "1001".into(),
    });
    assert!(has(
        &o,
        CallControl::Bridge {
            call_id: "c1".into(),
            agent: "1001".into()
        }
    ));
    s.at(64);
    let o = s.ev(CallEvent::CallerHungUp {
        call_id: "c1".into(),
    });
    assert!(has(
        &o,
        CallControl::HangUpAgent {
            call_id: "c1".into(),
            agent: "1001".into()
        }
    ));
    assert_eq!(s.state("1001"), AgentState::WrapUp);
    let r = s.record("c1");
    assert_eq!(r.disposition, Disposition::Answered);
    assert_eq!((r.wait_secs, r.talk_secs), (4.0, 60.0));
    assert_eq!(
        (r.queue.as_deref(), r.agent.as_deref()),
        (Some("cards"), Some("1001"))
    );
    assert_eq!(
        r.plugin_versions.get("router").map(String::as_str),
        Some("abc123")
    );
    assert_eq!(
        s.qlog("c1").iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [
            QueueLogKind::EnterQueue,
            QueueLogKind::Offered,
            QueueLogKind::Connect,
            QueueLogKind::Complete
        ]
    );
    let wrap = s.timer(|t| matches!(t, TimerId::WrapUp { .. }));
    s.at(74);
    s.fire(wrap);
    assert_eq!(s.state("1001"), AgentState::Ready);
}

#[test]
fn abandon_in_queue_and_while_ringing() {
    let mut s = Sim::new(
        vec![QueueConfig::named("q")],
        vec![agent("a", &[("q", 1)], &[])],
    );
    s.call("waits", QueueTarget::plain("q"));
    s.at(30);
    s.ev(CallEvent::CallerHungUp {
        call_id: "waits".into(),
    });
    let r = s.record("waits");
    assert_eq!(
        (r.disposition, r.wait_secs),
        (Disposition::AbandonedInQueue, 30.0)
    );
    assert_eq!(
        s.qlog("waits").iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [QueueLogKind::EnterQueue, QueueLogKind::Abandon]
    );

    s.login("a");
    s.call("rings", QueueTarget::plain("q"));
    let o = s.ev(CallEvent::CallerHungUp {
        call_id: "rings".into(),
    });
    assert!(has(
        &o,
        CallControl::CancelOffer {
            call_id: "rings".into(),
            agent: "a".into()
        }
    ));
    assert_eq!(s.record("rings").disposition, Disposition::AbandonedRinging);
    assert_eq!(s.state("a"), AgentState::Ready);
    assert_eq!(s.acd.live_calls(), 0);
}

#[test]
fn ring_no_answer_requeues_at_original_place_and_next_agent_answers() {
    let mut s = Sim::new(
        vec![QueueConfig::named("q")],
        vec![agent("a", &[("q", 1)], &[]), agent("b", &[("q", 1)], &[])],
    );
    s.login("a");
    s.at(5);
    s.login("b");
    // Both agents take a call, then two more callers wait.
    s.call("x", QueueTarget::plain("q"));
    s.call("y", QueueTarget::plain("q"));
    s.ev(CallEvent::AgentAnswered {
        call_id: "x".into(),
        agent: "a".into(),
    });
    s.ev(CallEvent::AgentAnswered {
        call_id: "y".into(),
        agent: "b".into(),
    });
    s.at(10);
    s.call("first", QueueTarget::plain("q"));
    s.at(11);
    s.call("second", QueueTarget::plain("q"));
    assert_eq!(s.acd.waiting("q"), ["first", "second"]);
    s.at(20);
    let o = s.ev(CallEvent::AgentHungUp {
        call_id: "x".into(),
    });
    assert_eq!(offers(&o), [("first".into(), "a".into())]);
    let rna = s.timer(|t| matches!(t, TimerId::RingNoAnswer { .. }));
    s.at(35);
    let o = s.fire(rna.clone());
    assert!(has(
        &o,
        CallControl::CancelOffer {
            call_id: "first".into(),
            agent: "a".into()
        }
    ));
    assert_eq!(
        s.state("a"),
        AgentState::NotReady {
            reason: "ring-no-answer".into()
        }
    );
    // Back ahead of "second", where it was.
    assert_eq!(s.acd.waiting("q"), ["first", "second"]);
    // The ring timer fired once and is gone: more time offers nothing.
    assert!(s.running(|t| t == &rna).is_none());
    assert!(offers(&s.fire(rna)).is_empty());
    let o = s.ev(CallEvent::AgentHungUp {
        call_id: "y".into(),
    });
    assert_eq!(offers(&o), [("first".into(), "b".into())]);
    s.ev(CallEvent::AgentAnswered {
        call_id: "first".into(),
        agent: "b".into(),
    });
    assert!(
        s.qlog("first")
            .contains(&(QueueLogKind::RingNoAnswer, Some("a".into())))
    );
}

#[test]
fn agent_rejections_become_not_ready_and_requeue() {
    for (failure, reason) in [
        (OfferFailure::Busy, "busy"),
        (OfferFailure::Unavailable, "unavailable"),
        (OfferFailure::Declined, "declined"),
    ] {
        let mut s = Sim::new(
            vec![QueueConfig::named("q")],
            vec![agent("a", &[("q", 1)], &[])],
        );
        s.login("a");
        s.call("c", QueueTarget::plain("q"));
        s.ev(CallEvent::OfferFailed {
            call_id: "c".into(),
            agent: "a".into(),
            failure,
        });
        assert_eq!(
            s.state("a"),
            AgentState::NotReady {
                reason: reason.into()
            }
        );
        assert_eq!(s.acd.waiting("q"), ["c"]);
        let o = s.ev(CallEvent::AgentReady { agent: "a".into() });
        assert_eq!(offers(&o), [("c".into(), "a".into())]);
    }
}

#[test]
fn priority_jumps_ahead_and_can_change_while_waiting() {
    let mut s = Sim::new(
        vec![QueueConfig::named("q")],
        vec![agent("a", &[("q", 1)], &[])],
    );
    s.call("normal", QueueTarget::plain("q"));
    s.call("late", QueueTarget::plain("q"));
    s.call(
        "vip",
        QueueTarget {
            priority: 10,
            ..QueueTarget::plain("q")
        },
    );
    assert_eq!(s.acd.waiting("q"), ["vip", "normal", "late"]);
    s.ev(CallEvent::SetPriority {
        call_id: "late".into(),
        priority: 20,
    });
    assert_eq!(s.acd.waiting("q"), ["late", "vip", "normal"]);
    let o = s.ev(CallEvent::AgentLogin { agent: "a".into() });
    assert_eq!(offers(&o), [("late".into(), "a".into())]);
}

#[test]
fn max_wait_overflows_to_queue_then_to_number() {
    let mut a = QueueConfig::named("a");
    a.max_wait_secs = Some(30);
    a.overflow = Some("queue:b".into());
    let mut b = QueueConfig::named("b");
    b.max_wait_secs = Some(60);
    b.overflow = Some("+861095588".into());
    let mut s = Sim::new(vec![a, b], vec![]);
    s.call("c", QueueTarget::plain("a"));
    let t = s.timer(|t| matches!(t, TimerId::MaxWait { .. }));
    s.at(30);
    s.fire(t);
    assert_eq!(s.acd.waiting("b"), ["c"]);
    let t = s.timer(|t| matches!(t, TimerId::MaxWait { .. }));
    s.at(90);
    let o = s.fire(t);
    assert!(has(
        &o,
        CallControl::Forward {
            call_id: "c".into(),
            target: "+861095588".into()
        }
    ));
    let r = s.record("c");
    assert_eq!(
        (r.disposition, r.overflowed_from.clone(), r.wait_secs),
        (
            Disposition::Overflowed,
            vec!["a".to_string(), "b".to_string()],
            90.0
        )
    );
}

#[test]
fn router_overflow_target_and_max_wait_win_over_the_queue() {
    let mut s = Sim::new(
        vec![QueueConfig::named("q"), QueueConfig::named("backup")],
        vec![],
    );
    s.call(
        "c",
        QueueTarget {
            max_wait_secs: Some(5),
            overflow: Some("queue:backup".into()),
            ..QueueTarget::plain("q")
        },
    );
    let t = s.timer(|t| matches!(t, TimerId::MaxWait { .. }));
    assert_eq!(s.running(|x| x == &t).map(|(_, at)| at), Some(1_005_000));
    s.at(5);
    s.fire(t);
    assert_eq!(s.acd.waiting("backup"), ["c"]);
}

#[test]
fn max_length_and_join_empty() {
    let mut full = QueueConfig::named("full");
    full.max_length = Some(1);
    let mut empty = QueueConfig::named("empty");
    empty.join_empty = false;
    let mut s = Sim::new(vec![full, empty], vec![agent("a", &[("empty", 1)], &[])]);
    s.call("one", QueueTarget::plain("full"));
    let o = s.call("two", QueueTarget::plain("full"));
    assert!(has(
        &o,
        CallControl::Reject {
            call_id: "two".into(),
            code: 486,
            reason: "Busy Here".into()
        }
    ));
    assert_eq!(s.record("two").disposition, Disposition::Rejected);
    let o = s.call("three", QueueTarget::plain("empty"));
    assert!(has(
        &o,
        CallControl::Reject {
            call_id: "three".into(),
            code: 480,
            reason: "Temporarily Unavailable".into()
        }
    ));
}

#[test]
fn leave_when_empty_sends_waiting_callers_on() {
    let mut q = QueueConfig::named("q");
    q.leave_when_empty = true;
    q.overflow = Some("queue:night".into());
    let mut s = Sim::new(
        vec![q, QueueConfig::named("night")],
        vec![agent("a", &[("q", 1)], &[])],
    );
    s.login("a");
    s.ev(CallEvent::AgentNotReady {
        agent: "a".into(),
        reason: "lunch".into(),
    });
    s.call("c", QueueTarget::plain("q"));
    s.ev(CallEvent::AgentLogout { agent: "a".into() });
    assert_eq!(s.acd.waiting("night"), ["c"]);
}

#[test]
fn strategies_pick_the_right_agent() {
    let run = |strategy: Strategy, prep: &dyn Fn(&mut Sim)| -> Vec<(String, String)> {
        let mut q = QueueConfig::named("q");
        q.strategy = strategy;
        let agents = vec![
            agent("a", &[("q", 1)], &[("cards", 20)]),
            agent("b", &[("q", 5)], &[("cards", 90)]),
            agent("c", &[("q", 1)], &[("cards", 90)]),
        ];
        let mut s = Sim::new(vec![q], agents);
        s.login("b");
        s.at(1);
        s.login("a");
        s.at(2);
        s.login("c");
        prep(&mut s);
        s.at(100);
        offers(&s.call(
            "z",
            QueueTarget {
                skills: vec!["cards".into()],
                ..QueueTarget::plain("q")
            },
        ))
    };
    let to = |a: &str| vec![("z".to_string(), a.to_string())];
    assert_eq!(run(Strategy::LongestIdle, &|_| {}), to("b"));
    assert_eq!(
        run(Strategy::SkillsWeighted, &|_| {}),
        to("b"),
        "b and c share the level; b's queue weight is higher"
    );
    assert_eq!(
        run(Strategy::FewestCalls, &|s| {
            s.call("w", QueueTarget::plain("q"));
            s.ev(CallEvent::AgentAnswered {
                call_id: "w".into(),
                agent: "b".into(),
            });
            s.ev(CallEvent::AgentHungUp {
                call_id: "w".into(),
            });
        }),
        to("a")
    );
    assert_eq!(
        run(Strategy::RoundRobin, &|s| {
            for w in ["w1", "w2"] {
                s.call(w, QueueTarget::plain("q"));
                s.ev(CallEvent::CallerHungUp { call_id: w.into() });
            }
        }),
        to("c"),
        "a, then b, then c"
    );
    let all = run(Strategy::RingAll, &|_| {});
    assert_eq!(all.len(), 3);
}

#[test]
fn ring_all_first_answer_takes_the_call() {
    let mut q = QueueConfig::named("q");
    q.strategy = Strategy::RingAll;
    let mut s = Sim::new(
        vec![q],
        vec![agent("a", &[("q", 1)], &[]), agent("b", &[("q", 1)], &[])],
    );
    s.login("a");
    s.login("b");
    s.call("c", QueueTarget::plain("q"));
    let o = s.ev(CallEvent::AgentAnswered {
        call_id: "c".into(),
        agent: "b".into(),
    });
    assert!(has(
        &o,
        CallControl::CancelOffer {
            call_id: "c".into(),
            agent: "a".into()
        }
    ));
    assert_eq!(s.state("a"), AgentState::Ready);
    assert_eq!(
        s.state("b"),
        AgentState::OnCall {
            call_id: "c".into()
        }
    );
    // A late answer from a loses: its leg is cancelled, the call stays with b.
    let o = s.ev(CallEvent::AgentAnswered {
        call_id: "c".into(),
        agent: "a".into(),
    });
    assert!(has(
        &o,
        CallControl::CancelOffer {
            call_id: "c".into(),
            agent: "a".into()
        }
    ));
}

#[test]
fn router_ranking_orders_the_offer() {
    let mut q = QueueConfig::named("q");
    q.plugin_ranking = true;
    let mut s = Sim::new(
        vec![q],
        vec![agent("a", &[("q", 1)], &[]), agent("b", &[("q", 1)], &[])],
    );
    s.login("a");
    s.login("b");
    let o = s.call("c", QueueTarget::plain("q"));
    let cands = o
        .iter()
        .find_map(|x| match x {
            Output::Ask(Ask::Ranking { candidates, .. }) => Some(candidates.clone()),
            _ => None,
        })
        .expect("ranking asked");
    assert_eq!(cands.len(), 2);
    assert!(offers(&o).is_empty());
    let o = s.ev(CallEvent::AgentsRanked {
        call_id: "c".into(),
        ranking: vec!["b".into()],
        plugin: "router".into(),
        plugin_version: Some("r1".into()),
    });
    assert_eq!(offers(&o), [("c".into(), "b".into())]);
}

#[test]
fn reject_forward_and_direct_agent_decisions() {
    let mut s = Sim::new(
        vec![QueueConfig::named("q")],
        vec![agent("a", &[("q", 1)], &[])],
    );
    s.ev(CallEvent::Arrived {
        call_id: "r".into(),
        caller: "x".into(),
        dialed: "y".into(),
        trunk: "t".into(),
        attributes: vec![],
    });
    let o = s.ev(CallEvent::RouteDecided {
        call_id: "r".into(),
        decision: RouteDecision::Reject(Rejection {
            code: 603,
            reason: "Decline".into(),
        }),
        plugin: "router".into(),
        plugin_version: "v".into(),
    });
    assert!(has(
        &o,
        CallControl::Reject {
            call_id: "r".into(),
            code: 603,
            reason: "Decline".into()
        }
    ));
    assert_eq!(s.record("r").cause, "603 Decline");

    s.ev(CallEvent::Arrived {
        call_id: "f".into(),
        caller: "x".into(),
        dialed: "y".into(),
        trunk: "t".into(),
        attributes: vec![],
    });
    s.ev(CallEvent::RouteDecided {
        call_id: "f".into(),
        decision: RouteDecision::Forward("+8610".into()),
        plugin: "router".into(),
        plugin_version: "v".into(),
    });
    assert_eq!(s.record("f").disposition, Disposition::Forwarded);

    s.login("a");
    s.ev(CallEvent::Arrived {
        call_id: "d".into(),
        caller: "x".into(),
        dialed: "y".into(),
        trunk: "t".into(),
        attributes: vec![],
    });
    let o = s.ev(CallEvent::RouteDecided {
        call_id: "d".into(),
        decision: RouteDecision::Agent("a".into()),
        plugin: "router".into(),
        plugin_version: "v".into(),
    });
    assert_eq!(offers(&o), [("d".into(), "a".into())]);
}

#[test]
fn ivr_without_media_asks_the_router_again_with_no_digits_and_stops_loops() {
    let mut s = Sim::new(vec![QueueConfig::named("q")], vec![]);
    s.ev(CallEvent::Arrived {
        call_id: "c".into(),
        caller: "x".into(),
        dialed: "95588".into(),
        trunk: "t".into(),
        attributes: vec![],
    });
    let step = IvrStep {
        name: "main-menu".into(),
        prompt: "main-menu".into(),
        max_digits: 1,
        terminator: None,
        inter_digit_timeout_ms: 5000,
        sensitive: false,
    };
    let mut asked = 0;
    loop {
        let o = s.ev(CallEvent::RouteDecided {
            call_id: "c".into(),
            decision: RouteDecision::Ivr(step.clone()),
            plugin: "router".into(),
            plugin_version: "v".into(),
        });
        match o.iter().find_map(|x| match x {
            Output::Ask(Ask::Router { info, .. }) => Some(info.clone()),
            _ => None,
        }) {
            Some(info) => {
                asked += 1;
                assert_eq!(info.ivr.len(), asked);
                assert_eq!(info.ivr[0].digits, "");
            }
            None => break,
        }
    }
    assert_eq!(asked, 8);
    assert_eq!(s.record("c").disposition, Disposition::Failed);
}

#[test]
fn not_ready_during_a_call_applies_after_it() {
    let mut s = Sim::new(
        vec![QueueConfig::named("q")],
        vec![agent("a", &[("q", 1)], &[])],
    );
    s.login("a");
    s.call("c", QueueTarget::plain("q"));
    s.ev(CallEvent::AgentAnswered {
        call_id: "c".into(),
        agent: "a".into(),
    });
    s.ev(CallEvent::AgentNotReady {
        agent: "a".into(),
        reason: "break".into(),
    });
    assert_eq!(
        s.state("a"),
        AgentState::OnCall {
            call_id: "c".into()
        }
    );
    s.call("next", QueueTarget::plain("q"));
    let o = s.ev(CallEvent::CallerHungUp {
        call_id: "c".into(),
    });
    assert_eq!(
        s.state("a"),
        AgentState::NotReady {
            reason: "break".into()
        }
    );
    assert!(
        offers(&o).is_empty(),
        "no call offered to an agent going on break"
    );
}

#[test]
fn queue_stats_reach_the_router() {
    let mut s = Sim::new(
        vec![QueueConfig::named("q")],
        vec![agent("a", &[("q", 1)], &[]), agent("b", &[("q", 1)], &[])],
    );
    s.login("a");
    s.ev(CallEvent::AgentNotReady {
        agent: "a".into(),
        reason: "x".into(),
    });
    s.call("w1", QueueTarget::plain("q"));
    s.at(40);
    let o = s.ev(CallEvent::Arrived {
        call_id: "n".into(),
        caller: "x".into(),
        dialed: "y".into(),
        trunk: "t".into(),
        attributes: vec![],
    });
    let info = o
        .iter()
        .find_map(|x| match x {
            Output::Ask(Ask::Router { info, .. }) => Some(info.clone()),
            _ => None,
        })
        .unwrap();
    let q = &info.queues[0];
    assert_eq!(
        (
            q.waiting,
            q.longest_wait_secs,
            q.agents_ready,
            q.agents_logged_in
        ),
        (1, 40, 0, 1)
    );
    assert!(q.estimated_wait_secs > 0);
}

#[test]
fn the_offer_event_comes_before_the_ring_and_carries_the_call() {
    let mut s = Sim::new(
        vec![QueueConfig::named("cards")],
        vec![agent("1001", &[("cards", 1)], &[("cards", 50)])],
    );
    s.login("1001");
    let o = s.call("c1", QueueTarget::plain("cards"));
    let offered = o
        .iter()
        .position(|x| matches!(x, Output::Event(AcdEvent::CallOffered { .. })))
        .expect("offered event");
    let ring = o
        .iter()
        .position(|x| matches!(x, Output::Call(CallControl::Offer { .. })))
        .expect("offer command");
    assert!(offered < ring, "{o:?}");
    let Output::Event(AcdEvent::CallOffered {
        call, agent_info, ..
    }) = &o[offered]
    else {
        unreachable!()
    };
    assert_eq!(call.caller, "+8613800000000");
    assert_eq!(agent_info.skills, vec!["cards".to_string()]);
}

#[test]
fn api_requests_are_checked_against_the_live_state() {
    let mut q = QueueConfig::named("cards");
    q.wrap_up_secs = 30;
    let mut s = Sim::new(
        vec![q, QueueConfig::named("vip")],
        vec![
            agent("1001", &[("cards", 1)], &[]),
            agent("1002", &[("vip", 1)], &[]),
        ],
    );
    let refusal = |s: &Sim, e: CallEvent| s.acd.check(&e).unwrap_err();
    assert!(matches!(
        refusal(
            &s,
            CallEvent::SetPriority {
                call_id: "no-such-call".into(),
                priority: 5
            }
        ),
        Refusal::NotFound(_)
    ));
    assert!(matches!(
        refusal(
            &s,
            CallEvent::AgentReady {
                agent: "nobody".into()
            }
        ),
        Refusal::NotFound(_)
    ));
    assert!(matches!(
        refusal(
            &s,
            CallEvent::AgentNotReady {
                agent: "1001".into(),
                reason: "break".into()
            }
        ),
        Refusal::Conflict(_)
    ));
    assert!(matches!(
        refusal(
            &s,
            CallEvent::WrapUpDone {
                agent: "1001".into()
            }
        ),
        Refusal::Conflict(_)
    ));
    s.login("1001");
    s.call("c1", QueueTarget::plain("cards"));
    s.ev(CallEvent::AgentAnswered {
        call_id: "c1".into(),
        agent: "1001".into(),
    });
    let transfer = |target| CallEvent::Transfer {
        call_id: "c1".into(),
        target,
        by: "agent:1001".into(),
    };
    assert!(matches!(
        refusal(&s, transfer(TransferTarget::Queue("nope".into()))),
        Refusal::NotFound(_)
    ));
    assert!(matches!(
        refusal(&s, transfer(TransferTarget::Agent("1002".into()))),
        Refusal::Conflict(_)
    ));
    assert!(matches!(
        refusal(&s, transfer(TransferTarget::Number("95588".into()))),
        Refusal::Conflict(_)
    ));
    assert!(matches!(
        refusal(&s, transfer(TransferTarget::Number("<script>".into()))),
        Refusal::Invalid(_)
    ));
    assert!(matches!(
        refusal(
            &s,
            CallEvent::HangUp {
                call_id: "c9".into(),
                by: "x".into()
            }
        ),
        Refusal::NotFound(_)
    ));
    assert!(
        s.acd
            .check(&transfer(TransferTarget::Queue("vip".into())))
            .is_ok()
    );
}

#[test]
fn a_connected_call_transferred_to_a_queue_rings_the_next_agent() {
    let mut cards = QueueConfig::named("cards");
    cards.wrap_up_secs = 30;
    let mut s = Sim::new(
        vec![cards, QueueConfig::named("vip")],
        vec![
            agent("1001", &[("cards", 1)], &[]),
            agent("1002", &[("vip", 1)], &[]),
        ],
    );
    s.login("1001");
    s.login("1002");
    s.call("c1", QueueTarget::plain("cards"));
    s.at(5).ev(CallEvent::AgentAnswered {
        call_id: "c1".into(),
        agent: "1001".into(),
    });
    let o = s.at(65).ev(CallEvent::Transfer {
        call_id: "c1".into(),
        target: TransferTarget::Queue("vip".into()),
        by: "agent:1001".into(),
    });
    assert!(has(
        &o,
        CallControl::HangUpAgent {
            call_id: "c1".into(),
            agent: "1001".into()
        }
    ));
    assert_eq!(offers(&o), vec![("c1".into(), "1002".into())]);
    assert_eq!(s.state("1001"), AgentState::WrapUp);
    s.at(70).ev(CallEvent::AgentAnswered {
        call_id: "c1".into(),
        agent: "1002".into(),
    });
    s.at(100).ev(CallEvent::CallerHungUp {
        call_id: "c1".into(),
    });
    let r = s.record("c1");
    assert_eq!(r.disposition, Disposition::Answered);
    assert_eq!(r.agent.as_deref(), Some("1002"));
    assert_eq!(r.queue.as_deref(), Some("vip"));
    // Talk time runs from the first answer.
    assert_eq!(r.talk_secs, 95.0);
}

#[test]
fn hang_up_from_the_api_ends_a_queued_or_connected_call() {
    let mut s = Sim::new(
        vec![QueueConfig::named("cards")],
        vec![agent("1001", &[("cards", 1)], &[])],
    );
    s.call("c1", QueueTarget::plain("cards"));
    let o = s.ev(CallEvent::HangUp {
        call_id: "c1".into(),
        by: "supervisor:9001".into(),
    });
    assert!(has(
        &o,
        CallControl::HangUpCaller {
            call_id: "c1".into()
        }
    ));
    assert_eq!(s.record("c1").disposition, Disposition::Rejected);
    assert_eq!(s.record("c1").cause, "ended by supervisor:9001");
    s.login("1001");
    s.call("c2", QueueTarget::plain("cards"));
    s.ev(CallEvent::AgentAnswered {
        call_id: "c2".into(),
        agent: "1001".into(),
    });
    let o = s.ev(CallEvent::HangUp {
        call_id: "c2".into(),
        by: "agent:1001".into(),
    });
    assert!(has(
        &o,
        CallControl::HangUpAgent {
            call_id: "c2".into(),
            agent: "1001".into()
        }
    ));
    assert_eq!(s.record("c2").disposition, Disposition::Answered);
}

#[test]
fn the_host_stopping_ends_each_call_and_records_waiting_ones_as_interrupted() {
    let mut s = Sim::new(
        vec![QueueConfig::named("cards")],
        vec![agent("1001", &[("cards", 1)], &[])],
    );
    s.call("waiting", QueueTarget::plain("cards"));
    s.login("1001");
    s.call("talking", QueueTarget::plain("cards"));
    // The agent was offered the first call when it logged in.
    s.ev(CallEvent::AgentAnswered {
        call_id: "waiting".into(),
        agent: "1001".into(),
    });
    for id in ["talking", "waiting"] {
        let o = s.ev(CallEvent::HostStopping { call_id: id.into() });
        assert!(
            has(&o, CallControl::HangUpCaller { call_id: id.into() }),
            "{o:?}"
        );
    }
    let answered = s.record("waiting");
    assert_eq!(answered.disposition, Disposition::Answered);
    assert_eq!(answered.cause, "ended by the host's stop");
    let cut = s.record("talking");
    assert_eq!(cut.disposition, Disposition::Interrupted);
    assert_eq!(cut.cause, "ended by the host's stop");
    // The agent is free again (the queue has no wrap-up time).
    assert_eq!(s.state("1001"), AgentState::Ready);
}

#[test]
fn a_queue_with_music_answers_callers_and_announces_their_place_on_a_timer() {
    let mut q = QueueConfig::named("cards");
    q.music_on_hold = Some("music-on-hold".into());
    q.announce_every_secs = 30;
    let mut s = Sim::new(vec![], vec![]);
    s.acd = Acd::new(
        AcdSettings {
            ivr_supported: true,
            recording: true,
            ..AcdSettings::default()
        },
        vec![q],
        vec![agent("1001", &[("cards", 1)], &[])],
    );
    // The only agent is logged out: both calls wait.
    s.call("c1", QueueTarget::plain("cards"));
    let o = s.call("c2", QueueTarget::plain("cards"));
    assert!(has(
        &o,
        MediaCommand::Hold {
            call_id: "c2".into(),
            music: Some("music-on-hold".into())
        }
    ));
    // Answered by the host: the recording policy is asked at connect.
    assert!(o.iter().any(|x| matches!(x,
        Output::Ask(Ask::RecordingPolicy { call_id, event: None, .. }) if call_id == "c2")));
    let is_c2 = |t: &TimerId| matches!(t, TimerId::Announce { call_id, .. } if call_id == "c2");
    let timer = s.running(is_c2).expect("announcement timer");
    assert_eq!(timer.1, s.now + 30_000);
    let o = s.at(30).fire(timer.0.clone());
    // Second in line; one agent staffed (logged out counts nothing: 1 as the floor).
    assert!(has(
        &o,
        MediaCommand::Announce {
            call_id: "c2".into(),
            position: 2,
            wait_secs: 2 * 180,
        }
    ));
    let next = s.running(is_c2).expect("the next announcement");
    assert!(next.0 != timer.0 && next.1 == s.now + 30_000, "{next:?}");
    // A key outside IVR goes to the policy, never elsewhere (once the
    // connect question is answered: one question at a time).
    s.ev(CallEvent::RecordingDecided {
        call_id: "c2".into(),
        decision: None,
        plugin: "policy".into(),
        plugin_version: "p1".into(),
    });
    let o = s.ev(CallEvent::Dtmf {
        call_id: "c2".into(),
        digit: '5',
    });
    assert!(o.iter().any(|x| matches!(x,
        Output::Ask(Ask::RecordingPolicy { event: Some(crate::vocabulary::PolicyEvent::Dtmf(d)), .. }) if d == "5")));
}

/// Agents' calls today start again at the center's local midnight (Beijing
/// here), not at UTC's (08:00 in Beijing).
#[test]
fn calls_today_start_again_at_local_midnight() {
    let mut s = Sim::new(vec![], vec![]);
    s.acd = Acd::new(
        AcdSettings {
            calendar: crate::calendar::Calendar::named("Asia/Shanghai").unwrap(),
            ..AcdSettings::default()
        },
        vec![QueueConfig::named("q")],
        vec![agent("a", &[("q", 1)], &[]), agent("b", &[("q", 1)], &[])],
    );
    let calls_today = |s: &Sim| {
        s.acd
            .snapshot(s.now)
            .agents
            .iter()
            .find(|x| x.id == "a")
            .map(|x| x.calls_today)
    };
    // 2026-11-30 23:50 in Beijing (15:50 UTC).
    s.now = 1_796_053_800_000;
    s.login("a");
    s.call("c1", QueueTarget::plain("q"));
    s.ev(CallEvent::AgentAnswered {
        call_id: "c1".into(),
        agent: "a".into(),
    });
    s.ev(CallEvent::AgentHungUp {
        call_id: "c1".into(),
    });
    assert_eq!(calls_today(&s), Some(1));
    // 23:59: still the same day.
    s.now += 9 * 60_000;
    s.login("b");
    assert_eq!(calls_today(&s), Some(1));
    // 00:01 on 2026-12-01 in Beijing: a new day at the next event.
    s.now += 2 * 60_000;
    s.ev(CallEvent::AgentLogout { agent: "b".into() });
    assert_eq!(calls_today(&s), Some(0));
}

fn policy_asks(o: &[Output]) -> Vec<(Option<PolicyEvent>, bool)> {
    o.iter()
        .filter_map(|x| match x {
            Output::Ask(Ask::RecordingPolicy { event, paused, .. }) => {
                Some((event.clone(), *paused))
            }
            _ => None,
        })
        .collect()
}

fn pauses(o: &[Output]) -> Vec<bool> {
    o.iter()
        .filter_map(|x| match x {
            Output::Media(MediaCommand::PauseRecording { paused, .. }) => Some(*paused),
            _ => None,
        })
        .collect()
}

/// A connected call with a recording policy: the connect question is out.
fn connected_with_policy() -> Sim {
    let mut s = Sim::new(vec![], vec![]);
    s.acd = Acd::new(
        AcdSettings {
            recording: true,
            ..AcdSettings::default()
        },
        vec![QueueConfig::named("q")],
        vec![agent("a", &[("q", 1)], &[])],
    );
    s.login("a");
    s.call("c", QueueTarget::plain("q"));
    let o = s.ev(CallEvent::AgentAnswered {
        call_id: "c".into(),
        agent: "a".into(),
    });
    assert_eq!(policy_asks(&o), [(None, false)], "asked at connect");
    s
}

fn acted(s: &mut Sim, action: Option<RecordingAction>, version: &str) -> Vec<Output> {
    s.ev(CallEvent::RecordingActed {
        call_id: "c".into(),
        action,
        plugin: "policy".into(),
        plugin_version: version.into(),
    })
}

#[test]
fn the_policy_gets_one_question_at_a_time_and_the_core_keeps_the_pause() {
    let mut s = connected_with_policy();
    // Keys pressed before the connect answer wait for it.
    for d in ['4', '5'] {
        let o = s.ev(CallEvent::Dtmf {
            call_id: "c".into(),
            digit: d,
        });
        assert!(policy_asks(&o).is_empty(), "{d} waits its turn");
    }
    let o = s.ev(CallEvent::RecordingDecided {
        call_id: "c".into(),
        decision: Some(RecordingDecision {
            mode: RecordMode::Both,
            retention_days: 30,
            reason: "all calls".into(),
        }),
        plugin: "policy".into(),
        plugin_version: "p1".into(),
    });
    let plan = o.iter().find_map(|x| match x {
        Output::Media(MediaCommand::Record { plan, .. }) => Some(plan.clone()),
        _ => None,
    });
    assert_eq!(
        plan.map(|p| (p.legs, p.retention_days, p.policy, p.policy_version)),
        Some((Legs::Both, 30, "policy".to_owned(), "p1".to_owned()))
    );
    assert_eq!(
        policy_asks(&o),
        [(Some(PolicyEvent::Dtmf("4".into())), false)]
    );
    // The policy pauses: the recorder is told, and the next question says so.
    let o = acted(&mut s, Some(RecordingAction::Pause), "p1");
    assert_eq!(pauses(&o), [true]);
    assert_eq!(
        policy_asks(&o),
        [(Some(PolicyEvent::Dtmf("5".into())), true)]
    );
    // A policy that cannot be asked changes nothing.
    let o = acted(&mut s, None, "unavailable: gone");
    assert!(pauses(&o).is_empty() && policy_asks(&o).is_empty());
    let o = s.ev(CallEvent::RecordingRequested {
        call_id: "c".into(),
        request: "resume".into(),
    });
    assert_eq!(
        policy_asks(&o),
        [(Some(PolicyEvent::AgentRequest("resume".into())), true)]
    );
    let o = acted(&mut s, Some(RecordingAction::Resume), "p2");
    assert_eq!(pauses(&o), [false]);
    s.ev(CallEvent::CardBuilt {
        call_id: "c".into(),
        plugin: "card".into(),
        plugin_version: "k1".into(),
    });
    s.ev(CallEvent::CallerHungUp {
        call_id: "c".into(),
    });
    let versions = s.record("c").plugin_versions;
    assert_eq!(
        versions.into_iter().collect::<Vec<_>>(),
        [
            ("card".to_owned(), "k1".to_owned()),
            ("policy".to_owned(), "p2".to_owned()),
            ("router".to_owned(), "abc123".to_owned()),
        ],
        "every plugin that decided, the policy's latest version (not the failed answer)"
    );
}

#[test]
fn a_call_not_recorded_still_tracks_pauses_and_questions_are_bounded() {
    let mut s = connected_with_policy();
    let o = s.ev(CallEvent::RecordingDecided {
        call_id: "c".into(),
        decision: Some(RecordingDecision {
            mode: RecordMode::None,
            retention_days: 0,
            reason: "internal call".into(),
        }),
        plugin: "policy".into(),
        plugin_version: "p1".into(),
    });
    assert!(
        !o.iter()
            .any(|x| matches!(x, Output::Media(MediaCommand::Record { .. })))
    );
    // A flood of keys while a question is out: at most MAX_PENDING_ASKS wait.
    s.ev(CallEvent::Dtmf {
        call_id: "c".into(),
        digit: '1',
    });
    let mut warnings = 0;
    for _ in 0..MAX_PENDING_ASKS + 50 {
        let o = s.ev(CallEvent::Dtmf {
            call_id: "c".into(),
            digit: '2',
        });
        warnings += o
            .iter()
            .filter(|x| matches!(x, Output::Event(AcdEvent::Warning { .. })))
            .count();
    }
    assert_eq!(warnings, 1, "one warning per call, not one per key");
    let o = acted(&mut s, Some(RecordingAction::Pause), "p1");
    assert!(pauses(&o).is_empty(), "nothing records: nothing to pause");
    assert_eq!(
        policy_asks(&o),
        [(Some(PolicyEvent::Dtmf("2".into())), true)]
    );
    let mut asked = 1;
    loop {
        let o = acted(&mut s, Some(RecordingAction::Keep), "p1");
        if policy_asks(&o).is_empty() {
            break;
        }
        asked += 1;
    }
    assert_eq!(asked, MAX_PENDING_ASKS);
}

#[test]
fn an_agents_request_is_refused_before_connect_and_without_a_policy() {
    let mut s = Sim::new(
        vec![QueueConfig::named("q")],
        vec![agent("a", &[("q", 1)], &[])],
    );
    s.call("c", QueueTarget::plain("q"));
    assert_eq!(
        s.acd.recording_request("c"),
        Err(RecordingRefusal::NoPolicy)
    );
    let mut s = Sim::new(vec![], vec![]);
    s.acd = Acd::new(
        AcdSettings {
            recording: true,
            ..AcdSettings::default()
        },
        vec![QueueConfig::named("q")],
        vec![],
    );
    s.call("c", QueueTarget::plain("q"));
    assert_eq!(
        s.acd.recording_request("c"),
        Err(RecordingRefusal::NotConnected("c".into()))
    );
    assert_eq!(
        s.acd.recording_request("nope"),
        Err(RecordingRefusal::NoCall("nope".into()))
    );
}
