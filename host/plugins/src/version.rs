//! One loaded version of a plugin and how an invocation runs on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use wasmtime::{Engine, Store, UpdateDeadline};

use super::artifact_cache::CompileInfo;
use super::hook::{HookCall, HookOutput, Instance, Pre};
use super::kind::PluginKind;
use super::manifest::{Limits, Manifest};
use super::sandbox::{DeadlineExceeded, InvocationState, MemoryLimitExceeded, PluginContext};
use super::validate::DecisionScope;

/// Who asked for a load or a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    Startup,
    Watch,
    Admin,
    Cli,
    Rollback,
    AutoRollback,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Trigger::Startup => "startup",
            Trigger::Watch => "watch",
            Trigger::Admin => "admin",
            Trigger::Cli => "cli",
            Trigger::Rollback => "rollback",
            Trigger::AutoRollback => "auto-rollback",
        };
        f.write_str(s)
    }
}

/// Why a hook did not give a usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    Trap,
    Deadline,
    MemoryLimit,
    BadOutput,
    Instantiate,
    /// The deadline passed while the guest itself ran for less than a quarter
    /// of it: the host was starved (CPU) or a host call (the CRM) was slow. The
    /// fallback is used, but this is not the plugin's fault and never counts
    /// towards its rollback.
    Starved,
    /// The host had no instance slot left (`[plugins] max_instances` calls
    /// in flight at once): a burst of calls, not the plugin's fault; never
    /// counts towards its rollback.
    HostFull,
}

