//! The recordings' index: one entry per recorded call, keyed by call id.

use super::{Store, StoreError};
use ctihost_media::recorder::RecordingEntry;

impl Store {
    /// Add or replace a recording's entry; on disk when this returns.
    /// Index a recording. The entry of one that is starting never replaces
    /// an entry already there: a short call's finished entry may be
    /// written first.
    pub fn put_recording(&self, entry: &RecordingEntry) -> Result<(), StoreError> {
        let tree = &self.recordings;
        let value = serde_json::to_vec(entry)?;
        if entry.state == ctihost_media::recorder::RecordingState::Recording {
            // Err: something is there already; it stays. No fsync of its
            // own: the store's periodic flush makes it durable within half
            // a second, and a call start must not wait on the disk.
            let _ = tree.compare_and_swap(entry.call_id.as_bytes(), None::<&[u8]>, Some(value))?;
            return Ok(());
        }
        tree.insert(entry.call_id.as_bytes(), value)?;
        tree.flush()?;
        Ok(())
    }

    pub fn recording(&self, call_id: &str) -> Result<Option<RecordingEntry>, StoreError> {
        match self.recordings.get(call_id.as_bytes())? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// Every entry, oldest recording first.
    pub fn list_recordings(&self) -> Result<Vec<RecordingEntry>, StoreError> {
        let mut v = Vec::new();
        for item in self.recordings.iter() {
            let (_, bytes) = item?;
            v.push(serde_json::from_slice::<RecordingEntry>(&bytes)?);
        }
        v.sort_by_key(|e| e.started_ms);
        Ok(v)
    }
}

/// What a retention purge did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PurgeReport {
    /// Call ids whose recordings were deleted.
    pub purged: Vec<String>,
    /// Files that could not be deleted (left in the index as they were).
    pub failed: Vec<String>,
}

impl Store {
    /// Delete every recording whose retention ended by `as_of_ms` and mark
    /// its index entry purged (the entry stays: the bank can show what was
    /// deleted and when).
    pub fn purge_recordings(&self, as_of_ms: u64) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        for mut e in self.list_recordings()? {
            if e.purged_ms.is_some() || e.expires_ms.is_none_or(|x| x > as_of_ms) {
                continue;
            }
            match std::fs::remove_file(&e.file) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::error!(call_id = e.call_id, file = %e.file.display(), error = %err, "cannot delete an expired recording");
                    report.failed.push(e.call_id);
                    continue;
                }
            }
            e.purged_ms = Some(ctihost_ground::clock::now_ms());
            self.put_recording(&e)?;
            tracing::info!(call_id = e.call_id, file = %e.file.display(), "recording purged (retention over)");
            report.purged.push(e.call_id);
        }
        Ok(report)
    }
}
