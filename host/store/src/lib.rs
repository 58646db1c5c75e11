//! ctihost's store: one embedded sled database in the data directory.
//!
//! # Map
//!
//! * [`Store`] - the trees and their writers and readers: call records
//!   (`records.rs`: chunks of records keyed by end time), the queue log,
//!   the agent-state log, the audit log, calls in progress (so a crash
//!   loses no record), plugin version history.
//! * `compact.rs` - small chunks of the time-keyed logs merged in the
//!   background ([`CompactReport`]); `retention.rs` - the purge of old
//!   entries ([`Retention`], [`RetentionReport`]).
//! * `recordings.rs` - the recordings' index (media's
//!   `RecordingEntry`); `registrations.rs` - phones' bindings across
//!   restarts (sip's `Binding`); `sessions.rs` - desktop sessions
//!   ([`StoredSession`]).
//! * `plugin_storage.rs` - the plugin runtime's storage traits
//!   (`PluginStorage`, `KeyValue`) implemented over sled.
//! * [`export`] - call records as CSV, JSON or a table.
//!
//! Arrows: the store keeps the words of the rooms below it (the core's
//! records, media's recordings, sip's bindings, the plugin runtime's
//! history) and implements the traits they define; no room below depends
//! on it.

mod compact;
pub mod export;
mod plugin_storage;
mod recordings;
mod records;
mod registrations;
mod retention;
mod sessions;
pub use compact::CompactReport;
// The plugin runtime owns these words; the store keeps them.
pub use ctihost_plugins::{HistoryEntry, HistoryFilter};
pub use retention::{Retention, RetentionReport};
pub use sessions::StoredSession;

use std::path::Path;

use serde::{Deserialize, Serialize};

use ctihost_acd::{CallRecord, QueueLogKind};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store record: {0}")]
    Codec(#[from] serde_json::Error),
}

/// Log entries a key the writer writes holds at most (about 5 KB).
const LOG_CHUNK_ENTRIES: usize = 40;

/// Version-history entries kept per plugin ([`Store::prune_history`]).
pub const HISTORY_PER_PLUGIN: usize = 1000;

/// A log key's value: the entries of one batch (a store written before
/// batches held one entry a key).
#[derive(Deserialize)]
#[serde(untagged)]
enum Chunk<T> {
    Many(Vec<T>),
    One(T),
}

fn decode_chunk<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<Vec<T>, StoreError> {
    Ok(match serde_json::from_slice(v)? {
        Chunk::Many(v) => v,
        Chunk::One(e) => vec![e],
    })
}

/// Entries at or after `since_ms`, oldest first, from a tree of chunks
/// keyed by their first entry's time: the chunk that began before
/// `since_ms` may hold later entries too, so it is read first.
fn read_since<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    since_ms: u64,
    limit: usize,
    at_ms: impl Fn(&T) -> u64,
) -> Result<Vec<T>, StoreError> {
    let start = since_ms.to_be_bytes();
    let straddling = tree.range(..start).next_back().transpose()?;
    let mut out = Vec::new();
    for item in straddling.map(Ok).into_iter().chain(tree.range(start..)) {
        let (_, v) = item?;
        for e in decode_chunk::<T>(&v)? {
            if out.len() >= limit {
                return Ok(out);
            }
            if at_ms(&e) >= since_ms {
                out.push(e);
            }
        }
    }
    Ok(out)
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    history: sled::Tree,
    /// What is known of each call in progress (a record in the making),
    /// durable, so a crash does not lose the calls it cut off.
    live_calls: sled::Tree,
    cdr: sled::Tree,
    queue_log: sled::Tree,
    audit: sled::Tree,
    agent_log: sled::Tree,
    recordings: sled::Tree,
    sessions: sled::Tree,
    registrations: sled::Tree,
    /// The store's own bookkeeping (where compaction stopped).
    meta: sled::Tree,
    /// Compaction and retention rewrite the same chunks: one at a time.
    maintenance: std::sync::Arc<parking_lot::Mutex<()>>,
    /// Held to read across chunks, and exclusively to move entries between
    /// keys: a reader walking the tree while a merge moves later chunks'
    /// entries into an earlier key would miss them.
    moving: std::sync::Arc<parking_lot::RwLock<()>>,
}

/// Something a person did through the API that the bank must be able to
/// account for (secure pause, hang-up, transfer, logins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: u64,
    /// "agent:1001", "supervisor:9001" or "admin".
    pub who: String,
    pub action: String,
    pub call_id: Option<String>,
    /// What happened, in words (the plugin's answer, the refusal...).
    pub outcome: String,
}

