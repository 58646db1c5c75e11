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

#[derive(Default)]
pub struct VersionStats {
    pub invocations: AtomicU64,
    pub failures: AtomicU64,
    pub consecutive_failures: AtomicU32,
    pub total_ns: AtomicU64,
}

/// A live instance kept for reuse (when `limits.instance_reuse` allows it).
pub struct Warm {
    store: Store<InvocationState>,
    instance: Instance,
    uses: u32,
}

pub struct Version {
    pub manifest: Manifest,
    /// sha256 of the component bytes, hex.
    pub hash: String,
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
        hash: String,
        size: usize,
        trigger: Trigger,
        compile: CompileInfo,
        pre: Pre,
        ctx: Arc<PluginContext>,
    ) -> Self {
        Self {
            reuse: manifest.limits.reuse_for(size),
            manifest,
            hash,
            size,
            loaded_at_ms: crate::clock::now_ms(),
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

    pub async fn execute(&self, engine: &Engine, call: &HookCall) -> Result<HookOutput, Failure> {
        let started = Instant::now();
        let result = execute(
            engine,
            &self.pre,
            &self.ctx,
            &self.manifest.limits,
            self.reuse,
            Some(&self.pool),
            call,
        )
        .await;
        let s = &self.stats;
        s.invocations.fetch_add(1, Ordering::Relaxed);
        s.total_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if result.is_ok() {
            s.consecutive_failures.store(0, Ordering::Relaxed);
        } else {
            s.failures.fetch_add(1, Ordering::Relaxed);
            s.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        }
        result
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
    reuse: u32,
    pool: Option<&Mutex<Vec<Warm>>>,
    call: &HookCall,
) -> Result<HookOutput, Failure> {
    let deadline = Duration::from_millis(limits.deadline_ms);
    let until = Instant::now() + deadline;
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
                match pre.instantiate(&mut store).await {
                    Ok(i) => (store, i, 0),
                    Err(e) => return Err(classify(e, FailureKind::Instantiate)),
                }
            }
        };
        store.data_mut().begin(call.call_id());
        arm_deadline(&mut store, until, limits.deadline_ms);
        let out = instance.run(&mut store, call).await;
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
    let (out, warm) = match tokio::time::timeout(deadline + Duration::from_millis(5), attempt).await
    {
        Ok(r) => r?,
        Err(_) => {
            return Err(Failure {
                kind: FailureKind::Deadline,
                message: format!("no answer within {} ms", limits.deadline_ms),
            });
        }
    };
    call.validate(&out, limits.max_output_kb as usize * 1024)
        .map_err(|message| Failure {
            kind: FailureKind::BadOutput,
            message,
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
