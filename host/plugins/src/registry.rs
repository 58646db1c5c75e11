//! The set of loaded plugins: load pipeline, atomic swap, rollback, invoke.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument;
use wasmtime::component::Linker;

use super::artifact_cache::{ArtifactCache, CompileInfo};
use super::bindings::crm_connector::CrmConnector;
use super::bindings::recording_policy::RecordingPolicy;
use super::bindings::router::Router;
use super::bindings::screen_pop::ScreenPop;
use super::bindings::{CrmError, Customer, LookupKey};
use super::engine::{EngineSettings, SharedEngine};
use super::hook::{self, HookCall, HookOutput, Pre};
use super::kind::PluginKind;
use super::manifest::{Manifest, ManifestError};
use super::outbound_http::HttpGrant;
use super::sandbox::{CrmLink, InvocationState, PluginContext, PluginCounters};
use super::storage::{HistoryEntry, HistoryFilter, PluginStorage, StorageError};
use super::validate::DecisionScope;
use super::version::{Failure, Trigger, Version, short_hash};

/// Where a plugin's bytes come from; reloads read it again.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// A manifest file in the plugin directory.
    Manifest(PathBuf),
    /// A stock plugin compiled into the binary.
    Embedded {
        manifest: &'static str,
        component: &'static [u8],
    },
    /// A bare component with default limits (CLI `plugin invoke FILE`).
    Component { path: PathBuf, kind: PluginKind },
}

impl PluginSource {
    fn describe(&self) -> String {
        match self {
            PluginSource::Manifest(p) => p.display().to_string(),
            PluginSource::Embedded { .. } => "embedded".into(),
            PluginSource::Component { path, .. } => path.display().to_string(),
        }
    }

    fn read(&self) -> Result<(Manifest, Vec<u8>), LoadError> {
        match self {
            PluginSource::Manifest(path) => {
                let manifest = Manifest::from_file(path)?;
                let dir = path.parent().unwrap_or(Path::new("."));
                let file = manifest.component_path(dir);
                let bytes = std::fs::read(&file).map_err(|source| LoadError::Read {
                    path: file.clone(),
                    source,
                })?;
                Ok((manifest, bytes))
            }
            PluginSource::Embedded {
                manifest,
                component,
            } => {
                let manifest = Manifest::parse(manifest, Path::new("<embedded>"))?;
                Ok((manifest, component.to_vec()))
            }
            PluginSource::Component { path, kind } => {
                let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
                    path: path.clone(),
                    source,
                })?;
                Ok((Manifest::for_component(path, *kind), bytes))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin: {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no plugin named {0:?} is loaded")]
    NotLoaded(String),
    #[error("cannot build the plugin's HTTP client: {0}")]
    HttpClient(#[source] super::outbound_http::GrantError),
    #[error("the plugin's key-value store: {0}")]
    KeyValue(#[source] StorageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error(transparent)]
    Compile(#[from] super::artifact_cache::CompileError),
    #[error("component needs imports the host does not grant: {0}")]
    Imports(String),
    #[error("component does not implement world `{world}`: {message}")]
    WrongWorld {
        world: &'static str,
        message: String,
    },
    #[error("self-test failed on hook {hook}: {message}")]
    SelfTest { hook: &'static str, message: String },
    #[error(
        "version {version} of plugin {name} was rolled back after failures; it is not loaded again from the same files (change them, or roll forward by fixing the plugin)"
    )]
    RolledBack { name: String, version: String },
    #[error("plugin {name} is a {existing}; a {new} cannot replace it")]
    KindChange {
        name: String,
        existing: PluginKind,
        new: PluginKind,
    },
}

/// Why the plugin runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("wasm engine: {0:#}")]
    Engine(wasmtime::Error),
    #[error("linker for {kind}: {source:#}")]
    Linker {
        kind: PluginKind,
        source: wasmtime::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("no plugin named {0:?} is loaded")]
    NoSuchPlugin(String),
    #[error("plugin {name} is a {kind}; it has no hook {hook}")]
    WrongKind {
        name: String,
        kind: PluginKind,
        hook: &'static str,
    },
    /// The answer is not the asked hook's (a bug of the host, never of the plugin).
    #[error("plugin {name}'s answer to {hook} is another hook's output")]
    WrongOutput { name: String, hook: &'static str },
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("no plugin named {0:?} is loaded")]
    NoSuchPlugin(String),
    #[error(
        "plugin {0} has no earlier version to roll back to (none kept, or each was rolled back for its failures)"
    )]
    NoPrevious(String),
}

/// What a successful load did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub name: String,
    pub kind: PluginKind,
    pub version: String,
    pub previous: Option<String>,
    pub changed: bool,
    pub size: usize,
    pub compile: Option<CompileInfo>,
}

