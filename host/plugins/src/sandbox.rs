//! Per-invocation store state: what a running plugin can reach, and nothing more.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{CrmError, Customer, LookupKey};
use super::outbound_http::HttpGrant;
use super::stdio::CappedPipe;
use super::storage::{KeyValue, StorageError};

/// Why a plugin's key-value write was refused.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("store error: {0}")]
    Store(#[from] StorageError),
    #[error(
        "key-value quota exceeded: the namespace would hold {bytes} bytes in {keys} keys (at most {max_bytes} bytes, {max_keys} keys; [limits] kv_max_kb, kv_max_keys)"
    )]
    Quota {
        bytes: u64,
        keys: u64,
        max_bytes: u64,
        max_keys: u64,
    },
}

/// Links a router or screen-pop's `crm` import to the configured connector.
pub trait CrmLink: Send + Sync {
    fn lookup(
        &self,
        call_id: String,
        key: LookupKey,
    ) -> Pin<Box<dyn Future<Output = Result<Option<Customer>, CrmError>> + Send + '_>>;
}

/// Counters a plugin keeps through `host.counter-add`.
#[derive(Default)]
pub struct PluginCounters(Mutex<BTreeMap<String, i64>>);

impl PluginCounters {
    pub fn add(&self, name: &str, delta: i64) {
        let mut m = self.0.lock();
        if m.len() >= 256 && !m.contains_key(name) {
            return; // a plugin cannot grow the host's memory through counter names
        }
        let v = m.entry(name.to_owned()).or_insert(0);
        *v = v.saturating_add(delta);
    }
    pub fn snapshot(&self) -> BTreeMap<String, i64> {
        self.0.lock().clone()
    }
}

/// What a plugin's key-value namespace holds, against its quota. Shared by
/// every version of the plugin (they share the namespace).
#[derive(Default)]
pub struct KvUsage {
    state: Mutex<KvFigures>,
}

#[derive(Default, Clone, Copy, Debug, serde::Serialize)]
pub struct KvFigures {
    pub bytes: u64,
    pub keys: u64,
    /// Writes refused for the quota.
    pub refused: u64,
}

impl KvUsage {
    /// Count what `kv` holds now (once, when the plugin first loads).
    pub fn scan(kv: &dyn KeyValue) -> Result<Self, StorageError> {
        let (bytes, keys) = kv.usage()?;
        Ok(Self {
            state: Mutex::new(KvFigures {
                bytes,
                keys,
                refused: 0,
            }),
        })
    }

    pub fn figures(&self) -> KvFigures {
        *self.state.lock()
    }

    /// Write `key` = `value` if the namespace stays within the quota.
    pub fn set(
        &self,
        kv: &dyn KeyValue,
        key: &[u8],
        value: Vec<u8>,
        max_bytes: u64,
        max_keys: u64,
    ) -> Result<(), KvError> {
        let mut f = self.state.lock();
        let old = kv.get(key)?.map(|v| (key.len() + v.len()) as u64);
        let bytes = f.bytes - old.unwrap_or(0).min(f.bytes) + (key.len() + value.len()) as u64;
        let keys = f.keys + u64::from(old.is_none());
        if bytes > max_bytes || keys > max_keys {
            f.refused += 1;
            return Err(KvError::Quota {
                bytes,
                keys,
                max_bytes,
                max_keys,
            });
        }
        kv.insert(key, value)?;
        f.bytes = bytes;
        f.keys = keys;
        Ok(())
    }

    pub fn delete(&self, kv: &dyn KeyValue, key: &[u8]) -> Result<(), StorageError> {
        let mut f = self.state.lock();
        if let Some(v) = kv.remove(key)? {
            f.bytes = f.bytes.saturating_sub((key.len() + v.len()) as u64);
            f.keys = f.keys.saturating_sub(1);
        }
        Ok(())
    }
}

