//! Hostile plugins are contained: each failure stays within its deadline or
//! limit, the fallback answers, the failure is counted, and the next call on a
//! good plugin succeeds.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use ctihost::plugins::bindings::RouteDecision;
use ctihost::plugins::{FailureKind, HookOutput};
use support::*;

async fn hostile(t: &TestHost, mode: &str, limits: &str) -> String {
    let name = format!("hostile-{mode}");
    let extra = format!(
        "{limits}\n[fallback.route.Queue]\nqueue = \"safe-fallback\"\npriority = 0\nskills = []\n[config]\nmode = \"{mode}\"\n"
    );
    t.load_test_router(&name, &extra).await;
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
    let inv = t.route(name).await;
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
    assert_eq!(outcome(&t.route("good").await), "general");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_are_contained() {
    let t = TestHost::new();
    t.load_test_router("good", "[config]\nmode = \"ok\"\n")
        .await;

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
    assert_eq!(outcome(&t.route(&n).await), "general");

    // The environment is empty: the plugin sees no variable of the host
    // (it would forward to "leaked-env:NAME" otherwise).
    let n = hostile(&t, "env", "").await;
    assert_eq!(outcome(&t.route(&n).await), "general");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_reuse_is_bounded_and_never_after_a_trap() {
    let t = TestHost::new();
    let reuse = "[limits]\ninstance_reuse = 3\npool_size = 1\n[config]\nmode = \"static-count\"\n";
    t.load_test_router("reuse", &format!("{reuse}trap_at = \"2\"\n"))
        .await;
    t.load_test_router("reuse2", reuse).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(outcome(&t.route("reuse").await));
    }
    // Call 2 traps inside the reused instance; the next call gets a fresh
    // instance (counter back at 1), which then serves 3 calls in all.
    assert_eq!(seen, ["n-1", "trap", "n-1", "trap", "n-1", "trap"]);
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(outcome(&t.route("reuse2").await));
    }
    assert_eq!(seen, ["n-1", "n-2", "n-3", "n-1", "n-2", "n-3", "n-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_instances_share_nothing_but_the_kv_store() {
    let t = TestHost::new();
    t.load_test_router("fresh", "[config]\nmode = \"static-count\"\n")
        .await;
    t.load_test_router("kv", "[config]\nmode = \"kv\"\n").await;
    for _ in 0..3 {
        assert_eq!(outcome(&t.route("fresh").await), "n-1");
    }
    for i in 1..=3 {
        assert_eq!(outcome(&t.route("kv").await), format!("count-{i}"));
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
