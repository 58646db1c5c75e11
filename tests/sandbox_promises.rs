//! The sandbox's promises, tried as a careless or hostile plugin author
//! would: a plugin's output is validated data (nothing it returns reaches
//! SIP, a prompt path or a page unchecked, and naming what the center lacks
//! is a failure), rollback sees every hook's failures and only the plugin's
//! own, a rolled-back version stays off, and plugin state is bounded.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ctihost::plugins::bindings::{AgentCandidate, RouteDecision};
use ctihost::plugins::{DecisionScope, FailureKind, HookCall, HookOutput, Invocation, Trigger};
use support::*;

/// The center of these tests: queues general and vip, agent 1001 with the
/// cards skill, the embedded prompts' main-menu.
struct Center;

impl DecisionScope for Center {
    fn has_queue(&self, n: &str) -> bool {
        n == "general" || n == "vip"
    }
    fn has_agent(&self, id: &str) -> bool {
        id == "1001"
    }
    fn has_prompt(&self, n: &str) -> bool {
        n == "main-menu" || n == "welcome"
    }
    fn has_skill(&self, s: &str) -> bool {
        s == "cards"
    }
}

fn scoped() -> TestHost {
    let t = TestHost::new();
    t.host.set_scope(Arc::new(Center));
    t
}

fn router(tag: &str) -> Vec<u8> {
    variant_of(&std::fs::read(wasm("test_router")).unwrap(), tag)
}

const FALLBACK: &str = "[fallback.route.Queue]\nqueue = \"general\"\npriority = 0\nskills = []\n";

fn fell_back(inv: &Invocation) -> bool {
    matches!(&inv.output, HookOutput::Route(RouteDecision::Queue(q)) if q.queue == "general")
}

