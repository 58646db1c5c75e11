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
    let other = t.store.plugin_kv("fresh").unwrap();
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

/// More calls at once than the host has instance slots (`[plugins]
/// max_instances`): they wait for a slot within their deadline; the ones
/// that find none in time get the fallback, counted as the host's
/// shortfall, and the plugin is not rolled back for it (a burst of calls
/// after a stall once rolled a good router back to the stock one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_instance_pool_waits_and_is_not_the_plugins_fault() {
    let t = TestHost::with_max_instances(8);
    let burst = |name: &'static str| {
        let calls: Vec<_> = (0..24)
            .map(|_| {
                let host = t.host.clone();
                tokio::spawn(async move {
                    host.invoke(
                        name,
                        ctihost::plugins::HookCall::Route {
                            call: support::call("+8613700000001", "95588"),
                        },
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        async move {
            let (mut served, mut full) = (0u64, 0u64);
            for c in calls {
                let inv = c.await.unwrap();
                match inv.failure {
                    None => served += 1,
                    Some(f) => {
                        // No slot before the deadline (HostFull), or one
                        // found too late to finish (Starved): the host's.
                        assert!(
                            matches!(f.kind, FailureKind::HostFull | FailureKind::Starved),
                            "{:?}: {}",
                            f.kind,
                            f.message
                        );
                        assert!(!f.kind.is_plugins_fault());
                        assert!(
                            matches!(&inv.output, HookOutput::Route(RouteDecision::Queue(q)) if q.queue == "safe-fallback"),
                            "fallback used"
                        );
                        full += 1;
                    }
                }
            }
            (served, full)
        }
    };
    let fallback = "[fallback.route.Queue]\nqueue = \"safe-fallback\"\npriority = 0\nskills = []\n";
    // A deadline long enough for three rounds of eight: every call is served.
    t.load_test_router(
        "patient",
        &format!("[limits]\ndeadline_ms = 20000\n{fallback}[config]\nmode = \"slow\"\nslow_ms = \"100\"\n"),
    )
    .await;
    let (served, full) = burst("patient").await;
    assert_eq!((served, full), (24, 0), "each waited for a slot");
    // A deadline shorter than three rounds: the third finds no slot in
    // time, the second one too late to finish (150 ms of wall-clock work).
    t.load_test_router(
        "hurried",
        &format!("[limits]\ndeadline_ms = 300\nrollback_after_failures = 2\n{fallback}[config]\nmode = \"slow\"\nslow_ms = \"150\"\n"),
    )
    .await;
    let before = t
        .host
        .list()
        .into_iter()
        .find(|p| p.name == "hurried")
        .unwrap()
        .version;
    let (served, full) = burst("hurried").await;
    assert!(
        full > 0,
        "24 calls of 150 ms on 8 slots within 300 ms: the third round found no slot in time"
    );
    assert!(served > 0, "the first ones were served");
    let now = t
        .host
        .list()
        .into_iter()
        .find(|p| p.name == "hurried")
        .unwrap();
    assert_eq!(now.failures, 0, "not counted as the plugin's failures");
    assert_eq!(now.version, before, "not rolled back");
    assert_eq!(now.starved, full, "counted as the host's shortfall");
}
