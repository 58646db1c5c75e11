//! Hot reload: pinned versions, rejected loads, automatic rollback, swaps
//! under load, and reload on a file change.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ctihost::plugins::bindings::RouteDecision;
use ctihost::plugins::{HookCall, HookOutput, Invocation, LoadError, Trigger};
use support::*;

fn queue_of(inv: &Invocation) -> String {
    match &inv.output {
        HookOutput::Route(RouteDecision::Queue(q)) => q.queue.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

fn router_bytes(tag: &str) -> Vec<u8> {
    variant_of(&std::fs::read(wasm("test_router")).unwrap(), tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_pinned_rejected_and_rolled_back() {
    let t = TestHost::new();
    // v1: slow (busy for 1.5 s), answers queue "v1".
    let m = t.write_plugin("r", "router", &router_bytes("v1"), "[limits]\ndeadline_ms = 10000\n[config]\nmode = \"slow\"\nslow_ms = \"1500\"\nqueue = \"v1\"\n");
    let v1 = t.load(&m, Trigger::Startup).await.unwrap();
    // Compile v2 ahead so its load inside the in-flight window is quick.
    let v2_bytes = router_bytes("v2");
    t.host.compile(v2_bytes.clone()).await.unwrap();

    let host = t.host.clone();
    let in_flight = tokio::spawn(async move {
        host.invoke(
            "r",
            HookCall::Route {
                call: call("+1", "95588"),
            },
        )
        .await
        .unwrap()
    });
    let started = wait_for(Duration::from_secs(5), || {
        t.host
            .list()
            .iter()
            .find(|p| p.name == "r")
            .and_then(|p| p.counters.get("slow_started").copied())
    })
    .await;
    assert_eq!(started, Some(1), "v1 invocation is running");

    t.write_plugin(
        "r",
        "router",
        &v2_bytes,
        "[config]\nmode = \"ok\"\nqueue = \"v2\"\n",
    );
    let v2 = t.load(&m, Trigger::Admin).await.unwrap();
    assert_eq!(v2.previous.as_deref(), Some(v1.version.as_str()));
    let fresh = t.route("r").await;
    assert_eq!(
        (queue_of(&fresh), fresh.version.as_str()),
        ("v2".to_string(), v2.version.as_str())
    );
    assert!(
        !in_flight.is_finished(),
        "v1 call still in flight while v2 serves"
    );
    let old = in_flight.await.unwrap();
    assert!(old.failure.is_none(), "{:?}", old.failure);
    assert_eq!(
        (queue_of(&old), old.version.as_str()),
        ("v1".to_string(), v1.version.as_str())
    );

    // v3, three broken ways: each rejected with a clear message; v2 keeps serving.
    std::fs::write(t.plugin_dir().join("r.wasm"), b"this is not wasm").unwrap();
    let err = t.load(&m, Trigger::Admin).await.unwrap_err();
    assert!(matches!(err, LoadError::NotAComponent(_)), "{err}");
    assert!(err.to_string().contains("magic bytes"), "{err}");

    std::fs::copy(wasm("crm_screen_pop"), t.plugin_dir().join("r.wasm")).unwrap();
    let err = t.load(&m, Trigger::Admin).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not implement world `router`"),
        "{err}"
    );
    assert!(
        err.to_string().contains("rank-agents") || err.to_string().contains("route"),
        "{err}"
    );

    t.write_plugin(
        "r",
        "router",
        &router_bytes("v3"),
        "[config]\nmode = \"ok\"\nfail_selftest = \"true\"\n",
    );
    let err = t.load(&m, Trigger::Admin).await.unwrap_err();
    assert!(
        err.to_string().contains("self-test failed on hook route"),
        "{err}"
    );
    assert!(
        err.to_string().contains("fails its self-test"),
        "guest's panic message is shown: {err}"
    );

    let still = t.route("r").await;
    assert_eq!(
        (queue_of(&still), still.version.as_str()),
        ("v2".to_string(), v2.version.as_str())
    );

    // v4 passes its self-test but traps on every real call: after 3 failures in
    // a row it is rolled back to v2 on its own.
    t.write_plugin(
        "r",
        "router",
        &router_bytes("v4"),
        "[limits]\nrollback_after_failures = 3\n[config]\nmode = \"trap\"\n",
    );
    let v4 = t.load(&m, Trigger::Admin).await.unwrap();
    for _ in 0..3 {
        let inv = t.route("r").await;
        assert_eq!(inv.version, v4.version);
        assert!(inv.failure.is_some());
        assert_eq!(queue_of(&inv), "general", "built-in fallback");
    }
    let after = t.route("r").await;
    assert!(after.failure.is_none());
    assert_eq!(
        (queue_of(&after), after.version.as_str()),
        ("v2".to_string(), v2.version.as_str())
    );

    // A manual rollback never brings back v4, which was rolled back for its
    // failures: it walks back to v1, the last earlier version that served
    // well, and can itself be undone.
    let rb = t.host.rollback("r", Trigger::Admin).unwrap();
    assert_eq!(rb.version, v1.version);
    t.host.rollback("r", Trigger::Admin).unwrap();
    assert_eq!(t.route("r").await.version, v2.version);

    // The history in sled tells the story.
    let h = t.host.history_of(Some("r"), 100).unwrap();
    let outcomes: Vec<(&str, &str)> = h
        .iter()
        .map(|e| (e.trigger.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("startup", "loaded"),
            ("admin", "loaded"),
            ("admin", "rejected"),
            ("admin", "rejected"),
            ("admin", "rejected"),
            ("admin", "loaded"),
            ("auto-rollback", "rolled-back"),
            ("admin", "rolled-back"),
            ("admin", "rolled-back"),
        ]
    );
    assert!(h[2].message.contains("magic bytes"));
    assert!(h[6].version.starts_with(&v2.version));

    // A plugin that never loaded still has its rejection filed under its name.
    let newbie = t.write_plugin("newbie", "router", b"not wasm", "");
    t.load(&newbie, Trigger::Admin).await.unwrap_err();
    let h = t.host.history_of(Some("newbie"), 10).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].outcome, "rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_swaps_under_steady_load_fail_nothing() {
    let t = TestHost::new();
    let variants: Vec<Vec<u8>> = (0..10)
        .map(|i| router_bytes(&format!("swap-{i}")))
        .collect();
    for v in &variants {
        t.host.compile(v.clone()).await.unwrap();
    }
    let m = t.write_plugin(
        "r",
        "router",
        &router_bytes("base"),
        "[config]\nmode = \"ok\"\nqueue = \"base\"\n",
    );
    t.load(&m, Trigger::Startup).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (host, stop, done, failed) =
            (t.host.clone(), stop.clone(), done.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let inv = host.invoke("r", HookCall::Route { call: call(&format!("+86{w}"), "95588") }).await.unwrap();
                let ok = inv.failure.is_none() && matches!(&inv.output, HookOutput::Route(RouteDecision::Queue(q)) if q.queue.starts_with("base") || q.queue.starts_with("swap"));
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut versions = std::collections::BTreeSet::new();
    for (i, v) in variants.iter().enumerate() {
        let before = done.load(Ordering::Relaxed);
        wait_for(Duration::from_secs(5), || {
            (done.load(Ordering::Relaxed) > before + 20).then_some(())
        })
        .await
        .unwrap();
        t.write_plugin(
            "r",
            "router",
            v,
            &format!("[config]\nmode = \"ok\"\nqueue = \"swap-{i}\"\n"),
        );
        let r = t.load(&m, Trigger::Admin).await.unwrap();
        assert!(r.changed);
        versions.insert(r.version);
    }
    let before = done.load(Ordering::Relaxed);
    wait_for(Duration::from_secs(5), || {
        (done.load(Ordering::Relaxed) > before + 20).then_some(())
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(versions.len(), 10);
    assert!(
        done.load(Ordering::Relaxed) > 200,
        "steady stream ran: {}",
        done.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no invocation failed during 10 swaps"
    );
    assert_eq!(t.host.list()[0].failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_change_in_plugin_dir_reloads() {
    let t = TestHost::new();
    let m = t.write_plugin(
        "r",
        "router",
        &router_bytes("w1"),
        "[config]\nmode = \"ok\"\nqueue = \"w1\"\n",
    );
    let v1 = t.load(&m, Trigger::Startup).await.unwrap();
    let _watch = ctihost::plugins::watcher::watch_dir(
        t.host.clone(),
        t.plugin_dir(),
        Duration::from_millis(100),
    )
    .unwrap();

    // A broken write is rejected and w1 keeps serving ...
    std::fs::write(t.plugin_dir().join("r.wasm"), b"\0asm garbage").unwrap();
    let rejected = wait_for(Duration::from_secs(10), || {
        t.host
            .history_of(Some("r"), 10)
            .unwrap()
            .iter()
            .find(|e| e.trigger == "watch" && e.outcome == "rejected")
            .cloned()
    })
    .await;
    assert!(rejected.is_some(), "the watcher tried the broken file");
    assert_eq!(queue_of(&t.route("r").await), "w1");

    // ... and a good one is picked up.
    t.write_plugin(
        "r",
        "router",
        &router_bytes("w2"),
        "[config]\nmode = \"ok\"\nqueue = \"w2\"\n",
    );
    let new = wait_for(Duration::from_secs(10), || {
        t.host
            .current_version("r")
            .filter(|v| !v.starts_with(&v1.version))
    })
    .await;
    assert!(new.is_some(), "new version serving after the file change");
    let inv = t.route("r").await;
    assert_eq!(queue_of(&inv), "w2");
    let h = t.host.history_of(Some("r"), 10).unwrap();
    assert_eq!(
        h.last().map(|e| (e.trigger.as_str(), e.outcome.as_str())),
        Some(("watch", "loaded"))
    );
}

/// Rows of the version history of `name` (oldest first).
fn history(t: &TestHost, name: &str) -> Vec<(String, String)> {
    t.host
        .history_of(Some(name), 1000)
        .unwrap()
        .into_iter()
        .map(|e| (e.trigger, e.outcome))
        .collect()
}

/// Let the watcher run for many debounce periods, then prove it is still
/// processing changes: a new plugin `probe-N` dropped in is loaded. A watcher
/// that reloads by itself would have added rows by then.
async fn quiet_then_probe(t: &TestHost, n: u32) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let name = format!("probe-{n}");
    t.write_plugin(
        &name,
        "router",
        &router_bytes(&name),
        "[config]\nmode = \"ok\"\nqueue = \"probe\"\n",
    );
    let loaded = wait_for(Duration::from_secs(10), || t.host.current_version(&name)).await;
    assert!(loaded.is_some(), "the watcher picked up {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_copy_into_the_watched_directory_is_one_load_and_a_bad_file_one_rejection() {
    let t = TestHost::new();
    let _watch = ctihost::plugins::watcher::watch_dir(
        t.host.clone(),
        t.plugin_dir(),
        Duration::from_millis(100),
    )
    .unwrap();
    // One copy of a component and its manifest into the directory.
    t.write_plugin(
        "r",
        "router",
        &router_bytes("c1"),
        "[config]\nmode = \"ok\"\nqueue = \"c1\"\n",
    );
    let v = wait_for(Duration::from_secs(10), || t.host.current_version("r")).await;
    assert!(v.is_some(), "loaded from the directory");
    quiet_then_probe(&t, 1).await;
    assert_eq!(
        history(&t, "r"),
        [("watch".to_owned(), "loaded".to_owned())],
        "exactly one load for one copy"
    );

    // A broken component left there is tried once, not at every event.
    std::fs::write(t.plugin_dir().join("r.wasm"), b"\0asm broken").unwrap();
    let rejected = wait_for(Duration::from_secs(10), || {
        history(&t, "r")
            .iter()
            .any(|(_, o)| o == "rejected")
            .then_some(())
    })
    .await;
    assert!(rejected.is_some());
    quiet_then_probe(&t, 2).await;
    let rows = history(&t, "r");
    assert_eq!(
        rows.iter().filter(|(_, o)| o == "rejected").count(),
        1,
        "{rows:?}"
    );
    assert_eq!(
        queue_of(&t.route("r").await),
        "c1",
        "the good version serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_manifest_unloads_it_or_brings_back_the_embedded_version() {
    let t = TestHost::new();
    let stock = ctihost::stock_plugins::STOCK
        .iter()
        .find(|p| p.name == "skills-router")
        .unwrap();
    t.host.load(stock.source(), Trigger::Startup).await.unwrap();
    let embedded = t.host.current_version("skills-router").unwrap();
    let _watch = ctihost::plugins::watcher::watch_dir(
        t.host.clone(),
        t.plugin_dir(),
        Duration::from_millis(100),
    )
    .unwrap();
    let own = t.write_plugin(
        "skills-router",
        "router",
        &router_bytes("bank"),
        "[config]\nmode = \"ok\"\nqueue = \"bank\"\n",
    );
    let bank = wait_for(Duration::from_secs(10), || {
        t.host
            .current_version("skills-router")
            .filter(|v| *v != embedded)
    })
    .await;
    assert!(bank.is_some(), "the bank's router overrides the stock one");
    let other = t.write_plugin(
        "extra",
        "router",
        &router_bytes("extra"),
        "[config]\nmode = \"ok\"\nqueue = \"x\"\n",
    );
    assert!(
        wait_for(Duration::from_secs(10), || t.host.current_version("extra"))
            .await
            .is_some()
    );

    std::fs::remove_file(&own).unwrap();
    let back = wait_for(Duration::from_secs(10), || {
        t.host
            .current_version("skills-router")
            .filter(|v| *v == embedded)
    })
    .await;
    assert!(back.is_some(), "the embedded router serves again");
    std::fs::remove_file(&other).unwrap();
    let gone = wait_for(Duration::from_secs(10), || {
        t.host.current_version("extra").is_none().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "a plugin with no embedded version is unloaded"
    );
    assert_eq!(
        history(&t, "extra").last().map(|(_, o)| o.as_str()),
        Some("unloaded")
    );
}
