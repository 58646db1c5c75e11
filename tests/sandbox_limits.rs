//! Hostile plugins are contained: each failure stays within its deadline or
//! limit, the fallback answers, the failure is counted, and the next call on a
//! good plugin succeeds.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use ctihost::plugins::bindings::RouteDecision;
use ctihost::plugins::{FailureKind, HookCall, HookOutput, PluginSource, Trigger};
use support::*;

async fn hostile(t: &TestHost, mode: &str, limits: &str) -> String {
    let name = format!("hostile-{mode}");
    let extra = format!(
        "{limits}\n[fallback.route.Queue]\nqueue = \"safe-fallback\"\npriority = 0\nskills = []\n[config]\nmode = \"{mode}\"\n"
    );
    let m = t.write_plugin(
        &name,
        "router",
        &std::fs::read(wasm("test_router")).unwrap(),
        &extra,
    );
    t.host
        .load(PluginSource::Manifest(m), Trigger::Startup)
        .await
        .unwrap();
    name
}

fn failures(t: &TestHost, name: &str) -> u64 {
    t.host
        .list()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
        .failures
}

async fn expect_contained(t: &TestHost, name: &str, kind: FailureKind, within: Duration) -> String {
    let started = Instant::now();
    let inv = t
        .host
        .invoke(
            name,
            HookCall::Route {
                call: call("+8613700000001", "95588"),
            },
        )
        .await
        .unwrap();
    let took = started.elapsed();
    let failure = inv
        .failure
        .unwrap_or_else(|| panic!("{name}: expected a failure, got {:?}", inv.output));
    assert_eq!(failure.kind, kind, "{name}: {}", failure.message);
    assert!(
        took < within,
        "{name}: contained in {took:?}, limit {within:?}"
    );
    assert!(
        matches!(&inv.output, HookOutput::Route(RouteDecision::Queue(q)) if q.queue == "safe-fallback"),
        "{name}: fallback used"
    );
    assert_eq!(failures(t, name), 1, "{name}: failure counted");
    failure.message
}

