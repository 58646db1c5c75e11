//! Shared helpers of the black-box tests: real components built from source,
//! real HTTP servers on loopback, the real binary.
#![allow(dead_code, clippy::unwrap_used)]

pub mod desk;
pub mod kamailio;
pub mod server;
pub mod sipp;
pub mod toolchains;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ctihost::plugins::bindings::{CallInfo, RouteDecision};
use ctihost::plugins::engine::EngineSettings;
use ctihost::plugins::hook::sample_call;
use ctihost::plugins::{
    HookCall, HookOutput, HostSettings, Invocation, LoadError, LoadReport, PluginHost,
    PluginSource, Trigger,
};
use ctihost::store::Store;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Build every guest in `plugins/` (stock and test plugins) once per test
/// process and return the directory holding the components.
pub fn wasm_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = root().join("target").join("wasm");
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(root().join("plugins"))
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                    "--workspace",
                    "--target-dir",
                ])
                .arg(&target);
            for (k, _) in std::env::vars() {
                if (k.starts_with("CARGO_") && k != "CARGO_HOME")
                    || k.starts_with("RUSTC")
                    || k == "RUSTFLAGS"
                {
                    cmd.env_remove(&k);
                }
            }
            let out = cmd.output().expect("run cargo for the guest plugins");
            assert!(
                out.status.success(),
                "guest build failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            target.join("wasm32-wasip2").join("release")
        })
        .clone()
}

pub fn wasm(name: &str) -> PathBuf {
    wasm_dir().join(format!("{name}.wasm"))
}

/// A valid variant of a component with a different content hash: a custom
/// section appended (sections may follow in any order in a component).
pub fn variant_of(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"ctihost-test-variant";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, payload.len());
    out.extend_from_slice(&payload);
    out
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub struct TestHost {
    pub host: PluginHost,
    /// Where the host keeps plugin data (the center's records in tests that run one).
    pub store: Store,
    pub dir: tempfile::TempDir,
}

impl TestHost {
    pub fn new() -> Self {
        Self::with_max_instances(64)
    }

    /// A host whose instance pool holds `max_instances` at once.
    pub fn with_max_instances(max_instances: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let host = PluginHost::new(
            HostSettings {
                engine: EngineSettings {
                    max_instances,
                    ..EngineSettings::default()
                },
                // Shared by every test: artifacts are keyed by component hash and
                // engine fingerprint, written atomically, so sharing is safe and
                // the 12-18 MB Python/JS components compile once per checkout.
                cache_dir: Some(root().join("target").join("test-artifact-cache")),
                crm_connector: None,
            },
            store.clone(),
        )
        .unwrap();
        Self { host, store, dir }
    }

    /// Write `<name>.toml` (and copy the component) into the plugin directory.
    pub fn plugin_dir(&self) -> PathBuf {
        let d = self.dir.path().join("plugins.d");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub fn write_plugin(&self, name: &str, kind: &str, component: &[u8], extra: &str) -> PathBuf {
        let d = self.plugin_dir();
        let file = format!("{name}.wasm");
        std::fs::write(d.join(&file), component).unwrap();
        let manifest = d.join(format!("{name}.toml"));
        std::fs::write(
            &manifest,
            format!("name = \"{name}\"\nkind = \"{kind}\"\nfile = \"{file}\"\n{extra}\n"),
        )
        .unwrap();
        manifest
    }
}

impl TestHost {
    pub async fn load(&self, manifest: &Path, trigger: Trigger) -> Result<LoadReport, LoadError> {
        self.host
            .load(PluginSource::Manifest(manifest.to_owned()), trigger)
            .await
    }

    /// Install and load the test router under `name` with extra manifest text.
    pub async fn load_test_router(&self, name: &str, extra: &str) -> LoadReport {
        let m = self.write_plugin(
            name,
            "router",
            &std::fs::read(wasm("test_router")).unwrap(),
            extra,
        );
        self.load(&m, Trigger::Startup).await.unwrap()
    }