impl FailureKind {
    /// Whether this failure is the plugin's own (and counts towards rollback).
    pub fn is_plugins_fault(self) -> bool {
        !matches!(self, FailureKind::Starved | FailureKind::HostFull)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// Hooks, for failure runs counted per hook.
pub const HOOKS: [&str; 6] = [
    "route",
    "rank-agents",
    "build-card",
    "lookup",
    "on-connect",
    "on-event",
];

#[derive(Default)]
pub struct VersionStats {
    pub invocations: AtomicU64,
    /// Invocations answered by the plugin itself (no fallback).
    pub answered: AtomicU64,
    /// The plugin's own failures.
    pub failures: AtomicU64,
    /// Deadlines the host caused (starved CPU, slow host calls).
    pub starved: AtomicU64,
    /// The current run of failures of each hook (see [`HOOKS`]): a hook that
    /// always fails is seen even when another hook of the version succeeds.
    consecutive: [AtomicU32; HOOKS.len()],
    pub total_ns: AtomicU64,
}

impl VersionStats {
    fn hook_index(hook: &str) -> usize {
        HOOKS.iter().position(|h| *h == hook).unwrap_or(0)
    }

    /// The longest current failure run of any hook.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    pub fn consecutive_of(&self, hook: &str) -> u32 {
        self.consecutive[Self::hook_index(hook)].load(Ordering::Relaxed)
    }

    pub fn reset_runs(&self) {
        for c in &self.consecutive {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn record(&self, hook: &str, result: &Result<HookOutput, Failure>, elapsed_ns: u64) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(elapsed_ns, Ordering::Relaxed);
        let run = &self.consecutive[Self::hook_index(hook)];
        match result {
            Ok(_) => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                run.store(0, Ordering::Relaxed);
            }
            Err(f) if !f.kind.is_plugins_fault() => {
                self.starved.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                run.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A live instance kept for reuse (when `limits.instance_reuse` allows it).
pub struct Warm {
    store: Store<InvocationState>,
    instance: Instance,
    uses: u32,
}

pub struct Version {
    pub manifest: Manifest,
    /// The version's id, hex: sha256 over the component's hash and the
    /// manifest, so a manifest-only change is a version of its own.
    pub hash: String,
    /// sha256 of the component bytes, hex (the compiled-artifact cache key).
    pub component_hash: String,
    /// Set when the version was rolled back for its failures: never a
    /// rollback target again, and not loaded again from the same files.
    pub bad: std::sync::atomic::AtomicBool,
    /// The embedded stock version: trusted as a rollback target.
    pub stock: bool,
    pub size: usize,
    pub loaded_at_ms: u64,
    pub trigger: Trigger,
    pub compile: CompileInfo,
    pub stats: VersionStats,
    pre: Pre,
    ctx: Arc<PluginContext>,
    /// Invocations one warm instance may serve (0: fresh instance each time).
    reuse: u32,
    pool: Mutex<Vec<Warm>>,
}

impl Version {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        manifest: Manifest,
        (hash, component_hash): (String, String),
        size: usize,
        (trigger, stock): (Trigger, bool),
        compile: CompileInfo,
        pre: Pre,
        ctx: Arc<PluginContext>,
    ) -> Self {
        Self {
            reuse: manifest.limits.reuse_for(size),
            manifest,
            hash,
            component_hash,
            bad: std::sync::atomic::AtomicBool::new(false),
            stock,
            size,
            loaded_at_ms: ctihost_ground::clock::now_ms(),
            trigger,
            compile,
            stats: VersionStats::default(),
            pre,
            ctx,
            pool: Mutex::new(Vec::new()),
        }
    }

    pub fn kind(&self) -> PluginKind {
        self.manifest.kind
    }

    pub fn short(&self) -> &str {
        short_hash(&self.hash)
    }

    pub fn component(&self) -> &wasmtime::component::Component {
        self.pre.component()
    }

    pub fn warm_instances(&self) -> usize {
        self.pool.lock().len()
    }

    pub async fn execute(
        &self,
        engine: &Engine,
        call: &HookCall,
        scope: Option<&dyn DecisionScope>,
    ) -> Result<HookOutput, Failure> {
        let started = Instant::now();
        let result = execute(
            engine,
            &self.pre,
            &self.ctx,
            &self.manifest.limits,
            (self.reuse, Some(&self.pool)),
            call,
            scope,
        )
        .await;
        self.stats
            .record(call.name(), &result, started.elapsed().as_nanos() as u64);
        result
    }

    /// A rollback may come back to this version: it was never rolled back
    /// for its failures and was not failing when it was replaced.
    pub fn acceptable(&self) -> bool {
        !self.bad.load(Ordering::Relaxed) && self.stats.consecutive_failures() == 0
    }
}

pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Run one hook under the plugin's limits. A trapped or timed-out instance is
/// dropped here and never reused.
pub async fn execute(
    engine: &Engine,
    pre: &Pre,
    ctx: &Arc<PluginContext>,
    limits: &Limits,
    (reuse, pool): (u32, Option<&Mutex<Vec<Warm>>>),
    call: &HookCall,
    scope: Option<&dyn DecisionScope>,
) -> Result<HookOutput, Failure> {
    let deadline = Duration::from_millis(limits.deadline_ms);
    let started = Instant::now();
    let until = started + deadline;
    // CPU time the hook's polls took (the guest's code and the host calls it
    // makes): how long it computed, as opposed to the wall clock, which also
    // counts a host too busy to run it, instantiation, and waits on the CRM.
    let cpu_ns = Arc::new(AtomicU64::new(0));
    // Time spent waiting for an instance slot: a deadline missed after it
    // is the host's (the plugin did not get its whole budget).
    let slot_wait_ms = AtomicU64::new(0);
    let warm = if reuse > 0 {
        pool.and_then(|p| p.lock().pop())
    } else {
        None
    };
    let attempt = async {
        let (mut store, instance, uses) = match warm {
            Some(w) => (w.store, w.instance, w.uses),
            None => {
                let mut store = InvocationState::new_store(engine, ctx.clone());
                arm_deadline(&mut store, until, limits.deadline_ms);
                store.data_mut().begin(call.call_id());
                // A burst can take every instance slot: wait for one (a
                // call in flight ends within its own deadline) rather than
                // answer with the fallback at once, until this deadline.
                loop {
                    match pre.instantiate(&mut store).await {
                        Ok(i) => break (store, i, 0),
                        Err(e) => {
                            let f = classify(e, FailureKind::Instantiate);
                            if f.kind != FailureKind::HostFull
                                || Instant::now() + SLOT_WAIT >= until
                            {
                                return Err(f);
                            }
                            tokio::time::sleep(SLOT_WAIT).await;
                            slot_wait_ms
                                .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                        }
                    }
                }
            }
        };
        store.data_mut().begin(call.call_id());
        arm_deadline(&mut store, until, limits.deadline_ms);
        let out = CpuMetered {
            inner: Box::pin(instance.run(&mut store, call)),
            cpu_ns: cpu_ns.clone(),
        }
        .await;
        let stderr = store.data_mut().drain_stdio();
        let out = out.map_err(|e| {
            let mut f = classify(e, FailureKind::Trap);
            if f.kind == FailureKind::Trap && !stderr.is_empty() {
                // A Rust guest's panic message reaches only its stderr.
                f.message = format!("{}; guest stderr: {}", f.message, stderr.trim_end());
            }
            f
        })?;
        Ok((
            out,
            Warm {
                store,
                instance,
                uses: uses + 1,
            },
        ))
    };
    // The epoch callback stops guest code; this outer bound also covers time
    // spent in host calls (CRM lookups, HTTP) on the plugin's behalf.
    let timed = tokio::time::timeout(deadline + Duration::from_millis(5), attempt).await;
    let cpu_us = cpu_ns.load(Ordering::Relaxed) / 1000;
    let guest_ms = cpu_us / 1000;
    let waited = slot_wait_ms.load(Ordering::Relaxed);
    let starved = |f: Failure| {
        if f.kind == FailureKind::Deadline && waited > 0 {
            Failure {
                kind: FailureKind::Starved,
                message: format!(
                    "{}; it waited {waited} ms for an instance slot first (the host's max_instances were all in use)",
                    f.message
                ),
            }
        } else if f.kind == FailureKind::Deadline && cpu_us * 4 < limits.deadline_ms * 1000 {
            Failure {
                kind: FailureKind::Starved,
                message: format!(
                    "{}; it computed for about {guest_ms} ms of it (the host was busy, or a host call was slow)",
                    f.message
                ),
            }
        } else {
            f
        }
    };
    let (out, warm) = match timed {
        Ok(Ok(r)) => r,
        Ok(Err(f)) => return Err(starved(f)),
        Err(_) => {
            return Err(starved(Failure {
                kind: FailureKind::Deadline,
                message: format!("no answer within {} ms", limits.deadline_ms),
            }));
        }
    };
    call.validate(&out, limits.max_output_kb as usize * 1024, scope)
        .map_err(|e| Failure {
            kind: FailureKind::BadOutput,
            message: e.to_string(),
        })?;
    if let Some(pool) = pool
        && reuse > warm.uses
    {
        let mut p = pool.lock();
        if p.len() < limits.pool_size as usize {
            p.push(warm);
        }
    }
    Ok(out)
}

/// Adds the CPU time of each poll of `inner` (on the thread that polls it)
/// to `cpu_ns`; readable after the future is dropped by a timeout.
struct CpuMetered<F> {
    inner: std::pin::Pin<Box<F>>,
    cpu_ns: Arc<AtomicU64>,
}

impl<F: std::future::Future> std::future::Future for CpuMetered<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let started = cpu_time::ThreadTime::try_now().ok();
        let r = self.inner.as_mut().poll(cx);
        if let Some(t) = started {
            self.cpu_ns
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        r
    }
}

/// How often a call without an instance slot looks for one again.
const SLOT_WAIT: Duration = Duration::from_millis(2);

fn arm_deadline(store: &mut Store<InvocationState>, until: Instant, ms: u64) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= until {
            Err(wasmtime::Error::new(DeadlineExceeded(ms)))
        } else {
            // Yield each tick so a busy guest never holds a runtime worker.
            Ok(UpdateDeadline::Yield(1))
        }
    });
}

fn classify(e: wasmtime::Error, default: FailureKind) -> Failure {
    if let Some(full) = e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return Failure {
            kind: FailureKind::HostFull,
            message: format!("{full} (the host's [plugins] max_instances)"),
        };
    }
    if let Some(d) = e.downcast_ref::<DeadlineExceeded>() {
        return Failure {
            kind: FailureKind::Deadline,
            message: d.to_string(),
        };
    }
    if let Some(m) = e.downcast_ref::<MemoryLimitExceeded>() {
        return Failure {
            kind: FailureKind::MemoryLimit,
            message: m.to_string(),
        };
    }
    // The first line names the trap; the wasm backtrace follows in the chain.
    let full = format!("{e:?}");
    let message = full.lines().take(12).collect::<Vec<_>>().join("\n");
    Failure {
        kind: default,
        message,
    }
}
