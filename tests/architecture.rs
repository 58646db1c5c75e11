//! The crate map of docs/architecture.md, checked: the call-center core
//! depends on nothing that does I/O or runs plugins, and no host crate
//! depends on one above it. A climbing arrow fails here (and, inside the
//! map, fails to compile).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Each host crate's floor: a crate may depend only on crates of lower floors.
/// A new crate must be placed here (and in docs/architecture.md).
const FLOORS: &[(&str, u32)] = &[
    ("ctihost-vocabulary", 0),
    ("ctihost-ground", 0),
    ("ctihost-acd", 1),
    ("ctihost-plugins", 1),
    ("ctihost-media", 2),
    ("ctihost-sip", 3),
    ("ctihost-store", 4),
    ("ctihost-center", 5),
    ("ctihost-api", 6),
    ("ctihost", 9),
];

/// What the core may never pull in, directly or through another crate.
const NOT_IN_THE_CORE: &[&str] = &[
    "wasmtime",
    "wasmtime-wasi",
    "tokio",
    "mio",
    "socket2",
    "rsip",
    "sled",
    "axum",
    "hyper",
    "reqwest",
];

/// What the media room may never pull in: it is an adapter between RTP and
/// the core, and knows nothing of plugins, SIP, the store or the web.
const NOT_IN_MEDIA: &[&str] = &[
    "wasmtime",
    "wasmtime-wasi",
    "rsip",
    "sled",
    "axum",
    "hyper",
    "reqwest",
];

/// What the plugin runtime may never pull in: the core itself (it speaks
/// the vocabulary only), media, the store (its storage is traits it owns)
/// and the web server. (It does open sockets: a CRM connector's outbound
/// HTTP, to the hosts its manifest allows.)
const NOT_IN_PLUGINS: &[&str] = &["ctihost-acd", "ctihost-media", "sled", "axum"];

/// What the SIP room may never pull in: it reports to the driver through
/// an event sink and counts through its own trait.
const NOT_IN_SIP: &[&str] = &[
    "ctihost-plugins",
    "wasmtime",
    "wasmtime-wasi",
    "sled",
    "axum",
    "reqwest",
];

/// What the driver may never name: it talks to SIP through a channel of the
/// core's commands, and serves no web. (Its store keeps sip's and media's
/// words, so these are checked among its own dependencies: a crate can use
/// only what it names in its Cargo.toml.)
const NOT_NAMED_BY_THE_DRIVER: &[&str] = &["ctihost-sip", "ctihost-media", "rsip", "axum"];

struct Graph {
    /// Package id -> name.
    names: BTreeMap<String, String>,
    /// Package id -> ids of its normal (non-dev, non-build) dependencies.
    normal: BTreeMap<String, Vec<String>>,
    members: Vec<String>,
}

/// The machine's own target: the dependencies built here (and no
/// other platform's, which need not even be downloaded).
fn host_triple() -> String {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap()
        .to_owned()
}

fn graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host_triple()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let normal = v["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().unwrap().to_owned())
                .collect();
            (n["id"].as_str().unwrap().to_owned(), deps)
        })
        .collect();
    let members = v["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    Graph {
        names,
        normal,
        members,
    }
}

impl Graph {
    fn id(&self, name: &str) -> &str {
        self.names
            .iter()
            .find(|(id, n)| n.as_str() == name && self.members.contains(id))
            .map(|(id, _)| id.as_str())
            .unwrap_or_else(|| panic!("no workspace crate {name}"))
    }

    /// Names of the crates `id` itself depends on (normal dependencies).
    fn direct(&self, id: &str) -> BTreeSet<&str> {
        self.normal
            .get(id)
            .into_iter()
            .flatten()
            .map(|dep| self.names[dep].as_str())
            .collect()
    }

    /// Names of every crate `id` pulls in (normal dependencies, transitively).
    fn closure(&self, id: &str) -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![id];
        while let Some(at) = todo.pop() {
            for dep in self.normal.get(at).into_iter().flatten() {
                if seen.insert(self.names[dep].as_str()) {
                    todo.push(dep);
                }
            }
        }
        seen
    }
}