/// The answer of one hook invocation, as the caller uses it.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    pub plugin: String,
    /// Short content hash (logs).
    pub version: String,
    /// Full sha256 of the component that answered (call records).
    pub hash: String,
    pub hook: &'static str,
    pub output: HookOutput,
    /// Set when the plugin failed and `output` is the fallback.
    pub failure: Option<Failure>,
    pub elapsed_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub kind: PluginKind,
    pub version: String,
    pub previous: Option<String>,
    pub source: String,
    pub loaded_at_ms: u64,
    pub trigger: Trigger,
    pub size: usize,
    pub invocations: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    pub mean_us: f64,
    pub warm_instances: usize,
    pub counters: BTreeMap<String, i64>,
    /// Deadlines missed because the host was starved (not counted as failures).
    pub starved: u64,
    /// The plugin's key-value namespace against its quota.
    pub kv: super::sandbox::KvFigures,
}

/// Tries of a self-test call that the host starved before the load is
/// rejected (saying the host was too busy).
const SELF_TEST_ATTEMPTS: u32 = 5;

/// Earlier versions kept per plugin, newest last, for rollback.
pub const KEPT_VERSIONS: usize = 8;

struct Slot {
    current: ArcSwap<Version>,
    /// Earlier versions, newest last (at most [`KEPT_VERSIONS`]).
    previous: Mutex<Vec<Arc<Version>>>,
    source: Mutex<PluginSource>,
    counters: Arc<PluginCounters>,
}

pub struct HostSettings {
    pub engine: EngineSettings,
    /// Compiled-artifact cache; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Which crm-connector plugin serves routers' and screen-pops' lookups;
    /// `None` uses the first one loaded.
    pub crm_connector: Option<String>,
}

struct Inner {
    engine: SharedEngine,
    linkers: BTreeMap<&'static str, Linker<InvocationState>>,
    cache: ArtifactCache,
    storage: Arc<dyn PluginStorage>,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    crm_connector: Option<String>,
    /// The embedded version of each plugin that has one, as loaded at
    /// start-up: what serves again when a directory plugin's manifest is removed.
    embedded: Mutex<BTreeMap<String, PluginSource>>,
    /// Each plugin's key-value usage, shared by its versions.
    kv_usage: Mutex<BTreeMap<String, Arc<super::sandbox::KvUsage>>>,
    /// What the center has, for checking decisions (none: syntax only).
    scope: RwLock<Option<Arc<dyn DecisionScope>>>,
    /// Serialises loads so two triggers never race on one slot.
    load_lock: tokio::sync::Mutex<()>,
}

/// The plugin runtime. Cheap to clone.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

impl PluginHost {
    /// A runtime keeping its namespaces and history in `storage` (the
    /// host's store; any [`PluginStorage`] in tests and offline runs).
    pub fn new(
        settings: HostSettings,
        storage: impl PluginStorage + 'static,
    ) -> Result<Self, HostError> {
        let engine = SharedEngine::new(&settings.engine).map_err(HostError::Engine)?;
        let mut linkers = BTreeMap::new();
        for kind in PluginKind::ALL {
            linkers.insert(
                kind.world(),
                linker(&engine.engine, kind)
                    .map_err(|source| HostError::Linker { kind, source })?,
            );
        }
        let cache = ArtifactCache::new(settings.cache_dir, engine.fingerprint());
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linkers,
                cache,
                storage: Arc::new(storage),
                slots: RwLock::new(BTreeMap::new()),
                crm_connector: settings.crm_connector,
                embedded: Mutex::new(BTreeMap::new()),
                scope: RwLock::new(None),
                kv_usage: Mutex::new(BTreeMap::new()),
                load_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        &self.inner.engine.engine
    }

