//! The one shared wasmtime `Engine` and its epoch ticker.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// One epoch tick. Deadlines are checked against the wall clock at each tick,
/// so the tick only bounds how late a runaway guest is stopped.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Settings of the shared engine; part of the compiled-artifact cache key.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Use the pooling allocator (helps small Rust guests: ~27 us vs ~37 us a
    /// fresh instance). Falls back to on-demand when the reservation fails.
    pub pooling: bool,
    /// Largest linear memory any plugin may be granted, MiB (pool slot size).
    pub max_memory_mb: u32,
    /// Instances alive at once across all plugins (pool capacity).
    pub max_instances: u32,
    /// Compile on every core: for one-shot CLI runs, never for a host serving calls.
    pub parallel_compilation: bool,
    /// Write a perf map of compiled plugin code, so `perf` can name the
    /// guest functions (opt-in: the file grows with every module loaded).
    pub perf_map: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            pooling: true,
            max_memory_mb: 256,
            max_instances: 256,
            parallel_compilation: false,
            perf_map: false,
        }
    }
}

pub struct SharedEngine {
    pub engine: Engine,
    pub pooling: bool,
    stop: Arc<AtomicBool>,
}

impl SharedEngine {
    pub fn new(settings: &EngineSettings) -> Result<Self, wasmtime::Error> {
        let engine = if settings.pooling {
            match Engine::new(&config(settings, true)) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand instances");
                    None
                }
            }
        } else {
            None
        };
        let pooling = engine.is_some();
        let engine = match engine {
            Some(e) => e,
            None => Engine::new(&config(settings, false))?,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| wasmtime::Error::msg(format!("cannot start epoch ticker: {e}")))?;
        Ok(Self {
            engine,
            pooling,
            stop,
        })
    }

    /// Identifies compiled artifacts this engine can load.
    pub fn fingerprint(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        format!("{:016x}", h.finish())
    }
}

impl Drop for SharedEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn config(settings: &EngineSettings, pooling: bool) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c.wasm_component_model(true);
    if settings.perf_map {
        c.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // Compiles run on a blocking thread; keeping them single-threaded leaves
    // the other core to live calls (a parallel compile stalled calls 12-23 ms).
    c.parallel_compilation(settings.parallel_compilation);
    if pooling {
        let mut p = PoolingAllocationConfig::default();
        let n = settings.max_instances.max(8);
        p.total_component_instances(n);
        // Python components use up to ~40 core instances each.
        p.total_core_instances(n * 8);
        p.max_core_instances_per_component(64);
        p.total_memories(n * 2);
        p.max_memories_per_component(16);
        p.total_tables(n * 8);
        p.max_tables_per_component(64);
        p.max_memory_size(settings.max_memory_mb as usize * 1024 * 1024);
        p.total_stacks(n);
        // Resetting a slot with madvise costs a TLB shootdown (an IPI to every
        // core) and page faults on the next use; that was most of a fresh
        // instance's cost here. Where the kernel can scan for dirty pages
        // (PAGEMAP_SCAN, Linux 6.7+), reset just those with memset and keep the
        // slot resident. Without the scan, keep-resident would memset the whole
        // 4 MiB each time, which is worse than madvise: leave the default then.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            p.pagemap_scan(wasmtime::Enabled::Yes);
            p.linear_memory_keep_resident(4 << 20);
            p.table_keep_resident(64 << 10);
        }
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}