async fn good_call_succeeds(t: &TestHost) {
    let inv = t
        .host
        .invoke(
            "good",
            HookCall::Route {
                call: call("+8613700000002", "95588"),
            },
        )
        .await
        .unwrap();
    assert!(inv.failure.is_none(), "{:?}", inv.failure);
    assert!(
        matches!(inv.output, HookOutput::Route(RouteDecision::Queue(q)) if q.queue == "general")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_are_contained() {
    let t = TestHost::new();
    let good = t.write_plugin(
        "good",
        "router",
        &std::fs::read(wasm("test_router")).unwrap(),
        "[config]\nmode = \"ok\"\n",
    );
    t.host
        .load(PluginSource::Manifest(good), Trigger::Startup)
        .await
        .unwrap();

    // Infinite loop: stopped at the 50 ms deadline (plus a few epoch ticks).
    let n = hostile(&t, "loop", "[limits]\ndeadline_ms = 50").await;
    let msg = expect_contained(&t, &n, FailureKind::Deadline, Duration::from_millis(500)).await;
    assert!(msg.contains("50 ms"), "{msg}");
    good_call_succeeds(&t).await;

    // Memory bomb: stopped at 16 MiB.
    let n = hostile(
        &t,
        "memory-bomb",
        "[limits]\nmemory_mb = 16\ndeadline_ms = 2000",
    )
    .await;
    let msg = expect_contained(&t, &n, FailureKind::MemoryLimit, Duration::from_secs(2)).await;
    assert!(msg.contains("16777216"), "{msg}");
    good_call_succeeds(&t).await;

    // Panic: a trap, reported with the guest's message.
    let n = hostile(&t, "trap", "").await;
    let msg = expect_contained(&t, &n, FailureKind::Trap, Duration::from_secs(1)).await;
    assert!(msg.contains("unreachable") || msg.contains("trap"), "{msg}");
    good_call_succeeds(&t).await;

    // Huge output (8 MiB forward target): refused by the output cap.
    let n = hostile(
        &t,
        "huge-output",
        "[limits]\nmemory_mb = 64\nmax_output_kb = 64\ndeadline_ms = 2000",
    )
    .await;
    let msg = expect_contained(&t, &n, FailureKind::BadOutput, Duration::from_secs(2)).await;
    assert!(msg.contains("exceeds the 65536-byte cap"), "{msg}");
    good_call_succeeds(&t).await;

    // Reading a file: no directory is open to the sandbox, so the read fails
    // (the plugin then panics) and nothing leaks.
    let n = hostile(&t, "read-file", "").await;
    let msg = expect_contained(&t, &n, FailureKind::Trap, Duration::from_secs(1)).await;
    assert!(!msg.contains("leaked"), "{msg}");
    good_call_succeeds(&t).await;

    // A decision that is not a decision: reject with 200.
    let n = hostile(&t, "bad-decision", "").await;
    let msg = expect_contained(&t, &n, FailureKind::BadOutput, Duration::from_secs(1)).await;
    assert!(msg.contains("reject code 200"), "{msg}");
    good_call_succeeds(&t).await;

    // A chatty plugin: output beyond the cap is dropped, the call still succeeds.
    let n = hostile(&t, "print", "[limits]\nmax_stdio_bytes = 64").await;
    let inv = t
        .host
        .invoke(
            &n,
            HookCall::Route {
                call: call("+1", "95588"),
            },
        )
        .await
        .unwrap();
    assert!(inv.failure.is_none(), "{:?}", inv.failure);

    // The environment is empty: the plugin sees no variable of the host.
    let n = hostile(&t, "env", "").await;
    let inv = t
        .host
        .invoke(
            &n,
            HookCall::Route {
                call: call("+1", "95588"),
            },
        )
        .await
        .unwrap();
    assert!(inv.failure.is_none());
    assert!(
        matches!(inv.output, HookOutput::Route(RouteDecision::Queue(_))),
        "env leaked: {:?}",
        inv.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_reuse_is_bounded_and_never_after_a_trap() {
    let t = TestHost::new();
    let m = t.write_plugin(
        "reuse",
        "router",
        &std::fs::read(wasm("test_router")).unwrap(),
        "[limits]\ninstance_reuse = 3\npool_size = 1\n[config]\nmode = \"static-count\"\ntrap_at = \"2\"\n",
    );
    t.host
        .load(PluginSource::Manifest(m), Trigger::Startup)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..6 {
        let inv = t
            .host
            .invoke(
                "reuse",
                HookCall::Route {
                    call: call("+1", "95588"),
                },
            )
            .await
            .unwrap();
        seen.push(match (&inv.failure, &inv.output) {
            (Some(_), _) => "trap".to_string(),
            (None, HookOutput::Route(RouteDecision::Queue(q))) => q.queue.clone(),
            other => panic!("{other:?}"),
        });
    }
    // Call 2 traps inside the reused instance; the next call gets a fresh
    // instance (counter back at 1), which then serves 3 calls in all.
    assert_eq!(seen, ["n-1", "trap", "n-1", "trap", "n-1", "trap"]);

    let m = t.write_plugin(
        "reuse2",
        "router",
        &std::fs::read(wasm("test_router")).unwrap(),
        "[limits]\ninstance_reuse = 3\npool_size = 1\n[config]\nmode = \"static-count\"\n",
    );
    t.host
        .load(PluginSource::Manifest(m), Trigger::Startup)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..7 {
        let inv = t
            .host
            .invoke(
                "reuse2",
                HookCall::Route {
                    call: call("+1", "95588"),
                },
            )
            .await
            .unwrap();
        if let HookOutput::Route(RouteDecision::Queue(q)) = inv.output {
            seen.push(q.queue);
        }
    }
    assert_eq!(seen, ["n-1", "n-2", "n-3", "n-1", "n-2", "n-3", "n-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_instances_share_nothing_but_the_kv_store() {
    let t = TestHost::new();
    let m = t.write_plugin(
        "fresh",
        "router",
        &std::fs::read(wasm("test_router")).unwrap(),
        "[config]\nmode = \"static-count\"\n",
    );
    t.host
        .load(PluginSource::Manifest(m), Trigger::Startup)
        .await
        .unwrap();
    for _ in 0..3 {
        let inv = t
            .host
            .invoke(
                "fresh",
                HookCall::Route {
                    call: call("+1", "95588"),
                },
            )
            .await
            .unwrap();
        assert!(
            matches!(inv.output, HookOutput::Route(RouteDecision::Queue(q)) if q.queue == "n-1")
        );
    }
    let m = t.write_plugin(
        "kv",
        "router",
        &std::fs::read(wasm("test_router")).unwrap(),
        "[config]\nmode = \"kv\"\n",
    );
    t.host
        .load(PluginSource::Manifest(m), Trigger::Startup)
        .await
        .unwrap();
    for i in 1..=3 {
        let inv = t
            .host
            .invoke(
                "kv",
                HookCall::Route {
                    call: call("+1", "95588"),
                },
            )
            .await
            .unwrap();
        assert!(
            matches!(&inv.output, HookOutput::Route(RouteDecision::Queue(q)) if q.queue == format!("count-{i}")),
            "{:?}",
            inv.output
        );
    }
    // Another plugin's namespace is its own.
    let other = t.host.store().plugin_kv("fresh").unwrap();
    assert!(other.get("count").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_artifacts_are_cached_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(wasm("skills_router")).unwrap();
    let open = || {
        ctihost::plugins::PluginHost::new(
            ctihost::plugins::HostSettings {
                engine: Default::default(),
                cache_dir: Some(dir.path().join("artifacts")),
                crm_connector: None,
            },
            ctihost::store::Store::temporary().unwrap(),
        )
        .unwrap()
    };
    let first = open().compile(bytes.clone()).await.unwrap();
    assert!(!first.cached);
    let second = open().compile(bytes).await.unwrap();
    assert!(second.cached, "a restart loads the cached artifact");
    assert!(
        second.millis < first.millis,
        "cached {} ms vs compile {} ms",
        second.millis,
        first.millis
    );
}