    pub fn pooling(&self) -> bool {
        self.inner.engine.pooling
    }

    /// From now on, decisions (and self-tests) are checked against what the
    /// center has: a queue, agent, prompt or skill it lacks is a failure.
    pub fn set_scope(&self, scope: Arc<dyn DecisionScope>) {
        *self.inner.scope.write() = Some(scope);
    }

    fn scope(&self) -> Option<Arc<dyn DecisionScope>> {
        self.inner.scope.read().clone()
    }

    /// Load (or reload) a plugin; on success new invocations use it at once.
    /// On failure the version that was serving keeps serving.
    pub async fn load(
        &self,
        source: PluginSource,
        trigger: Trigger,
    ) -> Result<LoadReport, LoadError> {
        let _guard = self.inner.load_lock.lock().await;
        let origin = source.describe();
        let result = self.load_locked(source.clone(), trigger).await;
        if let (Ok(r), PluginSource::Embedded { .. }) = (&result, &source) {
            self.inner
                .embedded
                .lock()
                .insert(r.name.clone(), source.clone());
        }
        match &result {
            Ok(r) if r.changed => {
                tracing::info!(plugin = %r.name, version = %r.version, previous = ?r.previous, %trigger, source = %origin, "plugin version loaded");
                self.history(
                    &r.name,
                    &r.version,
                    trigger,
                    "loaded",
                    &format!("from {origin}"),
                );
            }
            Ok(r) => {
                if matches!(trigger, Trigger::Admin | Trigger::Cli) {
                    self.history(
                        &r.name,
                        &r.version,
                        trigger,
                        "unchanged",
                        "same component and manifest",
                    );
                }
            }
            Err(e) => {
                let name = self.name_hint(&source);
                tracing::warn!(plugin = %name, %trigger, source = %origin, error = %e, "plugin load rejected; previous version keeps serving");
                self.history(&name, "", trigger, "rejected", &e.to_string());
            }
        }
        result
    }

    /// The plugin a source is for, to file a rejection under the right name:
    /// the manifest's name when it parses, else the slot loaded from there.
    fn name_hint(&self, source: &PluginSource) -> String {
        if let PluginSource::Manifest(path) = source
            && let Ok(m) = Manifest::from_file(path)
        {
            return m.name;
        }
        let origin = source.describe();
        let slots = self.inner.slots.read();
        slots
            .iter()
            .find(|(_, s)| s.source.lock().describe() == origin)
            .map(|(n, _)| n.clone())
            .unwrap_or(origin)
    }

    async fn load_locked(
        &self,
        source: PluginSource,
        trigger: Trigger,
    ) -> Result<LoadReport, LoadError> {
        let (manifest, bytes) = source.read()?;
        let component_hash = hex::encode(Sha256::digest(&bytes));
        let hash = version_id(&component_hash, &manifest);
        let existing = self.inner.slots.read().get(&manifest.name).cloned();
        if let Some(slot) = &existing {
            let cur = slot.current.load();
            if cur.kind() != manifest.kind {
                return Err(LoadError::KindChange {
                    name: manifest.name,
                    existing: cur.kind(),
                    new: manifest.kind,
                });
            }
            if let Some(bad) = slot
                .previous
                .lock()
                .iter()
                .find(|v| v.hash == hash && v.bad.load(Ordering::Relaxed))
            {
                return Err(LoadError::RolledBack {
                    name: manifest.name,
                    version: bad.short().to_owned(),
                });
            }
            if cur.hash == hash && cur.manifest == manifest {
                *slot.source.lock() = source;
                return Ok(LoadReport {
                    name: manifest.name,
                    kind: cur.kind(),
                    version: cur.short().to_owned(),
                    previous: None,
                    changed: false,
                    size: bytes.len(),
                    compile: None,
                });
            }
        }
        check_component_header(&bytes)?;
        let size = bytes.len();
        let (component, compile) = self
            .inner
            .cache
            .load(self.engine(), &component_hash, Arc::new(bytes))
            .await?;
        let kind = manifest.kind;
        let instance_pre = self.inner.linkers[kind.world()]
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Imports(format!("{e:#}")))?;
        let pre = Pre::new(kind, instance_pre).map_err(|e| LoadError::WrongWorld {
            world: kind.world(),
            message: format!("{e:#}"),
        })?;

