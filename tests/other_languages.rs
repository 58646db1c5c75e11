//! Plugins in Python (componentize-py) and JavaScript (jco, componentize-qjs),
//! built from source by the examples' own build scripts: they load into the
//! real runtime, decide like the stock Rust plugins, are contained like Rust
//! ones when they misbehave, and the Python router routes a real SIPp call.
//! `ctihost plugin new` templates build, pass their own tests and work
//! together against a real CRM.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use std::sync::OnceLock;
use support::server;

use ctihost::plugins::bindings::*;
use ctihost::plugins::version::FailureKind;
use ctihost::plugins::{HookCall, HookOutput, Trigger};
use serde_json::json;
use support::toolchains::{build_example, build_js, build_js_quickjs, build_python};
use support::*;

// 2026-11-30 (Monday) 10:00 and 23:00 in Beijing (UTC+8).
const MONDAY_10H: u64 = 1_796_004_000_000;
const MONDAY_23H: u64 = 1_796_050_800_000;

/// The examples are built once per test process, by their build scripts.
fn python_router() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_example("python-router"))
}

fn js_screenpop() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_example("js-screenpop"))
}

/// Install an example's manifest and component into the host's plugin dir and load it.
async fn load_example(t: &TestHost, dir: &Path, file: &str) {
    let d = t.plugin_dir();
    std::fs::copy(dir.join(file), d.join(file)).unwrap();
    let manifest = d.join(format!("{}.toml", file.trim_end_matches(".wasm")));
    std::fs::copy(dir.join("plugin.toml"), &manifest).unwrap();
    let report = t.load(&manifest, Trigger::Startup).await;
    assert!(report.is_ok(), "{file} loads: {report:?}");
}

fn with_ivr(mut c: CallInfo, answers: &[&str]) -> CallInfo {
    for a in answers {
        c.ivr.push(IvrEntry {
            step: "main-menu".into(),
            digits: (*a).into(),
            sensitive: false,
        });
    }
    c
}

