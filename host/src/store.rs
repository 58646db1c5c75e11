//! The embedded store (sled): plugin version history and plugin key-value data.
//! Call records join here with the telephony core.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store record: {0}")]
    Codec(#[from] serde_json::Error),
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

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    history: sled::Tree,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|source| StoreError::Open {
                path: dir.display().to_string(),
                source,
            })?;
        Self::from_db(db)
    }

    /// A throwaway store (CLI invoke, tests).
    pub fn temporary() -> Result<Self, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        let history = db.open_tree("plugin_history")?;
        Ok(Self { db, history })
    }

    pub fn record_history(&self, entry: &HistoryEntry) -> Result<(), StoreError> {
        let id = self.db.generate_id()?;
        self.history
            .insert(id.to_be_bytes(), serde_json::to_vec(entry)?)?;
        self.history.flush()?;
        Ok(())
    }

    /// Newest last; `plugin = None` gives every plugin's.
    pub fn history(
        &self,
        plugin: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.history.iter().rev() {
            let (_, v) = item?;
            let e: HistoryEntry = serde_json::from_slice(&v)?;
            if plugin.is_none_or(|p| p == e.plugin) {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The key-value namespace of one plugin.
    pub fn plugin_kv(&self, plugin: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(format!("kv/{plugin}"))?)
    }
}