        let counters = existing
            .as_ref()
            .map(|s| s.counters.clone())
            .unwrap_or_default();
        let version_short = short_hash(&hash).to_owned();
        // Self-test in a sandbox with no CRM, no HTTP and no key-value store:
        // it proves the plugin answers, and answers sanely when the CRM is down.
        let test_ctx = Arc::new(self.context(&manifest, &version_short, counters.clone(), true)?);
        let scope = self.scope();
        for call in hook::self_test_calls(kind) {
            // A starved attempt says nothing about the plugin (a load while
            // the host is saturated): tried again, a few times.
            let mut attempt = 0;
            loop {
                attempt += 1;
                match super::version::execute(
                    self.engine(),
                    &pre,
                    &test_ctx,
                    &manifest.limits,
                    (0, None),
                    &call,
                    scope.as_deref(),
                )
                .await
                {
                    Ok(_) => break,
                    Err(f) if !f.kind.is_plugins_fault() && attempt < SELF_TEST_ATTEMPTS => {
                        tracing::info!(plugin = %manifest.name, hook = call.name(), attempt, "self-test starved by a busy host; trying again");
                    }
                    Err(f) => {
                        return Err(LoadError::SelfTest {
                            hook: call.name(),
                            message: f.to_string(),
                        });
                    }
                }
            }
        }
        let ctx = Arc::new(self.context(&manifest, &version_short, counters.clone(), false)?);
        let name = manifest.name.clone();
        let stock = matches!(source, PluginSource::Embedded { .. });
        let version = Arc::new(Version::new(
            manifest,
            (hash, component_hash),
            size,
            (trigger, stock),
            compile,
            pre,
            ctx,
        ));
        let previous = match existing {
            Some(slot) => {
                let old = slot.current.swap(version);
                let prev = old.short().to_owned();
                keep_previous(&mut slot.previous.lock(), old);
                *slot.source.lock() = source;
                Some(prev)
            }
            None => {
                self.inner.slots.write().insert(
                    name.clone(),
                    Arc::new(Slot {
                        current: ArcSwap::new(version),
                        previous: Mutex::new(Vec::new()),
                        source: Mutex::new(source),
                        counters,
                    }),
                );
                None
            }
        };
        Ok(LoadReport {
            name,
            kind,
            version: version_short,
            previous,
            changed: true,
            size,
            compile: Some(compile),
        })
    }

    fn context(
        &self,
        m: &Manifest,
        version: &str,
        counters: Arc<PluginCounters>,
        self_test: bool,
    ) -> Result<PluginContext, LoadError> {
        let http = if !self_test
            && m.kind == PluginKind::CrmConnector
            && !m.capabilities.http_hosts.is_empty()
        {
            Some(Arc::new(
                HttpGrant::new(
                    m.capabilities.http_hosts.clone(),
                    m.http_timeout(),
                    m.http_max_response_bytes(),
                    m.capabilities.http_ca_pem.as_deref(),
                )
                .map_err(LoadError::HttpClient)?,
            ))
        } else {
            None
        };
        let crm: Option<Arc<dyn CrmLink>> =
            if !self_test && matches!(m.kind, PluginKind::Router | PluginKind::ScreenPop) {
                Some(Arc::new(HostCrmLink {
                    host: Arc::downgrade(&self.inner),
                }))
            } else {
                None
            };
        let kv = if self_test {
            None
        } else {
            Some(
                self.inner
                    .storage
                    .namespace(&m.name)
                    .map_err(LoadError::KeyValue)?,
            )
        };
        let kv_usage = match &kv {
            Some(kv) => {
                let mut usage = self.inner.kv_usage.lock();
                match usage.get(&m.name) {
                    Some(u) => u.clone(),
                    None => {
                        let u = Arc::new(
                            super::sandbox::KvUsage::scan(kv.as_ref())
                                .map_err(LoadError::KeyValue)?,
                        );
                        usage.insert(m.name.clone(), u.clone());
                        u
                    }
                }
            }
            None => Arc::default(),
        };
        Ok(PluginContext {
            name: m.name.clone(),
            version: version.to_owned(),
            config: m.config.clone(),
            config_json: m.config_json(),
            kv,
            kv_usage,
            kv_quota: (
                u64::from(m.limits.kv_max_kb) * 1024,
                u64::from(m.limits.kv_max_keys),
            ),
            counters,
            http,
            crm,
            memory_bytes: m.limits.memory_mb as usize * 1024 * 1024,
            max_stdio_bytes: m.limits.max_stdio_bytes as usize,
            self_test,
        })
    }

    fn history(&self, plugin: &str, version: &str, trigger: Trigger, outcome: &str, message: &str) {
        let entry = HistoryEntry {
            at_ms: ctihost_ground::clock::now_ms(),
            plugin: plugin.to_owned(),
            version: version.to_owned(),
            trigger: trigger.to_string(),
            outcome: outcome.to_owned(),
            message: message.to_owned(),
        };
        if let Err(e) = self.inner.storage.record_history(&entry) {
            tracing::error!(error = %e, plugin, "cannot record plugin history");
        }
    }

    /// Run one hook on the plugin's current version. Plugin failures do not
    /// make this fail: the answer is then the hook's fallback, marked as such.
    pub async fn invoke(&self, name: &str, call: HookCall) -> Result<Invocation, InvokeError> {
        invoke(&self.inner, name, call).await
    }

    /// Re-read a plugin from where it was loaded.
    pub async fn reload(&self, name: &str, trigger: Trigger) -> Result<LoadReport, LoadError> {
        let source = {
            let slots = self.inner.slots.read();
            let slot = slots
                .get(name)
                .ok_or_else(|| LoadError::NotLoaded(name.to_owned()))?;
            slot.source.lock().clone()
        };
        self.load(source, trigger).await
    }

    /// Load every manifest in `dir`; returns each one's outcome.
    pub async fn load_dir(
        &self,
        dir: &Path,
        trigger: Trigger,
    ) -> Vec<(PathBuf, Result<LoadReport, LoadError>)> {
        let mut manifests: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read plugin directory");
                return vec![];
            }
        };
        manifests.sort();
        let mut out = Vec::new();
        for m in manifests {
            let r = self.load(PluginSource::Manifest(m.clone()), trigger).await;
            out.push((m, r));
        }
        out
    }

    /// The plugin loaded from `manifest` loses that source (its manifest was
    /// removed from the plugin directory): its embedded version serves again
    /// where there is one, otherwise it is unloaded. Returns the plugin's name.
    pub async fn unload_manifest(&self, manifest: &Path, trigger: Trigger) -> Option<String> {
        let origin = PluginSource::Manifest(manifest.to_owned()).describe();
        let name = {
            let slots = self.inner.slots.read();
            slots
                .iter()
                .find(|(_, s)| s.source.lock().describe() == origin)
                .map(|(n, _)| n.clone())?
        };
        let embedded = self.inner.embedded.lock().get(&name).cloned();
        match embedded {
            Some(source) => match self.load(source, trigger).await {
                Ok(r) => {
                    tracing::info!(plugin = %name, version = %r.version, manifest = %manifest.display(), "manifest removed; the embedded version serves again");
                }
                Err(e) => {
                    tracing::error!(plugin = %name, error = %e, "manifest removed but the embedded version failed to load; the directory version keeps serving");
                }
            },
            None => {
                let _guard = self.inner.load_lock.lock().await;
                let removed = self.inner.slots.write().remove(&name);
                if let Some(slot) = removed {
                    let version = slot.current.load().short().to_owned();
                    tracing::warn!(plugin = %name, %version, manifest = %manifest.display(), "manifest removed; plugin unloaded");
                    self.history(
                        &name,
                        &version,
                        trigger,
                        "unloaded",
                        &format!("{origin} was removed"),
                    );
                }
            }
        }
        Some(name)
    }

    /// Put back the newest earlier version that served well: not rolled back
    /// for its failures and not failing when it was replaced (the stock one
    /// is the oldest kept). The version rolled back from is kept, so an
    /// operator's rollback can be undone.
    pub fn rollback(&self, name: &str, trigger: Trigger) -> Result<LoadReport, RollbackError> {
        rollback(&self.inner, name, trigger)
    }

    pub fn list(&self) -> Vec<PluginStatus> {
        let slots = self.inner.slots.read();
        slots
            .iter()
            .map(|(name, slot)| {
                let v = slot.current.load();
                let inv = v.stats.invocations.load(Ordering::Relaxed);
                PluginStatus {
                    name: name.clone(),
                    kind: v.kind(),
                    version: v.short().to_owned(),
                    previous: slot.previous.lock().last().map(|p| p.short().to_owned()),
                    source: slot.source.lock().describe(),
                    loaded_at_ms: v.loaded_at_ms,
                    trigger: v.trigger,
                    size: v.size,
                    invocations: inv,
                    failures: v.stats.failures.load(Ordering::Relaxed),
                    consecutive_failures: v.stats.consecutive_failures(),
                    mean_us: if inv == 0 {
                        0.0
                    } else {
                        v.stats.total_ns.load(Ordering::Relaxed) as f64 / inv as f64 / 1000.0
                    },
                    warm_instances: v.warm_instances(),
                    counters: slot.counters.snapshot(),
                    starved: v.stats.starved.load(Ordering::Relaxed),
                    kv: self
                        .inner
                        .kv_usage
                        .lock()
                        .get(name)
                        .map(|u| u.figures())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Compile `bytes` into the artifact cache (if any) and say how long it took.
    pub async fn compile(&self, bytes: Vec<u8>) -> Result<CompileInfo, LoadError> {
        check_component_header(&bytes)?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let (_, info) = self
            .inner
            .cache
            .load(self.engine(), &hash, Arc::new(bytes))
            .await?;
        Ok(info)
    }

    /// Names of the imports and exports of the component serving `name`.
    pub fn interface(&self, name: &str) -> Option<(Vec<String>, Vec<String>)> {
        let slot = self.inner.slots.read().get(name).cloned()?;
        let v = slot.current.load_full();
        let ty = v.component().component_type();
        let engine = self.engine();
        let imports = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
        let exports = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
        Some((imports, exports))
    }

    /// The full version hash currently serving `name`.
    pub fn current_version(&self, name: &str) -> Option<String> {
        self.inner
            .slots
            .read()
            .get(name)
            .map(|s| s.current.load().hash.clone())
    }

    pub fn history_where(
        &self,
        filter: &HistoryFilter<'_>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StorageError> {
        self.inner.storage.history_where(filter, limit)
    }

    pub fn history_of(
        &self,
        name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StorageError> {
        self.inner.storage.history(name, limit)
    }
}

/// Failure lines written per plugin a second: the first of a burst are
/// seen with their call ids, the rest counted (a plugin that fails every
/// call at 1,000 calls/s must not write 1,000 lines a second).
const FAILURE_LINES_PER_SECOND: u64 = 10;

/// The WARN line of a failed call, within [`FAILURE_LINES_PER_SECOND`].
fn warn_failure(name: &str, version: &Version, call: &HookCall, f: &Failure) {
    let fault = f.kind.is_plugins_fault();
    let cause = if fault {
        "plugin-failed"
    } else {
        "plugin-starved"
    };
    let Some(suppressed) = ctihost_ground::log_limit::allow_keyed(
        cause,
        name,
        FAILURE_LINES_PER_SECOND,
        ctihost_ground::clock::now_ms(),
    ) else {
        return;
    };
    if fault {
        tracing::warn!(plugin = name, version = version.short(), hook = call.name(), call_id = call.call_id(), failure = ?f.kind, error = %f.message, suppressed, "plugin failed; fallback used");
    } else {
        tracing::warn!(plugin = name, version = version.short(), hook = call.name(), call_id = call.call_id(), failure = ?f.kind, error = %f.message, suppressed, "plugin starved by the host (CPU, a slow host call, or no free instance slot); fallback used (not counted against the plugin)");
    }
}

fn invoke<'a>(
    inner: &'a Arc<Inner>,
    name: &'a str,
    call: HookCall,
) -> Pin<Box<dyn Future<Output = Result<Invocation, InvokeError>> + Send + 'a>> {
    Box::pin(async move {
        let slot = inner
            .slots
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| InvokeError::NoSuchPlugin(name.to_owned()))?;
        // Pin the version: a swap during this call does not affect it.
        let version = slot.current.load_full();
        if version.kind() != call.kind() {
            return Err(InvokeError::WrongKind {
                name: name.to_owned(),
                kind: version.kind(),
                hook: call.name(),
            });
        }
        let span = tracing::info_span!(
            "plugin",
            plugin = name,
            version = version.short(),
            hook = call.name(),
            call_id = call.call_id()
        );
        let started = Instant::now();
        let scope = inner.scope.read().clone();
        let result = version
            .execute(&inner.engine.engine, &call, scope.as_deref())
            .instrument(span)
            .await;
        let elapsed_us = started.elapsed().as_secs_f64() * 1e6;
        let (output, failure) = match result {
            Ok(out) => (out, None),
            Err(f) if !f.kind.is_plugins_fault() => {
                warn_failure(name, &version, &call, &f);
                (call.fallback(&version.manifest.fallback), Some(f))
            }
            Err(f) => {
                warn_failure(name, &version, &call, &f);
                let consecutive = version.stats.consecutive_of(call.name());
                if consecutive >= version.manifest.limits.rollback_after_failures.max(1)
                    && Arc::ptr_eq(&slot.current.load(), &version)
                    // Once per version: a version with nothing to go back to
                    // keeps failing at the call rate, and each attempt would
                    // write a line and a history row.
                    && !version.bad.swap(true, Ordering::Relaxed)
                {
                    match rollback(inner, name, Trigger::AutoRollback) {
                        Ok(r) => {
                            tracing::error!(plugin = name, bad = version.short(), restored = %r.version, hook = call.name(), consecutive, "new version failed repeatedly; rolled back")
                        }
                        Err(e) => {
                            tracing::error!(plugin = name, bad = version.short(), error = %e, "automatic rollback found no version to go back to; the failing version keeps serving with its fallback")
                        }
                    }
                }
                (call.fallback(&version.manifest.fallback), Some(f))
            }
        };
        Ok(Invocation {
            plugin: name.to_owned(),
            version: version.short().to_owned(),
            hash: version.hash.clone(),
            hook: call.name(),
            output,
            failure,
            elapsed_us,
        })
    })
}

/// Keep `old` among the earlier versions (newest last, bounded). A version
/// that is still there is moved to the end rather than kept twice.
fn keep_previous(previous: &mut Vec<Arc<Version>>, old: Arc<Version>) {
    previous.retain(|v| !Arc::ptr_eq(v, &old));
    previous.push(old);
    while previous.len() > KEPT_VERSIONS {
        // The oldest that is not the stock one goes first: the stock version
        // stays the last resort.
        let i = previous.iter().position(|v| !v.stock).unwrap_or(0);
        previous.remove(i);
    }
}

/// The version id: the component's hash and the manifest together.
fn version_id(component_hash: &str, manifest: &Manifest) -> String {
    let mut h = Sha256::new();
    h.update(component_hash.as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(manifest).unwrap_or_default());
    hex::encode(h.finalize())
}

fn rollback(inner: &Arc<Inner>, name: &str, trigger: Trigger) -> Result<LoadReport, RollbackError> {
    let slot = inner
        .slots
        .read()
        .get(name)
        .cloned()
        .ok_or_else(|| RollbackError::NoSuchPlugin(name.to_owned()))?;
    let mut prev = slot.previous.lock();
    // The newest version not known to be bad: never rolled back for its
    // failures, not failing when it was replaced. One that was replaced
    // before it served a call qualifies (its self-test passed); if it fails,
    // it is rolled back in turn and never chosen again.
    let at = prev
        .iter()
        .rposition(|v| v.acceptable())
        .ok_or_else(|| RollbackError::NoPrevious(name.to_owned()))?;
    let target = prev.remove(at);
    target.stats.reset_runs();
    let old = slot.current.swap(target.clone());
    let report = LoadReport {
        name: name.to_owned(),
        kind: target.kind(),
        version: target.short().to_owned(),
        previous: Some(old.short().to_owned()),
        changed: true,
        size: target.size,
        compile: None,
    };
    keep_previous(&mut prev, old);
    drop(prev);
    let entry = HistoryEntry {
        at_ms: ctihost_ground::clock::now_ms(),
        plugin: name.to_owned(),
        version: target.hash.clone(),
        trigger: trigger.to_string(),
        outcome: "rolled-back".into(),
        message: format!("from {}", report.previous.as_deref().unwrap_or("?")),
    };
    if let Err(e) = inner.storage.record_history(&entry) {
        tracing::error!(error = %e, plugin = name, "cannot record plugin history");
    }
    Ok(report)
}

struct HostCrmLink {
    host: Weak<Inner>,
}

impl CrmLink for HostCrmLink {
    fn lookup(
        &self,
        call_id: String,
        key: LookupKey,
    ) -> Pin<Box<dyn Future<Output = Result<Option<Customer>, CrmError>> + Send + '_>> {
        Box::pin(async move {
            let Some(inner) = self.host.upgrade() else {
                return Err(CrmError::Unavailable("host shutting down".into()));
            };
            let connector = match &inner.crm_connector {
                Some(n) => Some(n.clone()),
                None => inner
                    .slots
                    .read()
                    .iter()
                    .find(|(_, s)| s.current.load().kind() == PluginKind::CrmConnector)
                    .map(|(n, _)| n.clone()),
            };
            let Some(connector) = connector else {
                return Err(CrmError::Denied("no CRM connector plugin is loaded".into()));
            };
            tracing::debug!(call_id, connector, "CRM lookup");
            match invoke(&inner, &connector, HookCall::Lookup { key }).await {
                Ok(Invocation {
                    output: HookOutput::Lookup(r),
                    ..
                }) => r,
                Ok(_) => Err(CrmError::Unavailable(
                    "connector answered another hook".into(),
                )),
                Err(e) => Err(CrmError::Denied(e.to_string())),
            }
        })
    }
}

