//! `plugin check`, `plugin invoke`, `plugin sample-input`, `plugin export-stock`:
//! plugin development without a running host.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ctihost::plugins::engine::EngineSettings;
use ctihost::plugins::hook::{HookCall, self_test_calls};
use ctihost::plugins::{HostSettings, PluginHost, PluginKind, PluginSource, Trigger};
use ctihost::stock_plugins::STOCK;
use ctihost::store::Store;

fn offline_host(cache: Option<PathBuf>) -> anyhow::Result<PluginHost> {
    let store = Store::temporary().map_err(|e| anyhow::anyhow!("{e}"))?;
    PluginHost::new(
        HostSettings {
            // One-shot runs gain nothing from the pool's reservations.
            engine: EngineSettings {
                pooling: false,
                parallel_compilation: true,
                ..EngineSettings::default()
            },
            cache_dir: cache,
            crm_connector: None,
        },
        store,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(code)
}

fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot print result: {e}"),
    }
}

pub async fn check(file: &Path, kind: Option<&str>) -> ExitCode {
    let kinds: Vec<PluginKind> = match kind {
        Some(k) => match k.parse() {
            Ok(k) => vec![k],
            Err(e) => return fail(2, e),
        },
        None => PluginKind::ALL.to_vec(),
    };
    // A manifest: check it, then its component as the manifest declares it.
    let manifest = if file.extension().is_some_and(|x| x == "toml") {
        match ctihost::plugins::Manifest::from_file(file) {
            Ok(m) => Some(m),
            Err(e) => return fail(1, e),
        }
    } else {
        None
    };
    let component = match &manifest {
        Some(m) => m.component_path(file.parent().unwrap_or(Path::new("."))),
        None => file.to_owned(),
    };
    let bytes = match std::fs::read(&component) {
        Ok(b) => b,
        Err(e) => return fail(2, format!("cannot read {}: {e}", component.display())),
    };
    // A private cache: the compile is timed once, then each kind tried reuses it.
    let cache = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => return fail(2, e),
    };
    let result = match &manifest {
        Some(m) if kind.is_some_and(|k| k.parse() != Ok(m.kind)) => Err(anyhow::anyhow!(
            "{} declares kind {}, not {}",
            file.display(),
            m.kind,
            kind.unwrap_or_default()
        )),
        Some(m) => check_manifest(file, m, &component, bytes, cache.clone()).await,
        None => check_in(file, bytes, kinds, cache.clone()).await,
    };
    let _ = std::fs::remove_dir_all(&cache);
    match result {
        Ok(report) => {
            print_json(&report);
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, e),
    }
}