/// Load the test router as `name` with `config` (TOML lines of `[config]`).
async fn load(t: &TestHost, name: &str, tag: &str, limits: &str, config: &str) {
    let m = t.write_plugin(
        name,
        "router",
        &router(tag),
        &format!("[limits]\n{limits}\n{FALLBACK}[config]\n{config}\n"),
    );
    t.load(&m, Trigger::Startup).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_router_returns_is_checked_before_the_host_uses_it() {
    let t = scoped();
    let cases: &[(&str, &str, &str)] = &[
        (
            "reject-inject",
            "mode = \"reject\"\ncode = \"486\"\nreason = \"Busy Here\\r\\nX-Injected: from-plugin\"",
            "control character",
        ),
        (
            "forward-inject",
            "mode = \"forward\"\ntarget = \"sip:x@h>\\r\\nRecord-Route: <sip:attacker@203.0.113.9\"",
            "forward target",
        ),
        (
            "forward-contact",
            "mode = \"forward\"\ntarget = \"<sip:attacker@203.0.113.9>\"",
            "forward target",
        ),
        (
            "prompt-inject",
            "mode = \"ivr\"\nprompt = \"main-menu\\r\\nX-Injected: 1\"",
            "prompt name",
        ),
        (
            "prompt-path",
            "mode = \"ivr\"\nprompt = \"../../etc/passwd\"",
            "prompt name",
        ),
        (
            "prompt-missing",
            "mode = \"ivr\"\nprompt = \"no-such-prompt\"",
            "does not exist",
        ),
        (
            "no-digits",
            "mode = \"ivr\"\ntimeout_ms = \"0\"",
            "cannot enter digits",
        ),
        (
            "queue-missing",
            "mode = \"live-queue\"\nlive_queue = \"genral\"",
            "\"genral\" does not exist",
        ),
        (
            "agent-missing",
            "mode = \"agent\"\nagent = \"9999\"",
            "\"9999\" does not exist",
        ),
    ];
    for (i, (name, config, why)) in cases.iter().enumerate() {
        load(
            &t,
            name,
            &format!("c{i}"),
            "rollback_after_failures = 100",
            config,
        )
        .await;
        let inv = t.route(name).await;
        let f = inv
            .failure
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: accepted {:?}", inv.output));
        assert_eq!(f.kind, FailureKind::BadOutput, "{name}: {}", f.message);
        assert!(f.message.contains(why), "{name}: {}", f.message);
        assert!(fell_back(&inv), "{name}: the fallback queue serves");
        let status = t.host.list().into_iter().find(|p| p.name == *name).unwrap();
        assert_eq!(
            status.failures, 1,
            "{name}: counted as the plugin's failure"
        );
    }
    // What the center has passes.
    load(
        &t,
        "fine",
        "fine",
        "",
        "mode = \"ivr\"\nprompt = \"main-menu\"",
    )
    .await;
    assert!(t.route("fine").await.failure.is_none());
    load(
        &t,
        "fine-agent",
        "fine-agent",
        "",
        "mode = \"agent\"\nagent = \"1001\"",
    )
    .await;
    assert!(t.route("fine-agent").await.failure.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_test_naming_what_the_center_lacks_is_rejected() {
    let t = scoped();
    // The test router answers its self-test with its configured queue.
    let m = t.write_plugin(
        "r",
        "router",
        &router("st"),
        "[config]\nmode = \"ok\"\nqueue = \"no-such-queue\"\n",
    );
    let e = t.load(&m, Trigger::Startup).await.unwrap_err().to_string();
    assert!(
        e.contains("self-test failed on hook route") && e.contains("no-such-queue"),
        "{e}"
    );
}

/// Calls of `route` and of `rank-agents`, alternating.
async fn rank(t: &TestHost, name: &str) -> Invocation {
    t.host
        .invoke(
            name,
            HookCall::RankAgents {
                call: call("+8613700000001", "95588"),
                queue: "general".into(),
                candidates: vec![AgentCandidate {
                    id: "1001".into(),
                    skills: vec![],
                    idle_secs: 5,
                    calls_today: 0,
                }],
            },
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_always_fails_is_rolled_back_even_while_rank_agents_succeeds() {
    let t = scoped();
    load(
        &t,
        "r",
        "good",
        "rollback_after_failures = 3",
        "mode = \"ok\"",
    )
    .await;
    let good = t.host.current_version("r").unwrap();
    assert!(
        t.route("r").await.failure.is_none(),
        "the good version serves"
    );
    load(
        &t,
        "r",
        "bad",
        "rollback_after_failures = 3",
        "mode = \"trap\"",
    )
    .await;
    for _ in 0..3 {
        assert!(t.route("r").await.failure.is_some());
        assert!(rank(&t, "r").await.failure.is_none(), "rank-agents works");
    }
    assert_eq!(t.host.current_version("r").unwrap(), good, "rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_only_bad_change_is_a_version_and_is_rolled_back() {
    let t = scoped();
    load(
        &t,
        "r",
        "same",
        "rollback_after_failures = 2",
        "mode = \"ok\"",
    )
    .await;
    let good = t.host.current_version("r").unwrap();
    assert!(t.route("r").await.failure.is_none());
    // Same component bytes, a config that makes it trap.
    load(
        &t,
        "r",
        "same",
        "rollback_after_failures = 2",
        "mode = \"trap\"",
    )
    .await;
    let bad = t.host.current_version("r").unwrap();
    assert_ne!(bad, good, "a manifest change is a version of its own");
    for _ in 0..2 {
        assert!(t.route("r").await.failure.is_some());
    }
    assert_eq!(t.host.current_version("r").unwrap(), good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_two_bad_deploys_rollback_returns_the_last_version_that_served_well() {
    let t = scoped();
    load(
        &t,
        "r",
        "v1",
        "rollback_after_failures = 100",
        "mode = \"ok\"",
    )
    .await;
    let v1 = t.host.current_version("r").unwrap();
    assert!(t.route("r").await.failure.is_none());
    load(
        &t,
        "r",
        "v2",
        "rollback_after_failures = 100",
        "mode = \"trap\"",
    )
    .await;
    assert!(t.route("r").await.failure.is_some());
    load(
        &t,
        "r",
        "v3",
        "rollback_after_failures = 100",
        "mode = \"trap\"",
    )
    .await;
    assert!(t.route("r").await.failure.is_some());
    let r = t.host.rollback("r", Trigger::Admin).unwrap();
    assert!(v1.starts_with(&r.version), "{} is v1", r.version);
    assert!(t.route("r").await.failure.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_file_left_in_the_watched_directory_stays_off() {
    let t = scoped();
    load(
        &t,
        "r",
        "good",
        "rollback_after_failures = 3",
        "mode = \"ok\"",
    )
    .await;
    let good = t.host.current_version("r").unwrap();
    assert!(t.route("r").await.failure.is_none());
    let _watch = ctihost::plugins::watcher::watch_dir(
        t.host.clone(),
        t.plugin_dir(),
        Duration::from_millis(100),
    )
    .unwrap();
    // The bad version arrives through the directory and fails every call.
    let m = t.write_plugin(
        "r",
        "router",
        &router("bad"),
        &format!("[limits]\nrollback_after_failures = 3\n{FALLBACK}[config]\nmode = \"trap\"\n"),
    );
    let bad = wait_for(Duration::from_secs(10), || {
        t.host.current_version("r").filter(|v| *v != good)
    })
    .await
    .expect("the watcher loaded the new file");
    for _ in 0..3 {
        assert!(fell_back(&t.route("r").await));
    }
    assert_eq!(t.host.current_version("r").unwrap(), good, "rolled back");
    // The files stay as they are: the watcher does not bring it back, and a
    // reload of the same files is refused naming why.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.write_plugin(
        "probe",
        "router",
        &router("probe"),
        "[config]\nmode = \"ok\"\n",
    );
    wait_for(Duration::from_secs(10), || t.host.current_version("probe"))
        .await
        .expect("the watcher still works");
    assert_eq!(
        t.host.current_version("r").unwrap(),
        good,
        "stays rolled back"
    );
    let e = t.load(&m, Trigger::Admin).await.unwrap_err().to_string();
    assert!(e.contains("rolled back") && e.contains(&bad[..12]), "{e}");
    for _ in 0..5 {
        assert!(t.route("r").await.failure.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_host_does_not_roll_back_a_healthy_router() {
    let t = scoped();
    // A quick router with a tight deadline, as the stock one is under a
    // saturated host: its deadline misses are the host's doing. 5 ms, not
    // less: a miss is the host's when the guest computed under a quarter
    // of the deadline, and a fresh instance in this unoptimised test build
    // takes a few hundred microseconds of the thread's CPU under the hogs
    // (2 ms left it 500 us and failed now and then in CI).
    load(
        &t,
        "r",
        "healthy",
        "deadline_ms = 5\nrollback_after_failures = 2",
        "mode = \"ok\"",
    )
    .await;
    let healthy = t.host.current_version("r").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::black_box(0u64);
                }
            })
        })
        .collect();
    let mut starved = 0;
    for _round in 0..10 {
        let calls: Vec<_> = (0..100)
            .map(|_| {
                let host = t.host.clone();
                tokio::spawn(async move {
                    host.invoke(
                        "r",
                        HookCall::Route {
                            call: call("+8613700000001", "95588"),
                        },
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        for c in calls {
            let inv = c.await.unwrap();
            if let Some(f) = &inv.failure {
                assert_eq!(f.kind, FailureKind::Starved, "{}", f.message);
                starved += 1;
            }
        }
        if starved > 20 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    assert!(starved > 0, "the host was starved enough to miss deadlines");
    let status = t.host.list().into_iter().find(|p| p.name == "r").unwrap();
    assert_eq!(status.failures, 0, "no failure is the plugin's");
    assert_eq!(status.starved, starved);
    assert_eq!(
        t.host.current_version("r").unwrap(),
        healthy,
        "never rolled back"
    );
    let h = t.host.history_of(Some("r"), 100).unwrap();
    assert!(h.iter().all(|e| e.outcome != "rolled-back"), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_grow_its_key_value_store_past_its_quota() {
    let t = scoped();
    load(
        &t,
        "hog",
        "hog",
        "kv_max_kb = 256\nkv_max_keys = 100",
        "mode = \"kv-hog\"\nkv_chunks = \"16\"",
    )
    .await;
    for _ in 0..4 {
        let inv = t.route("hog").await;
        assert!(
            inv.failure.is_none(),
            "a refused write fails inside the plugin only"
        );
    }
    let s = t.host.list().into_iter().find(|p| p.name == "hog").unwrap();
    assert!(s.kv.bytes <= 256 * 1024, "{:?}", s.kv);
    assert!(s.kv.keys <= 100);
    // 64 writes of 64 KiB asked; the quota holds three of them.
    assert_eq!(s.kv.keys, 3, "{:?}", s.kv);
    assert_eq!(s.kv.refused, 61, "{:?}", s.kv);
    assert_eq!(s.counters.get("kv_refused"), Some(&61));
    let metrics = ctihost::metrics::Metrics::default().render(None, &t.host.list());
    assert!(
        metrics.contains("ctihost_plugin_kv_refused_total{plugin=\"hog\"} 61"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ctihost_plugin_counter{plugin=\"hog\",name=\"kv_refused\"} 61"),
        "plugins' own counters reach /metrics: {metrics}"
    );
}

/// Bad versions deployed through the watched directory of a real center
/// while SIPp calls flow (two a second): no call fails (the fallback
/// serves), each bad version is off within its failure count, and it stays
/// off while its files stay in the directory (CTIHOST_STAYS_OFF_SECS, 20 s
/// by default; 300 for the five minutes the issue asks, see the closing note).
#[test]
fn bad_versions_under_sipp_load_fail_no_call_and_stay_off() {
    use std::process::{Command, Stdio};
    use std::time::Instant;
    use support::server;

    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    let deploy = |tag: &str, config: &str| {
        std::fs::write(plugins.join("r.wasm"), router(tag)).unwrap();
        std::fs::write(
            plugins.join("skills-router.toml"),
            format!(
                "name = \"skills-router\"\nkind = \"router\"\nfile = \"r.wasm\"\n\
                 [limits]\nrollback_after_failures = 3\n{FALLBACK}[config]\n{config}\n"
            ),
        )
        .unwrap();
    };
    deploy("good", "mode = \"ok\"");
    let config = dir.path().join("ctihost.toml");
    let agent = |id: &str| {
        format!(
            "[[agents]]\nid = \"{id}\"\nsip_user = \"{id}\"\npassword = \"pw-{id}\"\nqueues = {{ general = 1 }}\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n\
             [plugins]\ndir = \"plugins.d\"\nwatch = true\ndebounce_ms = 100\n\
             [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = []\ndigest_algorithms = [\"MD5\"]\n\
             [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n\
             [[queues]]\nname = \"general\"\nring_timeout_secs = 10\nmax_wait_secs = 120\nwrap_up_secs = 0\n{}{}",
            agent("1001"),
            agent("1002")
        ),
    )
    .unwrap();
    let s = server::start(&config);
    let sip = s.sip_udp.unwrap().to_string();
    let phones: Vec<_> = ["1001", "1002"]
        .iter()
        .map(|id| {
            support::sipp::agent_phone(
                s.sip_udp.unwrap(),
                id,
                &format!("pw-{id}"),
                600,
                server::free_port(),
            )
        })
        .collect();
    s.wait_registered("t0k", &["1001", "1002"]);
    let stays_off: u64 = std::env::var("CTIHOST_STAYS_OFF_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // Two calls a second for as long as the test runs (bounded).
    let total = (2 * (stays_off + 60)).to_string();
    let caller = support::sipp::Killed(
        Command::new("sipp")
            .args([
                "-sf",
                &root().join("tests/sipp/caller_uac.xml").to_string_lossy(),
            ])
            .args(["-s", "95588", "-d", "300", "-r", "2", "-m", &total])
            .args(["-i", "127.0.0.1", "-p", &server::free_port().to_string()])
            .args(["-nostdin", &sip])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let history = || {
        s.admin_json("/admin/plugins/skills-router/history?limit=1000", "t0k")
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let current = || {
        s.admin_json("/admin/plugins", "t0k")
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "skills-router")
            .unwrap()
            .clone()
    };
    let good = current()["version"].as_str().unwrap().to_owned();
    let bad_versions = [
        ("trap", "trap", "mode = \"trap\""),
        // The same component as the good one, a manifest that makes it trap.
        ("manifest-only", "good", "mode = \"trap\""),
        (
            "header-injection",
            "inject",
            "mode = \"reject\"\ncode = \"486\"\nreason = \"Busy\\r\\nX-Injected: 1\"",
        ),
        (
            "unknown-queue",
            "queue",
            "mode = \"live-queue\"\nlive_queue = \"genral\"",
        ),
        ("no-digits", "ivr", "mode = \"ivr\"\ntimeout_ms = \"0\""),
    ];
    for (what, tag, cfg) in bad_versions {
        let rows_before = history().len();
        deploy(tag, cfg);
        // Loaded by the watcher, then rolled back by the host on its own.
        let until = Instant::now() + Duration::from_secs(30);
        let (loaded, rolled) = loop {
            let h = history();
            let new = &h[rows_before.min(h.len())..];
            let loaded = new
                .iter()
                .find(|e| e["trigger"] == "watch" && e["outcome"] == "loaded");
            let rolled = new
                .iter()
                .find(|e| e["trigger"] == "auto-rollback" && e["outcome"] == "rolled-back");
            if let (Some(l), Some(r)) = (loaded, rolled) {
                break (l.clone(), r.clone());
            }
            assert!(
                Instant::now() < until,
                "{what}: loaded and rolled back within 30 s: {new:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let bad = loaded["version"].as_str().unwrap()[..12].to_owned();
        assert!(
            rolled["version"].as_str().unwrap().starts_with(&good),
            "{what}: back to the good one {good}: {rolled}"
        );
        assert_eq!(current()["version"], good.as_str(), "{what}");
        // The host logs each failure with the version (the serving
        // version's figures in /metrics are the good one's again).
        let failures = s
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("plugin failed; fallback used") && l.contains(&bad))
            .count();
        // Calls already inside the bad version when it was swapped out may
        // fail too (two a second): a few more than the count, never more.
        assert!(
            (3..=5).contains(&failures),
            "{what}: {failures} failures before the rollback"
        );
    }
    // The last bad files stay in the directory: nothing brings them back.
    let rows = history().len();
    let until = Instant::now() + Duration::from_secs(stays_off);
    while Instant::now() < until {
        assert_eq!(
            current()["version"],
            good.as_str(),
            "the good version keeps serving"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        history().len(),
        rows,
        "no load or rollback while the files stay: {:?}",
        &history()[rows..]
    );
    drop(caller);
    // Every call that ended was answered (by the fallback's queue while a
    // bad version served): none failed. Calls cut by stopping SIPp have not
    // ended yet.
    let recs = s
        .admin_json("/admin/cdr?limit=5000", "t0k")
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(recs.len() >= 40, "calls flowed: {}", recs.len());
    let not_answered: Vec<_> = recs
        .iter()
        .filter(|r| r["disposition"] != "answered")
        .collect();
    assert!(not_answered.is_empty(), "{not_answered:?}");
    drop(phones);
}
