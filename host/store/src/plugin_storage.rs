//! The plugin runtime's storage traits, kept in sled: a tree `kv/{plugin}`
//! per namespace and the `plugin_history` tree.

use std::sync::Arc;

use ctihost_plugins::{HistoryEntry, HistoryFilter, KeyValue, PluginStorage, StorageError};

use super::{Store, StoreError};

/// One plugin's namespace: a sled tree of its own.
struct Namespace(sled::Tree);

impl KeyValue for Namespace {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .0
            .get(key)
            .map_err(StorageError::new)?
            .map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StorageError> {
        self.0.insert(key, value).map_err(StorageError::new)?;
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .0
            .remove(key)
            .map_err(StorageError::new)?
            .map(|v| v.to_vec()))
    }

    fn usage(&self) -> Result<(u64, u64), StorageError> {
        let (mut bytes, mut keys) = (0, 0);
        for item in self.0.iter() {
            let (k, v) = item.map_err(StorageError::new)?;
            bytes += (k.len() + v.len()) as u64;
            keys += 1;
        }
        Ok((bytes, keys))
    }
}

impl PluginStorage for Store {
    fn namespace(&self, plugin: &str) -> Result<Arc<dyn KeyValue>, StorageError> {
        Ok(Arc::new(Namespace(
            self.plugin_kv(plugin).map_err(StorageError::new)?,
        )))
    }

    fn record_history(&self, entry: &HistoryEntry) -> Result<(), StorageError> {
        Store::record_history(self, entry).map_err(StorageError::new)
    }

    fn history_where(
        &self,
        filter: &HistoryFilter<'_>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StorageError> {
        Store::history_where(self, filter, limit).map_err(StorageError::new)
    }
}

impl Store {
    /// The key-value namespace of one plugin.
    pub fn plugin_kv(&self, plugin: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(format!("kv/{plugin}"))?)
    }
}
