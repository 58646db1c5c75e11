//! The `ctihost` binary: offline plugin commands, and `run` with its admin API
//! driven by the CLI's own client commands.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};

use support::*;

fn ctihost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctihost"))
        .args(args)
        .output()
        .unwrap()
}

fn invoke(file: &str, hook: &str, input: &str) -> Output {
    ctihost(&["plugin", "invoke", file, "--hook", hook, "--input", input])
}

fn stdout_json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn plugin_check_good_and_bad_files() {
    let good = ctihost(&["plugin", "check", wasm("skills_router").to_str().unwrap()]);
    assert!(good.status.success(), "{}", stderr(&good));
    let j = stdout_json(&good);
    assert_eq!(j["kind"], "router");
    assert_eq!(j["world"], "cti:plugin/router@0.1.0");
    assert_eq!(j["self_test"], "passed");
    assert!(j["exports"].as_array().unwrap().contains(&"route".into()));
    assert!(
        j["imports"]
            .as_array()
            .unwrap()
            .contains(&"cti:plugin/crm@0.1.0".into())
    );
    assert!(j["compile_ms"].as_f64().unwrap() > 0.0);
    assert!(j["size_bytes"].as_u64().unwrap() > 1000);

    // The SDK guide's example router is a valid router as written.
    let example = ctihost(&[
        "plugin",
        "check",
        "--kind",
        "router",
        wasm("rust_min_router").to_str().unwrap(),
    ]);
    assert!(example.status.success(), "{}", stderr(&example));

    let pop = ctihost(&["plugin", "check", wasm("crm_screen_pop").to_str().unwrap()]);
    assert_eq!(stdout_json(&pop)["kind"], "screen-pop");

    let wrong = ctihost(&[
        "plugin",
        "check",
        "--kind",
        "router",
        wasm("crm_screen_pop").to_str().unwrap(),
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).contains("does not implement world `router`"),
        "{}",
        stderr(&wrong)
    );

    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello").unwrap();
    let bad = ctihost(&["plugin", "check", text.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("not a WebAssembly component"),
        "{}",
        stderr(&bad)
    );

    let missing = ctihost(&["plugin", "check", "/nonexistent.wasm"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read"));

    // A manifest: checked, then its component as the manifest declares it.
    std::fs::copy(wasm("skills_router"), dir.path().join("skills_router.wasm")).unwrap();
    let manifest = dir.path().join("skills-router.toml");
    std::fs::write(&manifest, stock_manifest("skills-router")).unwrap();
    let o = ctihost(&["plugin", "check", manifest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = stdout_json(&o);
    assert_eq!(
        (j["name"].as_str(), j["kind"].as_str()),
        (Some("skills-router"), Some("router"))
    );
    assert!(
        j["component"]
            .as_str()
            .unwrap()
            .ends_with("skills_router.wasm")
    );
    assert_eq!(j["self_test"], "passed");
    let typo = dir.path().join("typo.toml");
    std::fs::write(
        &typo,
        "name = \"t\"\nkind = \"router\"\nfile = \"skills_router.wasm\"\n[limits]\ndeadlin_ms = 5\n",
    )
    .unwrap();
    let o = ctihost(&["plugin", "check", typo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("line 5") && stderr(&o).contains("deadlin_ms"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("not a WebAssembly component"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn plugin_invoke_samples_are_not_the_self_test_call() {
    // The test router behaves only for call ids starting "selftest", as a
    // plugin gaming the host's self-test would: the sample catches it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(wasm("test_router"), dir.path().join("t.wasm")).unwrap();
    let m = dir.path().join("t.toml");
    std::fs::write(
        &m,
        "name = \"t\"\nkind = \"router\"\nfile = \"t.wasm\"\n[config]\nmode = \"trap\"\n",
    )
    .unwrap();
    let o = ctihost(&["plugin", "invoke", m.to_str().unwrap(), "--hook", "route"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(stdout_json(&o)["failure"]["kind"], "trap");
    let o = ctihost(&["plugin", "sample-input", "--hook", "route"]);
    let id = stdout_json(&o)["call_id"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("sample-") && !id.contains("selftest"),
        "{id}"
    );
}

#[test]
fn plugin_invoke_prints_decision_with_version_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("call.json");
    let mut c = call("+8613700000001", "95588");
    c.ivr.push(ctihost::plugins::bindings::IvrEntry {
        step: "main-menu".into(),
        digits: "1".into(),
        sensitive: false,
    });
    c.arrived_at_ms = 1_796_004_000_000;
    std::fs::write(&input, serde_json::to_string(&c).unwrap()).unwrap();
    // The stock router from its shipped manifest (config table included).
    std::fs::copy(wasm("skills_router"), dir.path().join("skills_router.wasm")).unwrap();
    let manifest = dir.path().join("skills-router.toml");
    std::fs::write(&manifest, stock_manifest("skills-router")).unwrap();
    let o = invoke(manifest.to_str().unwrap(), "route", input.to_str().unwrap());
    assert!(o.status.success(), "{}", stderr(&o));
    let j = stdout_json(&o);
    assert_eq!(j["outcome"], "ok");
    assert_eq!(j["output"]["Queue"]["queue"], "general");
    assert_eq!(j["output"]["Queue"]["skills"][0], "cards");
    assert_eq!(j["version"].as_str().unwrap().len(), 64);
    assert!(j["elapsed_us"].as_f64().unwrap() > 0.0);

    // A plugin that traps: exit 1, the fallback and the failure are printed.
    let trap = dir.path().join("trap.toml");
    std::fs::copy(wasm("test_router"), dir.path().join("t.wasm")).unwrap();
    std::fs::write(
        &trap,
        "name = \"t\"\nkind = \"router\"\nfile = \"t.wasm\"\n[config]\nmode = \"trap\"\n",
    )
    .unwrap();
    let o = invoke(trap.to_str().unwrap(), "route", input.to_str().unwrap());
    assert_eq!(o.status.code(), Some(1));
    let j = stdout_json(&o);
    assert_eq!(j["outcome"], "fallback");
    assert_eq!(j["failure"]["kind"], "trap");
    assert!(
        j["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("told to trap")
    );
    assert_eq!(j["output"]["Queue"]["queue"], "general");

    // Input that does not fit the hook: exit 2 with the reason.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"caller\": 5}").unwrap();
    let o = invoke(manifest.to_str().unwrap(), "route", bad.to_str().unwrap());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("input does not fit hook route"),
        "{}",
        stderr(&o)
    );

    let o = ctihost(&[
        "plugin",
        "invoke",
        manifest.to_str().unwrap(),
        "--hook",
        "dance",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown hook"));

    // Sample input round-trips through invoke.
    let o = ctihost(&["plugin", "sample-input", "--hook", "on-event"]);
    assert!(o.status.success());
    let sample = dir.path().join("event.json");
    std::fs::write(&sample, &o.stdout).unwrap();
    let o = invoke(
        wasm("pci_recording").to_str().unwrap(),
        "on-event",
        sample.to_str().unwrap(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout_json(&o)["output"], "Keep");
}

fn admin(server: &server::Server, token: &str, args: &[&str]) -> Output {
    let mut all: Vec<&str> = vec!["plugin"];
    all.extend_from_slice(args);
    all.extend(server.url_args());
    all.extend_from_slice(&["--token", token]);
    ctihost(&all)
}

#[test]
fn run_serves_admin_api_to_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(
        plugins.join("r.wasm"),
        variant_of(&std::fs::read(wasm("test_router")).unwrap(), "a"),
    )
    .unwrap();
    std::fs::write(
        plugins.join("r.toml"),
        "name = \"r\"\nkind = \"router\"\nfile = \"r.wasm\"\n[config]\nqueue = \"a\"\n",
    )
    .unwrap();
    // A plugin in the directory overrides the embedded one of the same name.
    std::fs::copy(wasm("rust_min_router"), plugins.join("min.wasm")).unwrap();
    std::fs::write(
        plugins.join("skills-router.toml"),
        "name = \"skills-router\"\nkind = \"router\"\nfile = \"min.wasm\"\n",
    )
    .unwrap();
    let config = dir.path().join("ctihost.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret-token\"\n[plugins]\ndir = \"plugins.d\"\nwatch = false\n[sip]\nudp = []\ntcp = []\n[store]\nretention_days = 0\n",
    )
    .unwrap();
    // Records already in the store (the telephony core writes them in production).
    {
        let store = ctihost::store::Store::open(&dir.path().join("data").join("db")).unwrap();
        for (i, id) in ["first-call", "second-call"].iter().enumerate() {
            store
                .record_call(&sample_record(id, 1_796_000_000_000 + i as u64 * 60_000))
                .unwrap();
        }
    }
    let server = server::start(&config);

    let o = admin(&server, "s3cret-token", &["list", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = stdout_json(&o);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "crm-http",
            "crm-screen-pop",
            "pci-recording",
            "r",
            "skills-router"
        ]
    );
    let sources: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources[0], "embedded");
    assert!(
        sources[4].ends_with("plugins.d/skills-router.toml"),
        "{}",
        sources[4]
    );

    // Wrong and missing tokens are refused.
    let o = admin(&server, "wrong", &["list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
    let head = String::from_utf8_lossy(&server.raw_get("/admin/plugins", None)).into_owned();
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    // Reload after a change, then rollback, then history; all through the CLI.
    std::fs::write(
        plugins.join("r.toml"),
        "name = \"r\"\nkind = \"router\"\nfile = \"r.wasm\"\nwatch_me = 1\n",
    )
    .unwrap();
    let o = admin(&server, "s3cret-token", &["reload", "r"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a manifest with an unknown key is rejected"
    );
    assert!(stderr(&o).contains("watch_me"), "{}", stderr(&o));
    std::fs::write(
        plugins.join("r.wasm"),
        variant_of(&std::fs::read(wasm("test_router")).unwrap(), "b"),
    )
    .unwrap();
    std::fs::write(
        plugins.join("r.toml"),
        "name = \"r\"\nkind = \"router\"\nfile = \"r.wasm\"\n[config]\nqueue = \"b\"\n",
    )
    .unwrap();
    let o = admin(&server, "s3cret-token", &["reload", "r"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reloaded = stdout_json(&o);
    assert_eq!(reloaded["changed"], true);
    let o = admin(&server, "s3cret-token", &["rollback", "r"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout_json(&o)["previous"], reloaded["version"]);
    let o = admin(&server, "s3cret-token", &["rollback", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("404"));

    let o = admin(
        &server,
        "s3cret-token",
        &["history", "r", "--format", "json"],
    );
    assert!(o.status.success());
    let h = stdout_json(&o);
    let rows: Vec<(&str, &str)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["trigger"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("startup", "loaded"),
            ("cli", "rejected"),
            ("cli", "loaded"),
            ("cli", "rolled-back")
        ]
    );
    // By default a table a person reads; filtered to the real loads.
    let o = admin(
        &server,
        "s3cret-token",
        &["history", "r", "--outcome", "loaded,rolled-back"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("at ") && lines[0].contains("outcome"),
        "{table}"
    );
    assert_eq!(
        lines.len(),
        4,
        "three loads and rollbacks, no rejection: {table}"
    );
    assert!(!table.contains("rejected"), "{table}");
    let o = admin(&server, "s3cret-token", &["list"]);
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("skills-router ") && l.contains("router")),
        "{table}"
    );
    // A newcomer without the token file is told where it is and what to pass.
    let elsewhere = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ctihost"))
        .args(["plugin", "list"])
        .args(server.url_args())
        .current_dir(elsewhere.path())
        .env_remove("CTIHOST_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("ctihost-data/admin.token")
            && err.contains("--token-file")
            && err.contains("hint:"),
        "{err}"
    );

    // Call records through the CLI: CSV, JSON, table, and a time filter.
    let cdr = |args: &[&str]| {
        let mut all = vec!["cdr"];
        all.extend_from_slice(args);
        all.extend(server.url_args());
        all.extend_from_slice(&["--token", "s3cret-token"]);
        ctihost(&all)
    };
    let o = cdr(&["export", "--since", "0", "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with("first-call,+8613800000000,95588,pstn,"),
        "{csv}"
    );
    assert!(lines[1].contains(",abandoned-in-queue,80.000,"), "{csv}");
    let o = cdr(&["list", "--since", "1796000030000", "--format", "json"]);
    let j = stdout_json(&o);
    assert_eq!(j.as_array().unwrap().len(), 1);
    assert_eq!(j[0]["call_id"], "second-call");
    let o = cdr(&["list", "--since", "2026-01-01T00:00:00Z"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("abandoned-in-queue"));
    let o = cdr(&["list", "--since", "last tuesday"]);
    assert_eq!(o.status.code(), Some(2));
}

fn sample_record(id: &str, ended_ms: u64) -> ctihost::acd::CallRecord {
    ctihost::acd::CallRecord {
        call_id: id.into(),
        caller: "+8613800000000".into(),
        dialed: "95588".into(),
        trunk: "pstn".into(),
        arrived_ms: ended_ms - 90_000,
        queued_ms: Some(ended_ms - 80_000),
        offered_ms: None,
        answered_ms: None,
        ended_ms,
        queue: Some("general".into()),
        agent: None,
        disposition: ctihost::acd::Disposition::AbandonedInQueue,
        wait_secs: 80.0,
        talk_secs: 0.0,
        overflowed_from: vec![],
        plugin_versions: Default::default(),
        cause: "caller hung up while queued".into(),
    }
}

/// `ctihost report` on a scripted day of call records (threshold 20 s): the
/// figures computed by hand. The center is in Beijing; 09:00 local:
/// answered after 5 s (talk 100 s), answered after 30 s (talk 200 s),
/// abandoned in queue after 10 s, abandoned ringing after 60 s; 14:00 local:
/// answered after 15 s (talk 60 s). 09:00 in Beijing is the previous UTC day,
/// so the day report has one row only when it follows the center's zone.
#[test]
fn report_gives_the_hand_computed_service_levels() {
    use ctihost::acd::{CallRecord, Disposition};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 2026-11-30 00:00 in Beijing.
    let day = 1_795_968_000_000u64;
    {
        let store = ctihost::store::Store::open(&data.join("db")).unwrap();
        let rec = |id: &str, hour: u64, d: Disposition, wait: f64, talk: f64| {
            let at = day + hour * 3_600_000;
            CallRecord {
                call_id: id.into(),
                queue: Some("general".into()),
                agent: (d == Disposition::Answered).then(|| "1001".into()),
                arrived_ms: at,
                queued_ms: Some(at),
                ended_ms: at + ((wait + talk) * 1000.0) as u64,
                disposition: d,
                wait_secs: wait,
                talk_secs: talk,
                ..sample_record(id, at)
            }
        };
        for r in [
            rec("a", 9, Disposition::Answered, 5.0, 100.0),
            rec("b", 9, Disposition::Answered, 30.0, 200.0),
            rec("c", 9, Disposition::AbandonedInQueue, 10.0, 0.0),
            rec("d", 9, Disposition::AbandonedRinging, 60.0, 0.0),
            rec("e", 14, Disposition::Answered, 15.0, 60.0),
        ] {
            store.record_call(&r).unwrap();
        }
    }
    let config = dir.path().join("ctihost.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\ntimezone = \"Asia/Shanghai\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n[plugins]\nwatch = false\n\
         [sip]\nudp = []\ntcp = []\n[[queues]]\nname = \"general\"\nservice_level_secs = 20\n[[queues]]\nname = \"vip\"\n[store]\nretention_days = 0\n",
    )
    .unwrap();
    let s = server::start(&config);
    let since = day.to_string();
    let report = |args: &[&str]| {
        let mut all = vec!["report"];
        all.extend_from_slice(args);
        all.extend(s.url_args());
        all.extend_from_slice(&["--token", "t0k"]);
        ctihost(&all)
    };
    let o = report(&["--since", &since, "--interval", "1d", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = stdout_json(&o);
    assert_eq!(r["time_zone"], "Asia/Shanghai");
    assert_eq!(
        r["queues"].as_array().unwrap().len(),
        1,
        "one local day: {r}"
    );
    let q = &r["queues"][0];
    assert_eq!(q["queue"], "general");
    assert_eq!(q["interval_start_ms"], day);
    assert_eq!(
        (
            q["offered"].as_u64(),
            q["answered"].as_u64(),
            q["abandoned"].as_u64()
        ),
        (Some(5), Some(3), Some(2))
    );
    let f = |k: &str| q[k].as_f64().unwrap();
    assert!((f("service_level") - 2.0 / 3.0).abs() < 1e-9, "SL {q}");
    assert!((f("service_level_2") - 3.0 / 5.0).abs() < 1e-9, "SL2 {q}");
    assert!((f("asa_secs") - 50.0 / 3.0).abs() < 1e-9, "ASA {q}");
    assert!((f("abandon_rate") - 2.0 / 5.0).abs() < 1e-9, "abandon {q}");
    assert_eq!(r["agents"][0]["answered"], 3);
    // Hourly, as a table for people, and bad input named.
    let o = report(&["--since", &since, "--queue", "general"]);
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success() && table.contains("50.0%") && table.contains("100.0%"),
        "{table}"
    );
    assert!(
        table.contains("2026-11-30T09:00:00+08:00"),
        "local hours: {table}"
    );
    let o = report(&["--since", &since, "--interval", "2h"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("15m, 1h or 1d"), "{}", stderr(&o));
}

/// `cdr export` gives every record, however many (it stopped at 10,000,
/// silently), with none repeated or skipped where many calls end in the
/// same millisecond.
#[test]
fn cdr_export_pages_through_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ctihost.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\n[sip]\nudp = []\ntcp = []\n[store]\nretention_days = 0\n",
    )
    .unwrap();
    let total = 12_345;
    {
        let store = ctihost::store::Store::open(&dir.path().join("data").join("db")).unwrap();
        for i in 0..total {
            // Five calls end in each millisecond: pages split inside one.
            let r = sample_record(&format!("call-{i:05}"), 1_796_000_000_000 + (i / 5) as u64);
            store.insert_call(&r).unwrap();
        }
        store.flush_calls().unwrap();
    }
    let server = server::start(&config);
    let o = ctihost(&[
        "cdr",
        "export",
        "--since",
        "0",
        "--format",
        "csv",
        "--ca-file",
        &server.ca,
        "--url",
        &server.url,
        "--token",
        "t",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = String::from_utf8_lossy(&o.stdout).into_owned();
    let ids: std::collections::BTreeSet<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(csv.lines().count(), total + 1, "a header and every record");
    assert_eq!(ids.len(), total, "none repeated");
    let o = ctihost(&[
        "cdr",
        "export",
        "--since",
        "0",
        "--format",
        "json",
        "--limit",
        "7",
        "--ca-file",
        &server.ca,
        "--url",
        &server.url,
        "--token",
        "t",
    ]);
    let v = stdout_json(&o);
    assert_eq!(v.as_array().unwrap().len(), 7, "--limit caps it");
}

#[test]
fn records_past_their_retention_are_deleted_and_counted() {
    use ctihost::store::{AgentStateEntry, QueueLogEntry};
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let days_ago = |d: u64| now - d * 86_400_000;
    {
        let store = ctihost::store::Store::open(&dir.path().join("data").join("db")).unwrap();
        for (id, d) in [("ten-days", 10), ("eight-days", 8), ("yesterday", 1)] {
            store.insert_call(&sample_record(id, days_ago(d))).unwrap();
            store
                .log_queue_event(&QueueLogEntry {
                    at_ms: days_ago(d),
                    call_id: id.into(),
                    queue: "general".into(),
                    agent: None,
                    kind: ctihost::acd::QueueLogKind::EnterQueue,
                })
                .unwrap();
            store
                .log_agent_state(&AgentStateEntry {
                    at_ms: days_ago(d),
                    agent: "1001".into(),
                    state: "ready".into(),
                })
                .unwrap();
        }
        store.flush().unwrap();
    }
    let config = dir.path().join("ctihost.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\n[sip]\nudp = []\ntcp = []\n\
         [store]\nretention_days = 7\n",
    )
    .unwrap();
    let server = server::start(&config);
    // The first purge runs at start-up.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let metrics = loop {
        let m = server.admin_text("/metrics", "t");
        if m.contains("ctihost_store_purged_total{log=\"calls\"} 2") {
            break m;
        }
        assert!(
            std::time::Instant::now() < until,
            "no purge within 20 s: {}",
            m.lines()
                .filter(|l| l.starts_with("ctihost_store"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        metrics.contains("ctihost_store_purged_total{log=\"queue_log\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ctihost_store_purged_total{log=\"agent_log\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ctihost_store_purge_failures_total 0"),
        "{metrics}"
    );
    let disk = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ctihost_store_disk_bytes "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(disk > 0, "the store's size is a gauge: {metrics}");
    let cdr = server.admin_json("/admin/cdr?since_ms=0", "t");
    let ids: Vec<&str> = cdr
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["yesterday"],
        "only what is inside the retention stays"
    );
    let log = server.admin_json("/admin/queue-log?since_ms=0", "t");
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    assert!(
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("store retention purge") && l.contains("calls=2")),
        "a log line says what went"
    );
}
