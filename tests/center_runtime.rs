//! The ACD running for real: the stock router plugin decides, timers run on
//! tokio, records land in sled. Events are fed as the SIP adapter feeds them,
//! and the commands it would carry out are read from its channel.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use ctihost::acd::*;
use ctihost::center::Published;
use ctihost::plugins::Trigger;
use ctihost::stock_plugins::STOCK;
use support::*;
use tokio::sync::mpsc::UnboundedReceiver;

async fn next_command(
    rx: &mut UnboundedReceiver<Command>,
    what: &str,
    f: impl Fn(&Command) -> bool,
) -> Command {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(c)) if f(&c) => return c,
            Ok(Some(_)) => continue,
            _ => panic!("no {what} within 10 s"),
        }
    }
}

fn agent(id: &str) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        name: id.into(),
        sip_user: id.into(),
        skills: Default::default(),
        queues: [("general".to_string(), 1)].into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_routed_by_the_stock_router_rings_reoffers_and_is_recorded() {
    let t = TestHost::new();
    for p in STOCK
        .iter()
        .filter(|p| ["crm-http", "crm-screen-pop"].contains(&p.name))
    {
        t.host.load(p.source(), Trigger::Startup).await.unwrap();
    }
    // The stock router without its business hours: the test must not depend
    // on the time of day it runs at (Beijing evenings are after hours).
    let dir = tempfile::tempdir().unwrap();
    let router = always_open_router(dir.path()).join("skills-router.toml");
    t.load(&router, Trigger::Startup).await.unwrap();
    let mut general = QueueConfig::named("general");
    general.ring_timeout_secs = 1;
    let acd = Acd::new(
        AcdSettings::default(),
        vec![general, QueueConfig::named("vip")],
        vec![agent("a"), agent("b")],
    );
    let (calls_tx, mut calls) = tokio::sync::mpsc::unbounded_channel();
    // Lives to the end of the test: the center's loop ends with it.
    let loops = ctihost::shutdown::Loops::new();
    let center = ctihost::center::spawn(
        acd,
        t.host.clone(),
        t.store.clone(),
        ctihost::center::CenterPlugins {
            router: "skills-router".into(),
            screen_pop: Some("crm-screen-pop".into()),
            recording_policy: None,
        },
        calls_tx,
        std::sync::Arc::new(ctihost::metrics::Metrics::default()),
        loops.subscribe(),
    );
    let mut events = center.subscribe();
    // Cards are built for watched agents only: watch as a supervisor would.
    let _watching = center.watch(None);
    center.send(CallEvent::AgentLogin { agent: "a".into() });
    center.send(CallEvent::AgentLogin { agent: "b".into() });
    center.send(CallEvent::Arrived {
        call_id: "c1".into(),
        caller: "+8613800000001".into(),
        dialed: "95588".into(),
        trunk: "loopback".into(),
        attributes: vec![],
    });

    // Without media the router's IVR menu gets no digits; after its retry the
    // call lands in the general queue and rings the longest-idle agent.
    let first = next_command(&mut calls, "offer", |c| {
        matches!(c, Command::Call(CallControl::Offer { .. }))
    })
    .await;
    let Command::Call(CallControl::Offer {
        agent: first_agent, ..
    }) = first
    else {
        unreachable!()
    };
    // Nobody answers: after the 1 s ring timeout the offer is withdrawn and the other agent rings.
    next_command(
        &mut calls,
        "cancel",
        |c| matches!(c, Command::Call(CallControl::CancelOffer { agent, .. }) if *agent == first_agent),
    )
    .await;
    let second = next_command(&mut calls, "second offer", |c| {
        matches!(c, Command::Call(CallControl::Offer { .. }))
    })
    .await;
    let Command::Call(CallControl::Offer {
        agent: second_agent,
        ..
    }) = second
    else {
        unreachable!()
    };
    assert_ne!(first_agent, second_agent);
    center.send(CallEvent::AgentAnswered {
        call_id: "c1".into(),
        agent: second_agent.clone(),
    });
    next_command(&mut calls, "bridge", |c| {
        matches!(c, Command::Call(CallControl::Bridge { .. }))
    })
    .await;
    center.send(CallEvent::CallerHungUp {
        call_id: "c1".into(),
    });
    next_command(&mut calls, "hang up", |c| {
        matches!(c, Command::Call(CallControl::HangUpAgent { .. }))
    })
    .await;

    // The record is in the store, with the router's full version hash.
    let record = wait_for(Duration::from_secs(5), || {
        t.store.calls_since(0, 10).unwrap().into_iter().next()
    })
    .await
    .expect("call record stored");
    assert_eq!(record.disposition, Disposition::Answered);
    assert_eq!(record.agent.as_deref(), Some(second_agent.as_str()));
    assert_eq!(record.queue.as_deref(), Some("general"));
    assert_eq!(
        record.plugin_versions.get("skills-router"),
        t.host.current_version("skills-router").as_ref()
    );
    assert!(
        record.wait_secs >= 1.0,
        "waited through a ring timeout: {}",
        record.wait_secs
    );
    let log: Vec<QueueLogKind> = t
        .store
        .queue_log_since(0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        log,
        [
            QueueLogKind::EnterQueue,
            QueueLogKind::Offered,
            QueueLogKind::RingNoAnswer,
            QueueLogKind::Offered,
            QueueLogKind::Connect,
            QueueLogKind::Complete
        ]
    );
    // The agent who did not answer is not ready; the event stream said so.
    // Each offer's screen-pop runs on its own and may still be finishing
    // after the call ended: read events until both full cards are in (10 s).
    let mut saw = false;
    let mut cards = vec![];
    let full = |cards: &Vec<Box<ctihost::center::ScreenPop>>, agent: &String| {
        cards.iter().any(|c| &c.agent == agent && !c.provisional)
    };
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(saw && full(&cards, &first_agent) && full(&cards, &second_agent)) {
        let Ok(Ok(e)) = tokio::time::timeout_at(until, events.recv()).await else {
            break;
        };
        match e {
            Published::Acd(AcdEvent::AgentStateChanged {
                agent,
                state: AgentState::NotReady { reason },
            }) => saw |= agent == first_agent && reason == "ring-no-answer",
            Published::Card(c) => cards.push(c),
            _ => {}
        }
    }
    assert!(saw);
    // Each offer got the host's card at once and then the screen-pop plugin's.
    for agent in [&first_agent, &second_agent] {
        let mine: Vec<_> = cards.iter().filter(|c| &c.agent == agent).collect();
        assert!(mine[0].provisional, "{mine:?}");
        assert!(
            mine.iter().any(|c| !c.provisional
                && c.plugin.as_deref() == Some("crm-screen-pop")
                && c.plugin_version.as_ref().is_some_and(|v| v.len() == 64)),
            "{mine:?}"
        );
    }
}