/// An agent's state change, for occupancy and time-in-state reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStateEntry {
    pub at_ms: u64,
    pub agent: String,
    /// The state's name ("ready", "on-call", ...).
    pub state: String,
}

/// One line of the queue log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueLogEntry {
    pub at_ms: u64,
    pub call_id: String,
    pub queue: String,
    pub agent: Option<String>,
    pub kind: QueueLogKind,
}

impl Store {
    /// The store's page cache when none is configured (sled's own default
    /// is 1 GiB, which a busy host fills).
    pub const DEFAULT_CACHE_BYTES: u64 = 128 << 20;

    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, Self::DEFAULT_CACHE_BYTES)
    }

    /// Open with a page cache of at most `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
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
        let cdr = db.open_tree("cdr")?;
        let queue_log = db.open_tree("queue_log")?;
        let audit = db.open_tree("audit")?;
        let agent_log = db.open_tree("agent_log")?;
        let recordings = db.open_tree("recordings")?;
        let sessions = db.open_tree("desktop_sessions")?;
        let registrations = db.open_tree("registrations")?;
        let live_calls = db.open_tree("live_calls")?;
        let meta = db.open_tree("meta")?;
        Ok(Self {
            meta,
            maintenance: Default::default(),
            moving: Default::default(),
            live_calls,
            db,
            history,
            cdr,
            queue_log,
            audit,
            agent_log,
            recordings,
            sessions,
            registrations,
        })
    }

    /// Everything written so far, on disk when this returns.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn record_history(&self, entry: &HistoryEntry) -> Result<(), StoreError> {
        let id = self.db.generate_id()?;
        self.history
            .insert(id.to_be_bytes(), serde_json::to_vec(entry)?)?;
        self.prune_history(&entry.plugin, HISTORY_PER_PLUGIN)?;
        self.history.flush()?;
        Ok(())
    }

    /// Keep at most `cap` entries of `plugin`: its oldest rejections (and
    /// unchanged reloads, unloads) go first, so the loads and rollbacks that
    /// tell which code served stay findable; only then the oldest of the rest.
    /// Works in batches (10% over the cap) so a load is not a full scan.
    pub fn prune_history(&self, plugin: &str, cap: usize) -> Result<usize, StoreError> {
        let mut rows: Vec<(sled::IVec, bool)> = Vec::new();
        for item in self.history.iter() {
            let (k, v) = item?;
            let e: HistoryEntry = serde_json::from_slice(&v)?;
            if e.plugin == plugin {
                rows.push((k, matches!(e.outcome.as_str(), "loaded" | "rolled-back")));
            }
        }
        if rows.len() <= cap + cap / 10 {
            return Ok(0);
        }
        let mut excess = rows.len() - cap;
        let mut removed = 0;
        for pass_keeps_loads in [true, false] {
            for (k, is_load) in &rows {
                if excess == 0 {
                    break;
                }
                if pass_keeps_loads && *is_load {
                    continue;
                }
                if self.history.remove(k)?.is_some() {
                    excess -= 1;
                    removed += 1;
                }
            }
        }
        tracing::info!(
            plugin,
            removed,
            cap,
            "plugin version history pruned (oldest rejections first)"
        );
        Ok(removed)
    }

    /// The newest `limit` entries that pass `filter`, oldest first.
    pub fn history_where(
        &self,
        filter: &HistoryFilter<'_>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.history.iter().rev() {
            let (_, v) = item?;
            let e: HistoryEntry = serde_json::from_slice(&v)?;
            if filter.passes(&e) {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// What is known of a call in progress, replacing what was known.
    pub fn put_live_call(&self, partial: &CallRecord) -> Result<(), StoreError> {
        self.live_calls
            .insert(partial.call_id.as_bytes(), serde_json::to_vec(partial)?)?;
        Ok(())
    }

    pub fn end_live_call(&self, call_id: &str) -> Result<(), StoreError> {
        self.live_calls.remove(call_id.as_bytes())?;
        Ok(())
    }

    /// At start-up: every call that was live when the host last stopped
    /// without ending it gets its record, disposition `interrupted`, ended
    /// at the last event the host knew of it (a live entry's `ended_ms`), so
    /// every call ever offered is accounted for. Returns the records written.
    pub fn close_interrupted_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.live_calls.iter() {
            let (k, v) = item?;
            let mut r: CallRecord = match serde_json::from_slice(&v) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "unreadable live call entry dropped");
                    self.live_calls.remove(k)?;
                    continue;
                }
            };
            r.ended_ms = r.ended_ms.max(r.arrived_ms);
            r.disposition = ctihost_acd::Disposition::Interrupted;
            let since = |t: Option<u64>| t.map(|t| r.ended_ms.saturating_sub(t) as f64 / 1000.0);
            r.talk_secs = since(r.answered_ms).unwrap_or(0.0);
            r.wait_secs = match (r.queued_ms, r.answered_ms) {
                (Some(q), Some(a)) => a.saturating_sub(q) as f64 / 1000.0,
                (Some(_), None) => since(r.queued_ms).unwrap_or(0.0),
                _ => 0.0,
            };
            r.cause = "the host stopped (crash or kill) while the call was live; ended at the last event the host knew of".into();
            out.push((k, r));
        }
        let (keys, records): (Vec<sled::IVec>, Vec<CallRecord>) = out.into_iter().unzip();
        self.insert_calls(&records)?;
        for k in keys {
            self.live_calls.remove(k)?;
        }
        self.flush_calls()?;
        Ok(records)
    }

    /// Store a finished call's record. It is on disk when this returns, so it
    /// survives a `kill -9` of the host at any later moment.
    pub fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        self.insert_call(record)?;
        self.flush_calls()
    }

    /// Store a record without waiting for the disk; [`Store::flush_calls`]
    /// makes every record inserted so far durable (group commit).
    pub fn insert_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        self.insert_calls(std::slice::from_ref(record))
    }

    /// Store records as few keys: sled keeps a page-table entry in memory
    /// for every page of at most 16 keys, paged out or not, so a key per call
    /// made the host's memory grow with every call it ever took (about 18
    /// bytes a call). A key holds up to [`records::CHUNK_RECORDS`] records
    /// that ended within [`records::CHUNK_SPAN_MS`] of each other.
    pub fn insert_calls<R: std::borrow::Borrow<CallRecord>>(
        &self,
        records: &[R],
    ) -> Result<(), StoreError> {
        let mut sorted: Vec<&CallRecord> = records.iter().map(|r| r.borrow()).collect();
        sorted.sort_by(|a, b| records::order(a, b));
        for chunk in records::chunks(&sorted) {
            let mut key = chunk[0].ended_ms.to_be_bytes().to_vec();
            key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
            self.cdr.insert(key, serde_json::to_vec(chunk)?)?;
        }
        Ok(())
    }

    /// Makes records and live-call entries durable: sled flushes the whole
    /// database, so one flush (one fsync) covers both trees.
    pub fn flush_calls(&self) -> Result<(), StoreError> {
        self.cdr.flush()?;
        Ok(())
    }

    /// Call records of calls that ended at or after `since_ms`, oldest first.
    pub fn calls_since(&self, since_ms: u64, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.calls_page(since_ms, None, limit)
    }

    /// The same, starting after the record of `after` (a call id) that
    /// ended at `since_ms`: the next page after a page's last record, with
    /// none repeated or skipped however many calls end in one millisecond.
    pub fn calls_page(
        &self,
        since_ms: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let _no_moves = self.moving.read();
        records::page(&self.cdr, since_ms, after, limit)
    }

    /// Append to the queue log (flushed with the call's record, or by sled's
    /// own periodic flush).
    pub fn log_queue_event(&self, entry: &QueueLogEntry) -> Result<(), StoreError> {
        self.log_queue_events(std::slice::from_ref(entry))
    }

    /// Append entries to the queue log as one key (the record writer's
    /// batch). sled keeps a page-table entry in memory for every 16 keys,
    /// paged out or not: a key per entry made the host's memory grow by
    /// about 20 bytes for each of a call's six log lines.
    pub fn log_queue_events(&self, entries: &[QueueLogEntry]) -> Result<(), StoreError> {
        self.append_chunk(&self.queue_log, entries, |e| e.at_ms)
    }

    pub fn queue_log_since(
        &self,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueLogEntry>, StoreError> {
        let _no_moves = self.moving.read();
        read_since(&self.queue_log, since_ms, limit, |e: &QueueLogEntry| {
            e.at_ms
        })
    }

    /// One key for `entries`: the first one's time, then a unique id (the
    /// keys sort by time, so retention deletes a prefix of the tree).
    fn append_chunk<T: Serialize>(
        &self,
        tree: &sled::Tree,
        entries: &[T],
        at_ms: impl Fn(&T) -> u64,
    ) -> Result<(), StoreError> {
        // A backlog's batch is cut so no key outgrows what sled keeps inline
        // (see `compact::TARGET_BYTES`).
        for part in entries.chunks(LOG_CHUNK_ENTRIES) {
            let mut key = at_ms(&part[0]).to_be_bytes().to_vec();
            key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
            tree.insert(key, serde_json::to_vec(part)?)?;
        }
        Ok(())
    }

    /// Append to the audit log; on disk when this returns.
    pub fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut key = entry.at_ms.to_be_bytes().to_vec();
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        self.audit.insert(key, serde_json::to_vec(entry)?)?;
        self.audit.flush()?;
        Ok(())
    }

    pub fn audit_since(&self, since_ms: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.audit.range(since_ms.to_be_bytes()..).take(limit) {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }

    /// Append an agent state change (flushed with the call records).
    pub fn log_agent_state(&self, entry: &AgentStateEntry) -> Result<(), StoreError> {
        self.log_agent_states(std::slice::from_ref(entry))
    }

    /// Append agent state changes as one key (as [`Store::log_queue_events`]).
    pub fn log_agent_states(&self, entries: &[AgentStateEntry]) -> Result<(), StoreError> {
        self.append_chunk(&self.agent_log, entries, |e| e.at_ms)
    }

    pub fn agent_log_since(
        &self,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<AgentStateEntry>, StoreError> {
        let _no_moves = self.moving.read();
        read_since(&self.agent_log, since_ms, limit, |e: &AgentStateEntry| {
            e.at_ms
        })
    }

    /// The last logged state ("ready", "logged-out", ...) of each of
    /// `agents`, reading back from the newest entry until all are found or
    /// `scan` entries were read.
    pub fn last_agent_states(
        &self,
        agents: &std::collections::HashSet<&str>,
        scan: usize,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let _no_moves = self.moving.read();
        let mut last = std::collections::HashMap::new();
        let mut read = 0;
        'chunks: for item in self.agent_log.iter().rev() {
            let (_, v) = item?;
            for e in decode_chunk::<AgentStateEntry>(&v)?.into_iter().rev() {
                if last.len() == agents.len() || read >= scan {
                    break 'chunks;
                }
                read += 1;
                if agents.contains(&e.agent.as_str()) {
                    last.entry(e.agent).or_insert(e.state);
                }
            }
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use ctihost_acd::Disposition;
    use ctihost_plugins::PluginStorage as _;

    fn q(at_ms: u64, call_id: &str) -> QueueLogEntry {
        QueueLogEntry {
            at_ms,
            call_id: call_id.into(),
            queue: "general".into(),
            agent: None,
            kind: QueueLogKind::EnterQueue,
        }
    }

    #[test]
    fn log_chunks_read_back_from_inside_a_batch_and_old_single_entries_too() {
        let s = Store::temporary().unwrap();
        // A store written before batches: one entry a key.
        let mut key = 100u64.to_be_bytes().to_vec();
        key.extend_from_slice(&1u64.to_be_bytes());
        s.queue_log
            .insert(key, serde_json::to_vec(&q(100, "old")).unwrap())
            .unwrap();
        s.log_queue_events(&[q(200, "a"), q(210, "b"), q(220, "c")])
            .unwrap();
        s.log_queue_events(&[]).unwrap();
        s.log_queue_events(&[q(300, "d")]).unwrap();
        let ids = |v: Vec<QueueLogEntry>| v.into_iter().map(|e| e.call_id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.queue_log_since(0, 100).unwrap()),
            ["old", "a", "b", "c", "d"]
        );
        assert_eq!(
            ids(s.queue_log_since(205, 100).unwrap()),
            ["b", "c", "d"],
            "from inside the batch that began earlier"
        );
        assert_eq!(ids(s.queue_log_since(205, 1).unwrap()), ["b"], "limit");
        assert_eq!(
            ids(s.queue_log_since(301, 100).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(s.queue_log.len(), 3, "one key a batch");
    }

    #[test]
    fn last_agent_states_reads_back_through_batches() {
        let s = Store::temporary().unwrap();
        let e = |at_ms, agent: &str, state: &str| AgentStateEntry {
            at_ms,
            agent: agent.into(),
            state: state.into(),
        };
        s.log_agent_states(&[e(1, "1001", "ready"), e(2, "1002", "ready")])
            .unwrap();
        s.log_agent_states(&[e(3, "1001", "logged-out"), e(4, "1003", "ready")])
            .unwrap();
        let agents: std::collections::HashSet<&str> = ["1001", "1002"].into();
        let last = s.last_agent_states(&agents, 100).unwrap();
        assert_eq!(last["1001"], "logged-out", "the newest wins");
        assert_eq!(last["1002"], "ready");
        let near = s.last_agent_states(&agents, 2).unwrap();
        assert!(!near.contains_key("1002"), "scan bounds the entries read");
    }

    #[test]
    fn version_history_is_capped_per_plugin_rejections_first() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        let entry = |plugin: &str, outcome: &str, at_ms: u64| HistoryEntry {
            at_ms,
            plugin: plugin.into(),
            version: "v".into(),
            trigger: "watch".into(),
            outcome: outcome.into(),
            message: String::new(),
        };
        s.record_history(&entry("r", "loaded", 1)).unwrap();
        s.record_history(&entry("other", "rejected", 2)).unwrap();
        for i in 0..HISTORY_PER_PLUGIN + 200 {
            s.record_history(&entry("r", "rejected", 10 + i as u64))
                .unwrap();
        }
        s.record_history(&entry("r", "rolled-back", 1_000_000))
            .unwrap();
        let rows = s.history(Some("r"), usize::MAX).unwrap();
        assert!(
            rows.len() <= HISTORY_PER_PLUGIN + HISTORY_PER_PLUGIN / 10,
            "{}",
            rows.len()
        );
        assert_eq!(rows[0].outcome, "loaded", "the oldest load is kept");
        assert_eq!(rows.last().unwrap().outcome, "rolled-back");
        assert_eq!(
            s.history(Some("other"), 10).unwrap().len(),
            1,
            "others untouched"
        );
    }

    pub(super) fn record(id: &str, ended_ms: u64) -> CallRecord {
        CallRecord {
            call_id: id.into(),
            caller: "+8613800000000".into(),
            dialed: "95588".into(),
            trunk: "pstn".into(),
            arrived_ms: ended_ms - 60_000,
            queued_ms: Some(ended_ms - 50_000),
            offered_ms: Some(ended_ms - 45_000),
            answered_ms: Some(ended_ms - 40_000),
            ended_ms,
            queue: Some("cards".into()),
            agent: Some("1001".into()),
            disposition: Disposition::Answered,
            wait_secs: 10.0,
            talk_secs: 40.0,
            overflowed_from: vec![],
            plugin_versions: BTreeMap::from([(
                "skills-router".to_string(),
                "f4bb5d64".to_string(),
            )]),
            cause: "caller hung up".into(),
        }
    }

    #[test]
    fn records_come_back_by_end_time() {
        let s = Store::temporary().unwrap();
        s.record_call(&record("b", 2_000_000)).unwrap();
        s.record_call(&record("a", 1_000_000)).unwrap();
        s.record_call(&record("c", 3_000_000)).unwrap();
        let ids: Vec<String> = s
            .calls_since(1_500_000, 100)
            .unwrap()
            .into_iter()
            .map(|r| r.call_id)
            .collect();
        assert_eq!(ids, ["b", "c"]);
        let csv = export::to_csv(&s.calls_since(0, 100).unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("call_id,caller,dialed"));
        assert!(
            lines[1].starts_with("a,+8613800000000,95588,pstn,1970-01-01T00:15:40.000Z"),
            "{}",
            lines[1]
        );
        assert!(
            lines[1].contains(",answered,10.000,40.000,,skills-router=f4bb5d64,caller hung up"),
            "{}",
            lines[1]
        );
    }

    /// A child process writes records and dies without any clean-up (abort);
    /// the parent then finds every record it wrote.
    #[test]
    fn finished_calls_survive_a_crash() {
        if let Ok(dir) = std::env::var("CTIHOST_CRASH_CHILD_DIR") {
            let s = Store::open(Path::new(&dir)).unwrap();
            for i in 0..50 {
                s.record_call(&record(&format!("call-{i}"), 1_000_000 + i))
                    .unwrap();
            }
            std::process::abort();
        }
        let dir = tempfile::tempdir().unwrap();
        // The test's own name as the harness knows it (the module path
        // without the crate's name), so a move cannot make the child run nothing.
        let name = format!(
            "{}::finished_calls_survive_a_crash",
            module_path!().split_once("::").map_or("", |(_, m)| m)
        );
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &name, "--nocapture"])
            .env("CTIHOST_CRASH_CHILD_DIR", dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the child crashed as planned");
        let s = Store::open(dir.path()).unwrap();
        let got = s.calls_since(0, 1000).unwrap();
        assert_eq!(got.len(), 50);
        assert_eq!(got[49].call_id, "call-49");
    }
}