    /// One route call on plugin `name` with a standard call.
    pub async fn route(&self, name: &str) -> Invocation {
        self.host
            .invoke(
                name,
                HookCall::Route {
                    call: call("+8613700000001", "95588"),
                },
            )
            .await
            .unwrap()
    }
}

/// The queue a routing invocation chose, or "trap" when it failed.
pub fn outcome(inv: &Invocation) -> String {
    match (&inv.failure, &inv.output) {
        (Some(_), _) => "trap".to_string(),
        (None, HookOutput::Route(RouteDecision::Queue(q))) => q.queue.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

pub fn call(caller: &str, dialed: &str) -> CallInfo {
    let mut c = sample_call();
    c.call_id = format!("call-{caller}-{dialed}");
    c.caller = caller.into();
    c.dialed = dialed.into();
    c
}

/// A CRM on loopback serving customers by phone as JSON; counts requests.
pub struct Crm {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub customers: Arc<Mutex<BTreeMap<String, serde_json::Value>>>,
    /// Status to answer with instead of looking up (0 = normal).
    pub force_status: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Crm {
    pub async fn start() -> Self {
        Self::serve(None).await
    }

    /// The same CRM over HTTPS with this certificate chain and key (PEM files).
    pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Self {
        Self::serve(Some((cert.to_owned(), key.to_owned()))).await
    }

    async fn serve(tls: Option<(std::path::PathBuf, std::path::PathBuf)>) -> Self {
        use axum::extract::{Path, State};
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        type S = (
            Arc<AtomicUsize>,
            Arc<Mutex<BTreeMap<String, serde_json::Value>>>,
            Arc<AtomicUsize>,
        );
        async fn by_phone(
            State((hits, customers, force)): State<S>,
            Path(phone): Path<String>,
        ) -> axum::response::Response {
            hits.fetch_add(1, Ordering::SeqCst);
            let f = force.load(Ordering::SeqCst);
            if f != 0 {
                return StatusCode::from_u16(f as u16).unwrap().into_response();
            }
            match customers.lock().unwrap().get(&phone) {
                Some(c) => axum::Json(c.clone()).into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        let hits = Arc::new(AtomicUsize::new(0));
        let customers = Arc::new(Mutex::new(BTreeMap::new()));
        let force = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/customers/by-phone/{phone}", axum::routing::get(by_phone))
            // Accounts are kept in the same table under "account:NUMBER".
            .route(
                "/customers/by-account/{account}",
                axum::routing::get(|state: State<S>, Path(account): Path<String>| async move {
                    by_phone(state, Path(format!("account:{account}"))).await
                }),
            )
            .with_state((hits.clone(), customers.clone(), force.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = match tls {
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
            Some((cert, key)) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .unwrap();
                let listener = listener.into_std().unwrap();
                tokio::spawn(async move {
                    let _ = axum_server::from_tcp_rustls(listener, config)
                        .unwrap()
                        .serve(app.into_make_service())
                        .await;
                })
            }
        };
        Self {
            addr,
            hits,
            customers,
            force_status: force,
            _task: task,
        }
    }

    pub fn add(&self, phone: &str, customer: serde_json::Value) {
        self.customers
            .lock()
            .unwrap()
            .insert(phone.to_owned(), customer);
    }

    /// A customer found by account number.
    pub fn add_account(&self, account: &str, customer: serde_json::Value) {
        self.add(&format!("account:{account}"), customer);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The stock CRM connector's manifest, pointed at `crm` and allowed only `allowed`.
pub fn crm_manifest_extra(base_url: &str, allowed: &str) -> String {
    format!(
        "[limits]\nmemory_mb = 16\ndeadline_ms = 2000\n[capabilities]\nhttp_hosts = [\"{allowed}\"]\nhttp_timeout_ms = 1500\n[config]\nbase_url = \"{base_url}\"\n"
    )
}

/// The embedded manifest of a stock plugin, with the `[config]` and limits it ships with.
pub fn stock_manifest(name: &str) -> &'static str {
    ctihost::stock_plugins::STOCK
        .iter()
        .find(|p| p.name == name)
        .unwrap()
        .manifest
}

/// Poll `f` until it returns Some or the timeout passes.
pub async fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The stock skills router without its business hours and without asking
/// callers the CRM does not know for an account number, so that tests not
/// about those rules do not depend on the time of day and reach the menu at once.
pub fn always_open_router(dir: &std::path::Path) -> std::path::PathBuf {
    let plugins = dir.join("router.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(wasm("skills_router"), plugins.join("skills_router.wasm")).unwrap();
    let manifest = without_table(
        &without_hours(stock_manifest("skills-router")),
        "[config.identify]",
    );
    assert!(!manifest.contains("after_hours"), "{manifest}");
    assert!(!manifest.contains("[config.identify]"), "{manifest}");
    std::fs::write(plugins.join("skills-router.toml"), manifest).unwrap();
    plugins
}

/// A skills-router-shaped manifest without its `[config.hours]` table.
pub fn without_hours(manifest: &str) -> String {
    without_table(manifest, "[config.hours]")
}

/// A manifest without the TOML table whose header line is `header`.
pub fn without_table(manifest: &str, header: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in manifest.lines() {
        if line.starts_with(header) {
            skipping = true;
        } else if skipping && line.starts_with('[') {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Resident memory of a process, KiB (0 when unknown).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Load a stock plugin from its shipped manifest and the component built from source.
pub async fn load_stock(t: &TestHost, name: &str, file: &str) {
    let d = t.plugin_dir();
    std::fs::copy(wasm(file.trim_end_matches(".wasm")), d.join(file)).unwrap();
    let manifest = d.join(format!("{name}.toml"));
    std::fs::write(&manifest, stock_manifest(name)).unwrap();
    t.load(&manifest, Trigger::Startup).await.unwrap();
}

/// A TLS client configuration trusting the certificates of the PEM file
/// `ca` and nothing else (ring, as the host).
pub fn tls_client(ca: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// `openssl` (the test tool) makes a bank's CA and a server certificate it signs for
/// 127.0.0.1, as files `NAME-ca.pem`, `NAME.pem`, `NAME.key` in `dir`.
pub fn bank_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let script = format!(
        "set -e\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
           -subj '/CN={name} CA' -keyout {name}-ca.key -out {name}-ca.pem\n\
         openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
           -subj /CN=ctihost.bank.example -keyout {name}.key -out {name}.csr\n\
         printf 'subjectAltName=IP:127.0.0.1,DNS:ctihost.bank.example\\nbasicConstraints=CA:FALSE\\n' > {name}.ext\n\
         openssl x509 -req -in {name}.csr -CA {name}-ca.pem -CAkey {name}-ca.key \
           -CAcreateserial -days 2 -extfile {name}.ext -out {name}.pem\n"
    );
    openssl(dir, &script);
    (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

/// `openssl` makes a client CA `NAME-client-ca.pem` and a client
/// certificate it signs for the DNS name `dns` (extended key usage
/// clientAuth); returns the CA and one PEM holding the certificate and its
/// key (what baresip's `sip_certificate` takes).
pub fn client_certificate(dir: &Path, name: &str, dns: &str) -> (PathBuf, PathBuf) {
    let script = format!(
        "set -e\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
           -subj '/CN={name} client CA' -keyout {name}-client-ca.key -out {name}-client-ca.pem\n\
         openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
           -subj /CN={dns} -keyout {name}-client.key -out {name}-client.csr\n\
         printf 'subjectAltName=DNS:{dns}\\nextendedKeyUsage=clientAuth\\nbasicConstraints=CA:FALSE\\n' > {name}-client.ext\n\
         openssl x509 -req -in {name}-client.csr -CA {name}-client-ca.pem -CAkey {name}-client-ca.key \
           -CAcreateserial -days 2 -extfile {name}-client.ext -out {name}-client.crt\n\
         cat {name}-client.crt {name}-client.key > {name}-client.pem\n"
    );
    openssl(dir, &script);
    (
        dir.join(format!("{name}-client-ca.pem")),
        dir.join(format!("{name}-client.pem")),
    )
}

/// Run an `sh` script of `openssl` commands in `dir`; it must succeed.
fn openssl(dir: &Path, script: &str) {
    let o = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("openssl (`make test-deps` installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
