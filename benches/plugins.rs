//! Plugin runtime benchmarks: `cargo bench -p ctihost --bench plugins`.
//!
//! Prints medians and p99 with the native-code baseline measured in the same
//! run, compile vs cached-artifact load, and file change -> new version serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use ctihost::plugins::bindings::*;
use ctihost::plugins::engine::EngineSettings;
use ctihost::plugins::{HostSettings, Manifest, PluginHost, PluginSource, Trigger};
use ctihost::store::Store;
use support::*;

const DECISIONS: usize = 20_000;

struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn stats(mut us: Vec<f64>) -> Stats {
    us.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q) as usize];
    Stats {
        p50: at(0.5),
        p99: at(0.99),
        mean: us.iter().sum::<f64>() / us.len() as f64,
    }
}

fn bench_call() -> CallInfo {
    let mut c = call("+8613700000001", "95588");
    c.arrived_at_ms = 1_796_004_000_000; // Monday 10:00 in Beijing
    c.ivr.push(IvrEntry {
        step: "main-menu".into(),
        digits: "1".into(),
        sensitive: false,
    });
    c.customer = Some(Customer {
        id: "C-1".into(),
        name: "Li Lei".into(),
        segment: "retail".into(),
        language: Some("zh".into()),
        accounts: vec!["6222000011112222".into()],
        last_contact: None,
        notes: vec![],
        attributes: vec![],
    });
    c
}

fn host(pooling: bool, cache: &Path) -> PluginHost {
    PluginHost::new(
        HostSettings {
            engine: EngineSettings {
                pooling,
                // CTIHOST_WASM_PERFMAP=1: let perf name the plugins' functions.
                perf_map: std::env::var_os("CTIHOST_WASM_PERFMAP").is_some(),
                ..EngineSettings::default()
            },
            cache_dir: Some(cache.to_owned()),
            crm_connector: None,
        },
        Store::temporary().unwrap(),
    )
    .unwrap()
}

fn stock_router_manifest(dir: &Path, limits: &str) -> std::path::PathBuf {
    std::fs::copy(wasm("skills_router"), dir.join("skills_router.wasm")).unwrap();
    let text =
        stock_manifest("skills-router").replace("[limits]\n", &format!("[limits]\n{limits}"));
    let path = dir.join("skills-router.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn wasm_decisions(h: &PluginHost, plugin: &str, expected: &RouteDecision) -> Stats {
    wasm_decisions_n(h, plugin, expected, DECISIONS).await
}

async fn wasm_decisions_n(
    h: &PluginHost,
    plugin: &str,
    expected: &RouteDecision,
    n: usize,
) -> Stats {
    let call = bench_call();
    // The typed call answers in the core's words (same serde shape).
    let expected: ctihost::acd::RouteDecision =
        serde_json::from_value(serde_json::to_value(expected).unwrap()).unwrap();
    for _ in 0..500.min(n) {
        h.route(plugin, call.clone()).await.unwrap();
    }
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        let c = call.clone();
        let t = Instant::now();
        let (d, inv) = h.route(plugin, c).await.unwrap();
        us.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(inv.failure.is_none() && d == expected);
    }
    stats(us)
}

fn native_decisions(config_json: &str) -> (Stats, RouteDecision) {
    // The same call in the guest SDK's types (same WIT, same serde shape).
    let call: ctihost_sdk::types::CallInfo =
        serde_json::from_value(serde_json::to_value(bench_call()).unwrap()).unwrap();
    let mut us = Vec::with_capacity(DECISIONS);
    let mut last = None;
    for i in 0..DECISIONS + 500 {
        let c = call.clone();
        let t = Instant::now();
        let (d, _) = skills_router::route_with_config(config_json, &c).unwrap();
        let e = t.elapsed();
        if i >= 500 {
            us.push(e.as_secs_f64() * 1e6);
        }
        last = Some(d);
    }
    let d: RouteDecision =
        serde_json::from_value(serde_json::to_value(last.unwrap()).unwrap()).unwrap();
    (stats(us), d)
}