async fn check_in(
    file: &Path,
    bytes: Vec<u8>,
    kinds: Vec<PluginKind>,
    cache: PathBuf,
) -> anyhow::Result<serde_json::Value> {
    let host = offline_host(Some(cache))?;
    let size = bytes.len();
    let compile = host
        .compile(bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut reasons = Vec::new();
    for k in kinds {
        match host
            .load(
                PluginSource::Component {
                    path: file.to_owned(),
                    kind: k,
                },
                Trigger::Cli,
            )
            .await
        {
            Ok(report) => {
                return Ok(check_report(
                    &host,
                    &report.name,
                    file,
                    k,
                    size,
                    compile.millis,
                ));
            }
            Err(e) => reasons.push(format!("  as {k}: {e}")),
        }
    }
    Err(anyhow::anyhow!(
        "{} is not a valid ctihost plugin:\n{}",
        file.display(),
        reasons.join("\n")
    ))
}

/// A manifest and its component, loaded as the host would load them (the
/// manifest's limits and config, its self-test).
async fn check_manifest(
    file: &Path,
    m: &ctihost::plugins::Manifest,
    component: &Path,
    bytes: Vec<u8>,
    cache: PathBuf,
) -> anyhow::Result<serde_json::Value> {
    let host = offline_host(Some(cache))?;
    let size = bytes.len();
    let compile = host
        .compile(bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", component.display()))?;
    let report = host
        .load(PluginSource::Manifest(file.to_owned()), Trigger::Cli)
        .await
        .map_err(|e| anyhow::anyhow!("{} is not a valid ctihost plugin: {e}", file.display()))?;
    let mut r = check_report(&host, &report.name, file, m.kind, size, compile.millis);
    r["component"] = component.display().to_string().into();
    r["name"] = m.name.clone().into();
    Ok(r)
}

/// What `plugin check` prints of a plugin that loaded.
fn check_report(
    host: &PluginHost,
    name: &str,
    file: &Path,
    kind: PluginKind,
    size: usize,
    compile_ms: f64,
) -> serde_json::Value {
    let (imports, exports) = host.interface(name).unwrap_or_default();
    serde_json::json!({
        "file": file.display().to_string(),
        "kind": kind,
        "world": format!("cti:plugin/{}@0.1.0", kind.world()),
        "version": host.current_version(name),
        "size_bytes": size,
        "compile_ms": compile_ms,
        "imports": imports,
        "exports": exports,
        "hooks": kind.hooks(),
        "self_test": "passed",
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("ctihost-check-{}", std::process::id()));
    std::fs::create_dir_all(&d)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", d.display()))?;
    Ok(d)
}

fn kind_of_hook(hook: &str) -> anyhow::Result<PluginKind> {
    PluginKind::ALL
        .into_iter()
        .find(|k| k.hooks().contains(&hook))
        .ok_or_else(|| anyhow::anyhow!("unknown hook {hook:?}; hooks are route, rank-agents, build-card, lookup, on-connect, on-event"))
}

pub async fn invoke(
    file: &Path,
    hook: &str,
    input: Option<&Path>,
    crm: Option<&Path>,
    cache: Option<PathBuf>,
) -> ExitCode {
    let kind = match kind_of_hook(hook) {
        Ok(k) => k,
        Err(e) => return fail(2, e),
    };
    let call = match input {
        None => match sample(hook) {
            Some(c) => c,
            None => return fail(2, format!("no sample for hook {hook}")),
        },
        Some(p) => {
            let text = if p == Path::new("-") {
                let mut s = String::new();
                if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                    return fail(2, format!("cannot read stdin: {e}"));
                }
                s
            } else {
                match std::fs::read_to_string(p) {
                    Ok(s) => s,
                    Err(e) => return fail(2, format!("cannot read {}: {e}", p.display())),
                }
            };
            let value: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => return fail(2, format!("{}: not JSON: {e}", p.display())),
            };
            match HookCall::from_json(hook, value) {
                Ok(c) => c,
                Err(e) => return fail(2, e),
            }
        }
    };
    let host = match offline_host(cache) {
        Ok(h) => h,
        Err(e) => return fail(2, e),
    };
    if let Some(crm) = crm
        && let Err(e) = host
            .load(PluginSource::Manifest(crm.to_owned()), Trigger::Cli)
            .await
    {
        return fail(2, format!("CRM connector {}: {e}", crm.display()));
    }
    let source = if file.extension().is_some_and(|e| e == "toml") {
        PluginSource::Manifest(file.to_owned())
    } else {
        PluginSource::Component {
            path: file.to_owned(),
            kind,
        }
    };
    let report = match host.load(source, Trigger::Cli).await {
        Ok(r) => r,
        Err(e) => return fail(2, format!("{}: {e}", file.display())),
    };
    match host.invoke(&report.name, call).await {
        Ok(inv) => {
            print_json(&serde_json::json!({
                "plugin": inv.plugin,
                "version": host.current_version(&inv.plugin),
                "hook": inv.hook,
                "outcome": if inv.failure.is_some() { "fallback" } else { "ok" },
                "failure": inv.failure,
                "output": inv.output,
                "elapsed_us": inv.elapsed_us,
            }));
            if inv.failure.is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(2, e),
    }
}

/// A sample call of `hook`, with a call id of its own: a plugin that
/// special-cases the host's self-test call is still caught offline.
fn sample(hook: &str) -> Option<HookCall> {
    let kind = kind_of_hook(hook).ok()?;
    let mut call = self_test_calls(kind)
        .into_iter()
        .find(|c| c.name() == hook)?;
    let id = ctihost::random::bytes::<6>()
        .map(hex::encode)
        .unwrap_or_else(|_| ctihost::clock::now_ms().to_string());
    call.set_call_id(&format!("sample-{id}"));
    Some(call)
}

/// The JSON a hook's `--input` takes, filled with a sample call.
pub fn sample_input_value(hook: &str) -> Option<serde_json::Value> {
    match sample(hook)? {
        HookCall::Route { call } | HookCall::OnConnect { call } => serde_json::to_value(call).ok(),
        c => {
            let mut v = serde_json::to_value(&c).ok()?;
            if let Some(o) = v.as_object_mut() {
                o.remove("hook");
            }
            Some(v)
        }
    }
}

pub fn sample_input(hook: &str) -> ExitCode {
    match sample_input_value(hook) {
        Some(v) => {
            print_json(&v);
            ExitCode::SUCCESS
        }
        None => fail(2, format!("unknown hook {hook:?}")),
    }
}

pub fn export_stock(dir: &Path) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(2, format!("{}: {e}", dir.display()));
    }
    for p in STOCK {
        let wasm = format!("{}.wasm", p.name);
        let manifest = p
            .manifest
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("file") {
                    format!("file = \"{wasm}\"")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let r = std::fs::write(dir.join(&wasm), p.component)
            .and_then(|_| std::fs::write(dir.join(format!("{}.toml", p.name)), manifest + "\n"));
        if let Err(e) = r {
            return fail(2, format!("{}: {e}", dir.display()));
        }
        println!("{}", dir.join(format!("{}.toml", p.name)).display());
    }
    ExitCode::SUCCESS
}