fn linker(
    engine: &wasmtime::Engine,
    kind: PluginKind,
) -> wasmtime::Result<Linker<InvocationState>> {
    use wasmtime::component::HasSelf;
    let mut l = Linker::new(engine);
    // WASI is linked because guest standard libraries import it; the context
    // grants no files, environment, sockets or stdin (see sandbox.rs).
    wasmtime_wasi::p2::add_to_linker_async(&mut l)?;
    match kind {
        PluginKind::Router => Router::add_to_linker::<_, HasSelf<_>>(&mut l, |s| s)?,
        PluginKind::ScreenPop => ScreenPop::add_to_linker::<_, HasSelf<_>>(&mut l, |s| s)?,
        PluginKind::CrmConnector => CrmConnector::add_to_linker::<_, HasSelf<_>>(&mut l, |s| s)?,
        PluginKind::RecordingPolicy => {
            RecordingPolicy::add_to_linker::<_, HasSelf<_>>(&mut l, |s| s)?
        }
    }
    Ok(l)
}

/// Name what the bytes are when they are not a component.
pub fn check_component_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotAComponent(
            "the file does not start with the WebAssembly magic bytes".into(),
        ));
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(LoadError::NotAComponent(
            "this is a core WebAssembly module; build for wasm32-wasip2 (or wrap it with `wasm-tools component new`)".into(),
        )),
        _ => Err(LoadError::NotAComponent("unknown WebAssembly version or layer".into())),
    }
}
