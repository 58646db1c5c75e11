//! The storage this runtime needs, as traits it owns: each plugin's own
//! key-value namespace and the version history of every plugin. The host's
//! store implements them (so the arrow points from the store to here, not
//! from the runtime down into sled); a test or an offline run can hand in
//! any other implementation.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A failure of the storage behind a port, with its cause.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl StorageError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }
}

/// One plugin's key-value namespace. Quotas are the runtime's business
/// (`sandbox::KvUsage`); this is only the storage.
pub trait KeyValue: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StorageError>;
    /// Remove `key`; the value it held, if any.
    fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Bytes (keys and values) and keys held now: read once, when the
    /// plugin first loads, to start its quota's count.
    fn usage(&self) -> Result<(u64, u64), StorageError>;
}

/// One line of a plugin's version history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry {
    pub at_ms: u64,
    pub plugin: String,
    /// sha256 of the component (empty when the load failed before hashing).
    pub version: String,
    /// What asked for it: startup, watch, admin, cli, rollback, auto-rollback.
    pub trigger: String,
    /// loaded, rejected, unchanged, rolled-back.
    pub outcome: String,
    pub message: String,
}

/// Which history entries a reader wants.
#[derive(Debug, Default, Clone)]
pub struct HistoryFilter<'a> {
    pub plugin: Option<&'a str>,
    /// Keep only these outcomes ("loaded", "rejected", "rolled-back", ...).
    pub outcomes: Option<Vec<&'a str>>,
    /// Only entries older than this (paging back through a long history).
    pub before_ms: Option<u64>,
}

impl HistoryFilter<'_> {
    pub fn passes(&self, e: &HistoryEntry) -> bool {
        self.plugin.is_none_or(|p| p == e.plugin)
            && self
                .outcomes
                .as_ref()
                .is_none_or(|o| o.contains(&e.outcome.as_str()))
            && self.before_ms.is_none_or(|b| e.at_ms < b)
    }
}

/// Everything the runtime keeps: namespaces and history.
pub trait PluginStorage: Send + Sync {
    /// The namespace of `plugin` (created empty if it is new).
    fn namespace(&self, plugin: &str) -> Result<Arc<dyn KeyValue>, StorageError>;
    /// Append to the history; the storage keeps it bounded per plugin.
    fn record_history(&self, entry: &HistoryEntry) -> Result<(), StorageError>;
    /// The newest `limit` entries that pass `filter`, oldest first.
    fn history_where(
        &self,
        filter: &HistoryFilter<'_>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StorageError>;

    /// The newest `limit` entries of `plugin` (None: every plugin's), oldest first.
    fn history(
        &self,
        plugin: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StorageError> {
        self.history_where(
            &HistoryFilter {
                plugin,
                ..HistoryFilter::default()
            },
            limit,
        )
    }
}