/// Fails naming each of `forbidden` that `krate`'s `deps` hold.
fn assert_none_of(krate: &str, deps: &BTreeSet<&str>, forbidden: &[&str]) {
    let found: Vec<&&str> = forbidden.iter().filter(|n| deps.contains(**n)).collect();
    assert!(found.is_empty(), "{krate} pulls in {found:?}: {deps:?}");
}

#[test]
fn the_core_pulls_in_no_plugin_runtime_no_async_runtime_and_no_sockets() {
    let g = graph();
    let core = g.closure(g.id("ctihost-acd"));
    assert_none_of("ctihost-acd", &core, NOT_IN_THE_CORE);
    // The check is live: the binary's crate does pull them in.
    let host = g.closure(g.id("ctihost"));
    assert!(host.contains("wasmtime") && host.contains("tokio"));
}

#[test]
fn media_pulls_in_no_plugin_runtime_no_sip_stack_no_store_and_no_web() {
    let g = graph();
    let media = g.closure(g.id("ctihost-media"));
    assert_none_of("ctihost-media", &media, NOT_IN_MEDIA);
    // It does run on tokio's sockets and speaks the core's words.
    assert!(media.contains("tokio") && media.contains("ctihost-acd"));
}

#[test]
fn the_plugin_runtime_pulls_in_neither_the_core_nor_the_store() {
    let g = graph();
    let plugins = g.closure(g.id("ctihost-plugins"));
    assert_none_of("ctihost-plugins", &plugins, NOT_IN_PLUGINS);
    assert!(plugins.contains("wasmtime") && plugins.contains("ctihost-vocabulary"));
}

#[test]
fn sip_pulls_in_no_plugin_runtime_no_store_and_no_web() {
    let g = graph();
    let sip = g.closure(g.id("ctihost-sip"));
    assert_none_of("ctihost-sip", &sip, NOT_IN_SIP);
    assert!(sip.contains("rsip") && sip.contains("ctihost-media"));
}

#[test]
fn the_driver_names_neither_sip_nor_media_nor_the_web() {
    let g = graph();
    let center = g.direct(g.id("ctihost-center"));
    assert_none_of("ctihost-center", &center, NOT_NAMED_BY_THE_DRIVER);
    assert!(center.contains("ctihost-acd") && center.contains("ctihost-plugins"));
}

#[test]
fn only_the_web_room_and_the_binary_pull_in_the_web_server() {
    let g = graph();
    for id in &g.members {
        let name = g.names[id].as_str();
        if matches!(name, "ctihost" | "ctihost-api") || !name.starts_with("ctihost") {
            continue;
        }
        assert_none_of(name, &g.closure(id), &["axum"]);
    }
    assert!(g.direct(g.id("ctihost-api")).contains("axum"));
}

#[test]
fn no_host_crate_depends_on_one_above_it() {
    let g = graph();
    let floors: BTreeMap<&str, u32> = FLOORS.iter().copied().collect();
    for id in &g.members {
        let name = g.names[id].as_str();
        if !name.starts_with("ctihost") || name == "ctihost-sdk" {
            continue;
        }
        let floor = *floors
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not on the map: add it to FLOORS"));
        for dep in g.normal.get(id).into_iter().flatten() {
            let dep_name = g.names[dep].as_str();
            if let Some(&dep_floor) = floors.get(dep_name) {
                assert!(
                    dep_floor < floor,
                    "{name} (floor {floor}) depends on {dep_name} (floor {dep_floor})"
                );
            }
        }
    }
    // The SDK for plugin authors never imports the host.
    let sdk = g.closure(g.id("ctihost-sdk"));
    assert!(
        !sdk.iter().any(|n| floors.contains_key(n)),
        "ctihost-sdk pulls in a host crate: {sdk:?}"
    );
}