fn customer(segment: &str, language: Option<&str>) -> Customer {
    Customer {
        id: "77".into(),
        name: "Wang Fang".into(),
        segment: segment.into(),
        language: language.map(str::to_owned),
        accounts: vec!["6222 0212 3456 7890".into()],
        last_contact: None,
        notes: vec![],
        attributes: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_router_decides_like_the_stock_rust_router() {
    let t = TestHost::new();
    load_stock(&t, "skills-router", "skills_router.wasm").await;
    load_example(&t, python_router(), "python_router.wasm").await;
    let at = |mut c: CallInfo, ms: u64| {
        c.arrived_at_ms = ms;
        c
    };
    let vip = |c: CallInfo, lang: Option<&str>| CallInfo {
        customer: Some(customer("VIP", lang)),
        ..c
    };
    let base = || at(call("+8613700000001", "95588"), MONDAY_10H);
    let cases: Vec<(&str, CallInfo)> = vec![
        ("menu first", base()),
        ("menu 1", with_ivr(base(), &["1"])),
        ("menu 2", with_ivr(base(), &["2"])),
        ("menu 3 (priority)", with_ivr(base(), &["3"])),
        ("menu 0", with_ivr(base(), &["0"])),
        ("invalid once: repeat", with_ivr(base(), &["7"])),
        ("invalid twice: default", with_ivr(base(), &["7", "8"])),
        (
            "service without menu",
            at(call("+8613700000001", "95588-en"), MONDAY_10H),
        ),
        (
            "unknown number",
            at(call("+8613700000001", "12345"), MONDAY_10H),
        ),
        ("VIP with language", vip(base(), Some("zh"))),
        ("VIP without language", vip(base(), None)),
        (
            "retail after hours",
            at(call("+8613700000001", "95588"), MONDAY_23H),
        ),
        (
            "VIP after hours",
            vip(at(call("+8613700000001", "95588"), MONDAY_23H), None),
        ),
        (
            "retail segment is not VIP",
            CallInfo {
                customer: Some(customer("retail", Some("en"))),
                ..with_ivr(base(), &["2"])
            },
        ),
    ];
    for (what, c) in cases {
        let (rust, inv_r) = t.host.route("skills-router", c.clone()).await.unwrap();
        let (python, inv_p) = t.host.route("python-router", c).await.unwrap();
        assert!(inv_r.failure.is_none() && inv_p.failure.is_none(), "{what}");
        assert_eq!(
            serde_json::to_value(&python).unwrap(),
            serde_json::to_value(&rust).unwrap(),
            "{what}: Python and Rust routers disagree"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_screenpop_builds_the_same_card_as_the_stock_one_from_a_real_crm() {
    let crm = Crm::start().await;
    let t = TestHost::new();
    let url = format!("http://{}", crm.addr);
    t.write_plugin(
        "crm-http",
        "crm-connector",
        &std::fs::read(wasm("crm_http")).unwrap(),
        &crm_manifest_extra(&url, &crm.addr.to_string()),
    );
    t.load(&t.plugin_dir().join("crm-http.toml"), Trigger::Startup)
        .await
        .unwrap();
    load_stock(&t, "crm-screen-pop", "crm_screen_pop.wasm").await;
    load_example(&t, js_screenpop(), "js_screenpop.wasm").await;
    crm.add(
        "+8613900000001",
        json!({"id": 77, "name": "Wang Fang", "segment": "VIP", "language": "zh",
               "accounts": ["6222 0212 3456 7890"], "last_contact": "2026-11-02",
               "notes": ["Prefers Mandarin"]}),
    );
    let agent = AgentInfo {
        id: "1001".into(),
        name: "Zhang Wei".into(),
        skills: vec![],
    };
    let mut c = with_ivr(call("+8613900000001", "95588"), &["1"]);
    c.ivr.push(IvrEntry {
        step: "card-number".into(),
        digits: "6222021234567890".into(),
        sensitive: true,
    });
    let card = |name: &'static str| {
        let (t, c, agent) = (&t, c.clone(), agent.clone());
        async move {
            let inv = t
                .host
                .invoke(name, HookCall::BuildCard { call: c, agent })
                .await
                .unwrap();
            assert!(inv.failure.is_none(), "{name}: {:?}", inv.failure);
            match inv.output {
                HookOutput::BuildCard(card) => card,
                other => panic!("{other:?}"),
            }
        }
    };
    let js = card("js-screenpop").await;
    assert_eq!(js.title, "VIP - Wang Fang");
    assert!(
        js.fields
            .iter()
            .any(|f| f.label == "Account" && f.value == "**** 7890")
    );
    assert!(js.fields.iter().all(|f| !f.value.contains("6222021234")));
    assert_eq!(
        js,
        card("crm-screen-pop").await,
        "same card as the Rust one"
    );
    // CRM down: the card still comes, saying so.
    crm.force_status
        .store(503, std::sync::atomic::Ordering::SeqCst);
    let down = card("js-screenpop").await;
    assert_eq!(down.title, "Unknown caller +8613900000001");
    assert!(
        down.notes.iter().any(|n| n.contains("CRM unavailable")),
        "{:?}",
        down.notes
    );
}

/// A Python or JS (StarlingMonkey and QuickJS) router that raises, loops or
/// eats memory is contained like a Rust one: the fallback decides, the failure is named and counted, and
/// the next call is served by a fresh instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_plugins_are_contained_like_rust_ones() {
    let t = TestHost::new();
    let built = t.dir.path().join("built");
    std::fs::create_dir_all(&built).unwrap();
    let py = built.join("py_misbehave.wasm");
    let js = built.join("js_misbehave.wasm");
    let qjs = built.join("qjs_misbehave.wasm");
    build_python(
        &root().join("tests/other-plugins/py-misbehave"),
        "router",
        &py,
    );
    build_js(
        &root().join("tests/other-plugins/js-misbehave"),
        "router",
        &js,
    );
    build_js_quickjs(
        &root().join("tests/other-plugins/js-misbehave"),
        "router",
        &qjs,
    );
    for (lang, component) in [("py", &py), ("js", &js), ("qjs", &qjs)] {
        let bytes = std::fs::read(component).unwrap();
        for (mode, expected) in [
            ("raise", FailureKind::Trap),
            ("loop", FailureKind::Deadline),
            ("memory", FailureKind::MemoryLimit),
        ] {
            let name = format!("{lang}-{mode}");
            let m = t.write_plugin(
                &name,
                "router",
                &bytes,
                &format!(
                    "[limits]\nmemory_mb = 64\ndeadline_ms = 300\n\
                     [fallback.route.Queue]\nqueue = \"safe\"\npriority = 0\nskills = []\n\
                     [config]\nmode = \"{mode}\"\n"
                ),
            );
            t.load(&m, Trigger::Startup).await.unwrap();
            let bad = t
                .host
                .invoke(
                    &name,
                    HookCall::Route {
                        call: call("+8613700000001", "666"),
                    },
                )
                .await
                .unwrap();
            let failure = bad
                .failure
                .unwrap_or_else(|| panic!("{name}: expected a failure, got {:?}", bad.output));
            assert_eq!(failure.kind, expected, "{name}: {}", failure.message);
            assert_eq!(
                outcome_queue(&bad.output),
                "safe",
                "{name}: the fallback decided"
            );
            // The next call is served normally.
            let good = t.route(&name).await;
            assert!(good.failure.is_none(), "{name}: {:?}", good.failure);
            assert_eq!(outcome(&good), "general");
        }
    }
}

fn outcome_queue(out: &HookOutput) -> String {
    match out {
        HookOutput::Route(RouteDecision::Queue(q)) => q.queue.clone(),
        other => panic!("{other:?}"),
    }
}

/// The Python router decides a real call end to end: a SIPp trunk caller
/// through the host's ACD to a registered SIPp agent.
#[test]
fn python_router_routes_a_real_sipp_call() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    let example = python_router();
    std::fs::copy(
        example.join("python_router.wasm"),
        plugins.join("python_router.wasm"),
    )
    .unwrap();
    // Without business hours, so the test does not depend on the time of day.
    let manifest = std::fs::read_to_string(example.join("plugin.toml")).unwrap();
    std::fs::write(plugins.join("python-router.toml"), without_hours(&manifest)).unwrap();
    let config = dir.path().join("ctihost.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n\
         [plugins]\nwatch = false\ndir = \"plugins.d\"\nrouter = \"python-router\"\n\
         [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = []\ndigest_algorithms = [\"MD5\"]\n\
         [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n\
         [[queues]]\nname = \"general\"\n[[queues]]\nname = \"vip\"\n\
         [[agents]]\nid = \"1001\"\nsip_user = \"1001\"\npassword = \"pw-1001\"\nskills = { cards = 50 }\nqueues = { general = 1 }\n",
    )
    .unwrap();
    let s = server::start(&config);
    let target = s.sip_udp.unwrap().to_string();
    let sipp = |scenario: &str, port: u16, extra: &[&str]| {
        let mut c = Command::new("sipp");
        c.arg("-sf")
            .arg(root().join("tests/sipp").join(scenario))
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "u1",
                "-m",
                "1",
            ])
            .args(["-timeout", "30", "-timeout_error", "-nostdin"])
            .args(extra)
            .arg(&target)
            .current_dir(std::env::temp_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let phone_port = server::free_port();
    assert!(
        sipp(
            "register_ok.xml",
            phone_port,
            &["-s", "1001", "-au", "1001", "-ap", "pw-1001"]
        )
        .status()
        .unwrap()
        .success()
    );
    let mut agent = sipp("agent_answer.xml", phone_port, &["-s", "1001"])
        .spawn()
        .unwrap();
    assert!(
        sipp(
            "caller_uac.xml",
            server::free_port(),
            &["-s", "95566", "-d", "500"]
        )
        .status()
        .unwrap()
        .success()
    );
    assert!(agent.wait().unwrap().success());
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let records = loop {
        let r = s.admin_json("/admin/cdr", "t0k");
        if r.as_array().is_some_and(|a| !a.is_empty()) || std::time::Instant::now() > until {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let rec = &records[0];
    assert_eq!(rec["disposition"], "answered", "{records}");
    assert_eq!(rec["agent"], "1001");
    assert_eq!(
        rec["plugin_versions"]["python-router"]
            .as_str()
            .unwrap()
            .len(),
        64,
        "the Python router decided: {rec}"
    );
}

const LANGS: [&str; 3] = ["rust", "python", "js"];
const KINDS: [&str; 4] = ["router", "screen-pop", "crm-connector", "recording-policy"];

/// Every `ctihost plugin new` project (each kind in each language), created
/// and built by its own build.sh once per test process; each ran its own
/// test.sh. Projects live in `dir`; failures name the project and script.
struct Templates {
    dir: tempfile::TempDir,
    failed: Vec<String>,
}

impl Templates {
    fn project(&self, kind: &str, lang: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("my-{kind}-{lang}"))
    }
}

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| {
        let venv = support::toolchains::py_venv();
        let node_modules = support::toolchains::node_modules();
        let dir = tempfile::tempdir().unwrap();
        let bin = env!("CARGO_BIN_EXE_ctihost");
        let mut failed = Vec::new();
        for lang in LANGS {
            for kind in KINDS {
                let name = format!("my-{kind}-{lang}");
                let project = dir.path().join(&name);
                let out = Command::new(bin)
                    .args([
                        "plugin", "new", &name, "--kind", kind, "--lang", lang, "--dir",
                    ])
                    .arg(&project)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "plugin new {name}: {out:?}");
                if lang == "js" {
                    std::os::unix::fs::symlink(&node_modules, project.join("node_modules"))
                        .unwrap();
                }
                for script in ["./build.sh", "./test.sh"] {
                    let out = Command::new(script)
                        .env("CARGO_TARGET_DIR", root().join("target/templates"))
                        .env("COMPONENTIZE_PY", venv.join("bin/componentize-py"))
                        // test.sh finds the binary that created the project
                        // by itself (a newcomer has no CTIHOST and, here, no
                        // ctihost on PATH).
                        .env_remove("CTIHOST")
                        .env(
                            "CTIHOST_CACHE_DIR",
                            root().join("target/test-artifact-cache"),
                        )
                        .current_dir(&project)
                        .output()
                        .unwrap();
                    if !out.status.success() {
                        failed.push(format!(
                            "{name} {script}:\n{}\n{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        ));
                        break;
                    }
                }
            }
        }
        Templates { dir, failed }
    })
}

/// `ctihost plugin new` for every kind in every language: the project
/// builds with its own build.sh and passes its own test.sh.
#[test]
fn every_plugin_new_template_builds_and_passes_its_own_test() {
    let t = templates();
    assert!(t.failed.is_empty(), "{}", t.failed.join("\n\n"));
}

/// Beyond their sample input, the templates work together against a real
/// CRM over HTTP, in every language: the router finds a VIP through the CRM
/// connector template (and counts it), the screen-pop shows the CRM's name
/// and a masked account; an unknown caller and a CRM that fails go to the
/// default queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_route_and_pop_a_vip_found_in_a_real_crm() {
    let built = templates();
    assert!(built.failed.is_empty(), "{}", built.failed.join("\n\n"));
    for lang in LANGS {
        let crm = Crm::start().await;
        crm.add(
            "+8613900000001",
            json!({"id": 77, "name": "Wang Fang", "segment": "VIP", "language": "zh",
                   "accounts": ["6222 0212 3456 7890"]}),
        );
        let t = TestHost::new();
        for kind in ["crm-connector", "router", "screen-pop"] {
            let project = built.project(kind, lang);
            let manifest = project.join("plugin.toml");
            let text = std::fs::read_to_string(&manifest)
                .unwrap()
                .replace("127.0.0.1:8090", &crm.addr.to_string());
            std::fs::write(&manifest, text).unwrap();
            let report = t.load(&manifest, Trigger::Startup).await;
            assert!(report.is_ok(), "{lang} {kind} loads: {report:?}");
        }
        let route = |caller: &'static str| {
            let t = &t;
            async move {
                let (d, inv) = t
                    .host
                    .route(&format!("my-router-{lang}"), call(caller, "95588"))
                    .await
                    .unwrap();
                assert!(inv.failure.is_none(), "{lang}: {:?}", inv.failure);
                // The typed call answers in the core's words.
                match d {
                    ctihost::acd::RouteDecision::Queue(q) => (q.queue, q.priority),
                    other => panic!("{lang}: {other:?}"),
                }
            }
        };
        assert_eq!(route("+8613900000001").await, ("vip".into(), 10), "{lang}");
        assert_eq!(
            route("+8613900000002").await,
            ("general".into(), 0),
            "{lang}"
        );
        let vips = t
            .host
            .list()
            .into_iter()
            .find(|p| p.name == format!("my-router-{lang}"))
            .and_then(|p| p.counters.get("vip").copied());
        assert_eq!(vips, Some(1), "{lang}: the router counted one VIP");
        let inv = t
            .host
            .invoke(
                &format!("my-screen-pop-{lang}"),
                HookCall::BuildCard {
                    call: call("+8613900000001", "95588"),
                    agent: AgentInfo {
                        id: "1001".into(),
                        name: "Zhang Wei".into(),
                        skills: vec![],
                    },
                },
            )
            .await
            .unwrap();
        let HookOutput::BuildCard(card) = inv.output else {
            panic!("{lang}: {:?}", inv.output)
        };
        assert_eq!(card.title, "Wang Fang", "{lang}");
        assert!(
            card.fields
                .iter()
                .any(|f| f.label == "Account" && f.value == "**** 7890"),
            "{lang}: {:?}",
            card.fields
        );
        crm.force_status
            .store(503, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            route("+8613900000001").await,
            ("general".into(), 0),
            "{lang}"
        );
        assert!(crm.hits() >= 4, "{lang}: the CRM was asked");
    }
}