/// What one plugin version may touch; shared by all its invocations.
pub struct PluginContext {
    pub name: String,
    /// Short content hash of the component, as logs and CDRs show it.
    pub version: String,
    pub config: toml::Table,
    pub config_json: String,
    /// The plugin's own key-value namespace; none during self-test.
    pub kv: Option<Arc<dyn KeyValue>>,
    /// What the namespace holds, and the version's quota (bytes, keys).
    pub kv_usage: Arc<KvUsage>,
    pub kv_quota: (u64, u64),
    pub counters: Arc<PluginCounters>,
    pub http: Option<Arc<HttpGrant>>,
    pub crm: Option<Arc<dyn CrmLink>>,
    pub memory_bytes: usize,
    pub max_stdio_bytes: usize,
    /// The load's self-test: no CRM, no store, so what the plugin logs about
    /// them is expected and goes to debug, not to the operator's warnings.
    pub self_test: bool,
}

/// Raised by the limiter; recognised by downcast to classify the failure.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (wanted {wanted})")]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub wanted: usize,
}

/// Raised by the epoch callback when the hook's wall-clock deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("deadline of {0} ms exceeded")]
pub struct DeadlineExceeded(pub u64);

const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_LOG_LINES: u32 = 64;
const MAX_LOG_BYTES: usize = 2048;

pub struct InvocationState {
    pub ctx: Arc<PluginContext>,
    pub call_id: String,
    wasi: WasiCtx,
    table: ResourceTable,
    stdout: CappedPipe,
    stderr: CappedPipe,
    log_lines: u32,
}

impl InvocationState {
    pub fn new_store(engine: &wasmtime::Engine, ctx: Arc<PluginContext>) -> Store<Self> {
        let cap = ctx.max_stdio_bytes;
        let stdout = CappedPipe::new(cap);
        let stderr = CappedPipe::new(cap);
        // No preopened directories, no environment, no arguments, no sockets;
        // stdin is empty. Clocks and randomness stay (std's HashMap needs them).
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = Self {
            ctx,
            call_id: String::new(),
            wasi,
            table: ResourceTable::new(),
            stdout,
            stderr,
            log_lines: 0,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        store
    }

    pub fn begin(&mut self, call_id: &str) {
        self.call_id.clear();
        self.call_id.push_str(call_id);
        self.log_lines = 0;
    }

    /// Send what the guest printed since the last call to the log; returns the
    /// stderr text, which carries a Rust guest's panic message.
    pub fn drain_stdio(&mut self) -> String {
        let mut stderr_text = String::new();
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let (bytes, dropped) = pipe.take();
            if bytes.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            tracing::info!(plugin = %self.ctx.name, version = %self.ctx.version, call_id = %self.call_id, stream, dropped_bytes = dropped, output = %text.trim_end(), "plugin output");
            if stream == "stderr" {
                stderr_text = text.into_owned();
            }
        }
        stderr_text
    }

    pub fn log(&mut self, level: tracing::Level, message: &str, fields: &[(String, String)]) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(plugin = %self.ctx.name, version = %self.ctx.version, call_id = %self.call_id, "plugin log lines capped for this invocation");
            }
            return;
        }
        // A plugin's text is data: one line, no control characters, so it
        // cannot forge log lines of its own.
        let message = printable(truncate(message, MAX_LOG_BYTES));
        let fields = fields
            .iter()
            .take(16)
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    printable(truncate(k, 64)),
                    printable(truncate(v, 256))
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let (p, v, c) = (&self.ctx.name, &self.ctx.version, &self.call_id);
        let level = if self.ctx.self_test {
            tracing::Level::DEBUG
        } else {
            level
        };
        match level {
            tracing::Level::ERROR => {
                tracing::error!(plugin = %p, version = %v, call_id = %c, fields = %fields, "{message}")
            }
            tracing::Level::WARN => {
                tracing::warn!(plugin = %p, version = %v, call_id = %c, fields = %fields, "{message}")
            }
            tracing::Level::INFO => {
                tracing::info!(plugin = %p, version = %v, call_id = %c, fields = %fields, "{message}")
            }
            tracing::Level::DEBUG => {
                tracing::debug!(plugin = %p, version = %v, call_id = %c, fields = %fields, "{message}")
            }
            tracing::Level::TRACE => {
                tracing::trace!(plugin = %p, version = %v, call_id = %c, fields = %fields, "{message}")
            }
        }
    }
}

/// Control characters (CR, LF, ESC, ...) shown as escapes.
fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for InvocationState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.ctx.memory_bytes;
        if desired > limit {
            // Trapping (rather than failing the grow) gives a clean, named
            // failure instead of an opaque abort inside the guest's allocator.
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit,
                wanted: desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
