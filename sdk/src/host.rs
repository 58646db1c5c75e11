//! The host interface: log, config, key-value store, clock, counters.

use crate::bindings::router::cti::plugin::host as raw;
pub use raw::LogLevel;

/// Structured log line; the host adds plugin name, version and call id.
pub fn log(level: LogLevel, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    raw::log(level, message, &fields);
}

pub fn info(message: &str) {
    log(LogLevel::Info, message, &[]);
}

pub fn warn(message: &str) {
    log(LogLevel::Warn, message, &[]);
}

/// One `[config]` value of the manifest (non-strings come as JSON text).
pub fn config_get(key: &str) -> Option<String> {
    raw::config_get(key)
}

/// The manifest's `[config]` table, deserialized into your own type.
pub fn config<T: serde::de::DeserializeOwned>() -> Result<T, String> {
    serde_json::from_str(&raw::config_json()).map_err(|e| format!("plugin config: {e}"))
}

/// Read from this plugin's key-value namespace.
pub fn kv_get(key: &str) -> Option<Vec<u8>> {
    raw::kv_get(key)
}

/// Write into this plugin's key-value namespace (keys 256 B, values 64 KiB).
pub fn kv_set(key: &str, value: &[u8]) -> Result<(), String> {
    raw::kv_set(key, value)
}

pub fn kv_delete(key: &str) {
    raw::kv_delete(key)
}

/// Milliseconds since the Unix epoch (UTC).
pub fn now_ms() -> u64 {
    raw::now_ms()
}

/// Add to a named counter of this plugin (shown by `ctihost plugin list`).
pub fn counter_add(name: &str, delta: i64) {
    raw::counter_add(name, delta)
}

/// The manifest's `[config]` table as JSON text.
pub fn config_json() -> String {
    raw::config_json()
}