fn row(name: &str, s: &Stats, base: &Stats) {
    println!(
        "{name:<44} p50 {:>8.2} us  p99 {:>8.2} us  {:>9.0} decisions/s/core  x{:>6.1} native p50",
        s.p50,
        s.p99,
        1e6 / s.mean,
        s.p50 / base.p50
    );
}

/// `ctihost plugin new NAME --kind router --lang LANG`, built by its own build.sh.
fn template_router(dir: &Path, lang: &str) -> std::path::PathBuf {
    let name = format!("tpl-{lang}");
    let project = dir.join(&name);
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_ctihost"))
        .args([
            "plugin", "new", &name, "--kind", "router", "--lang", lang, "--dir",
        ])
        .arg(&project)
        .status()
        .unwrap()
        .success();
    assert!(ok, "plugin new {lang}");
    if lang == "js" {
        std::os::unix::fs::symlink(toolchains::node_modules(), project.join("node_modules"))
            .unwrap();
    }
    let ok = std::process::Command::new(project.join("build.sh"))
        .env("CARGO_TARGET_DIR", root().join("target/templates"))
        .env(
            "COMPONENTIZE_PY",
            toolchains::py_venv().join("bin/componentize-py"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "template {lang} builds");
    project.join("plugin.toml")
}

/// The manifest with `[limits] instance_reuse = n` whatever it said before.
fn with_reuse(manifest: &str, n: u32) -> String {
    let kept: Vec<&str> = manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with("instance_reuse"))
        .collect();
    kept.join("\n")
        .replace("[limits]\n", &format!("[limits]\ninstance_reuse = {n}\n"))
        + "\n"
}

/// The JS template's app.js built with jco (StarlingMonkey) instead of its
/// own build (QuickJS), beside it under another plugin name.
fn starlingmonkey_build(qjs_manifest: &Path) -> std::path::PathBuf {
    let project = qjs_manifest.parent().unwrap();
    let ok = std::process::Command::new(toolchains::node_modules().join(".bin/jco"))
        .args([
            "componentize",
            "app.js",
            "--wit",
            "wit",
            "--world-name",
            "router",
            "--disable",
            "all",
            "--out",
            "sm.wasm",
        ])
        .current_dir(project)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "jco componentize of the JS template");
    let text = std::fs::read_to_string(qjs_manifest).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for l in &mut lines {
        if l.starts_with("name = ") {
            *l = "name = \"tpl-js-sm\"".into();
        } else if l.starts_with("file = ") {
            *l = "file = \"sm.wasm\"".into();
        }
    }
    let m = project.join("sm.toml");
    std::fs::write(&m, lines.join("\n") + "\n").unwrap();
    m
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // CTIHOST_BENCH=decision,overhead,languages,compile,reload picks sections (default: all).
        let only = std::env::var("CTIHOST_BENCH").unwrap_or_default();
        let want = |s: &str| only.is_empty() || only.split(',').any(|x| x == s);
        let dir = tempfile::tempdir().unwrap();
        let manifest = Manifest::parse(stock_manifest("skills-router"), Path::new("stock")).unwrap();
        let (native, expected) = native_decisions(&manifest.config_json());
        if want("decision") {
        println!("== route decision, stock skills router (call: 95588, menu digit 1, retail customer) ==");
        row("native Rust (same code, baseline)", &native, &native);

        for (label, pooling, limits) in [
            ("wasm, fresh instance, pooling allocator", true, ""),
            ("wasm, fresh instance, on-demand allocator", false, ""),
            ("wasm, warm instance reused", true, "instance_reuse = 1000000\npool_size = 1\n"),
        ] {
            let cache = dir.path().join("artifacts");
            let h = host(pooling, &cache);
            let sub = dir.path().join(label.replace([' ', ','], "_"));
            std::fs::create_dir_all(&sub).unwrap();
            h.load(PluginSource::Manifest(stock_router_manifest(&sub, limits)), Trigger::Startup).await.unwrap();
            let s = wasm_decisions(&h, "skills-router", &expected).await;
            row(label, &s, &native);
        }

        }
        if want("overhead") || want("overhead-pooling") || want("overhead-on-demand") {
        // The runtime's own floor: a router that decides nothing (no config parse).
        println!("\n== runtime overhead: trivial router (tests/plugins/test-router, mode ok) ==");
        for (label, pooling) in [("trivial router, fresh instance, pooling", true), ("trivial router, fresh instance, on-demand", false)] {
            if !want(if pooling { "overhead-pooling" } else { "overhead-on-demand" }) && !want("overhead") {
                continue;
            }
            let h = host(pooling, &dir.path().join("artifacts"));
            let sub = dir.path().join(format!("trivial-{pooling}"));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::copy(wasm("test_router"), sub.join("t.wasm")).unwrap();
            std::fs::write(sub.join("t.toml"), "name = \"trivial\"\nkind = \"router\"\nfile = \"t.wasm\"\n").unwrap();
            h.load(PluginSource::Manifest(sub.join("t.toml")), Trigger::Startup).await.unwrap();
            let general = RouteDecision::Queue(QueueTarget { queue: "general".into(), priority: 0, skills: vec![], max_wait_secs: None, overflow: None });
            let s = wasm_decisions(&h, "trivial", &general).await;
            row(label, &s, &native);
        }

        }
        if want("languages") {
        println!("\n== route decision by plugin language (fresh = instance_reuse 0; warm = instance_reuse 100) ==");
        let general = RouteDecision::Queue(QueueTarget { queue: "general".into(), priority: 0, skills: vec![], max_wait_secs: None, overflow: None });
        // CTIHOST_BENCH_LANGS=rust,python,js picks the languages (default: all).
        let langs = std::env::var("CTIHOST_BENCH_LANGS").unwrap_or_else(|_| "rust,python,js".into());
        let langs: Vec<&str> = langs.split(',').collect();
        let mut plugins: Vec<(String, std::path::PathBuf, RouteDecision)> = vec![];
        if langs.contains(&"rust") {
            let sub = dir.path().join("lang-stock");
            std::fs::create_dir_all(&sub).unwrap();
            plugins.push(("stock router, Rust".into(), stock_router_manifest(&sub, ""), expected.clone()));
        }
        if langs.contains(&"python") {
            let py_example = toolchains::build_example("python-router");
            let sub = dir.path().join("lang-py");
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::copy(py_example.join("python_router.wasm"), sub.join("python_router.wasm")).unwrap();
            std::fs::copy(py_example.join("plugin.toml"), sub.join("python-router.toml")).unwrap();
            plugins.push(("stock router ported, Python".into(), sub.join("python-router.toml"), expected.clone()));
        }
        for lang in ["rust", "python", "js"].into_iter().filter(|l| langs.contains(l)) {
            let manifest = template_router(dir.path(), lang);
            if lang == "js" {
                plugins.push(("template router, js on StarlingMonkey (jco)".into(), starlingmonkey_build(&manifest), general.clone()));
            }
            plugins.push((format!("template router, {lang}{}", if lang == "js" { " on QuickJS (template)" } else { "" }), manifest, general.clone()));
        }
        for (label, manifest, want_decision) in plugins {
            let name = Manifest::parse(&std::fs::read_to_string(&manifest).unwrap(), &manifest).unwrap().name;
            let rss0 = rss_kib(std::process::id());
            let h = host(true, &dir.path().join("artifacts"));
            let text = std::fs::read_to_string(&manifest).unwrap();
            // Warm whatever the component's size: the same manifest with reuse 100.
            let warm_manifest = manifest.with_extension("warm.toml");
            std::fs::write(&warm_manifest, with_reuse(&text, 100)).unwrap();
            let t = Instant::now();
            h.load(PluginSource::Manifest(warm_manifest), Trigger::Startup).await.unwrap();
            let first_load = t.elapsed();
            let warm = wasm_decisions_n(&h, &name, &want_decision, 5_000).await;
            let rss = rss_kib(std::process::id()).saturating_sub(rss0);
            row(&format!("{label}, warm"), &warm, &native);
            // A fresh instance per call: the same manifest with reuse off.
            let fresh_manifest = manifest.with_extension("fresh.toml");
            std::fs::write(&fresh_manifest, with_reuse(&text, 0)).unwrap();
            let h2 = host(true, &dir.path().join("artifacts"));
            let t = Instant::now();
            h2.load(PluginSource::Manifest(fresh_manifest), Trigger::Startup).await.unwrap();
            let cached_load = t.elapsed();
            let fresh = wasm_decisions_n(&h2, &name, &want_decision, 1_000).await;
            row(&format!("{label}, fresh"), &fresh, &native);
            println!(
                "{:<44} size {:>6} KB  first load (compile) {:>7.0} ms  cached load {:>6.1} ms  RSS growth, code + warm instance {:>6} KiB",
                "",
                std::fs::metadata(manifest.parent().unwrap().join(Manifest::parse(&text, &manifest).unwrap().file)).map(|m| m.len() / 1024).unwrap_or(0),
                first_load.as_secs_f64() * 1e3,
                cached_load.as_secs_f64() * 1e3,
                rss
            );
        }
        }
        if want("compile") {
        println!("\n== compile vs cached artifact load (skills_router.wasm, {} KB) ==", std::fs::metadata(wasm("skills_router")).unwrap().len() / 1024);
        let bytes = std::fs::read(wasm("skills_router")).unwrap();
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for i in 0..5 {
            let cache = dir.path().join(format!("cache-{i}"));
            let h = host(true, &cache);
            let c = h.compile(bytes.clone()).await.unwrap();
            assert!(!c.cached);
            cold.push(c.millis);
            let h2 = host(true, &cache);
            let c = h2.compile(bytes.clone()).await.unwrap();
            assert!(c.cached);
            warm.push(c.millis);
        }
        let (c, w) = (median(cold), median(warm));
        println!("compile (cranelift, one thread)   median {c:>8.2} ms");
        println!("cached artifact load              median {w:>8.2} ms   x{:.0} faster", c / w);

        }
        if want("reload") {
        println!("\n== file change -> new version serving (watcher debounce 100 ms) ==");
        let bytes = std::fs::read(wasm("skills_router")).unwrap();
        let t = TestHost::new();
        let variants: Vec<Vec<u8>> = (0..6).map(|i| variant_of(&bytes, &format!("bench-{i}"))).collect();
        for v in &variants {
            t.host.compile(v.clone()).await.unwrap();
        }
        let m = t.write_plugin("r", "router", &variants[0], "");
        t.host.load(PluginSource::Manifest(m), Trigger::Startup).await.unwrap();
        let _w = ctihost::plugins::watcher::watch_dir(t.host.clone(), t.plugin_dir(), Duration::from_millis(100)).unwrap();
        let mut lat = Vec::new();
        for v in &variants[1..] {
            let before = t.host.current_version("r").unwrap();
            let start = Instant::now();
            std::fs::write(t.plugin_dir().join("r.wasm"), v).unwrap();
            wait_for(Duration::from_secs(10), || t.host.current_version("r").filter(|x| *x != before)).await.expect("reloaded");
            lat.push(start.elapsed().as_secs_f64() * 1000.0);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let med = median(lat.clone());
        println!("file written -> new version serving  median {med:>7.1} ms (debounce window 100 ms); runs: {:?}", lat.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>());
        }
    });
}
