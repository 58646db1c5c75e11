//! Compaction of the time-keyed logs (call records, the queue log, the
//! agent-state log).
//!
//! The record writer commits what it has at each wake-up, which at a
//! bank's rate is one call: a key per call in each of three trees. sled
//! 0.34 keeps a page-table entry in memory for every page of at most 16
//! keys, paged out or not, so the host's memory grew with every call the
//! store held (about 50 bytes a call: 6 GB for 400 days at 300,000 calls a
//! day). Compaction merges runs of small chunks older than a few seconds
//! into chunks of up to [`TARGET_BYTES`] spanning at most [`CHUNK_SPAN_MS`],
//! each run in one atomic sled batch, so a crash leaves either the small
//! chunks or the merged one.

use std::ops::Bound;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::records::CHUNK_SPAN_MS;
use super::{Store, StoreError, decode_chunk};

/// Bytes a merged chunk holds at most. sled writes a leaf of up to 16 keys
/// as one item, and an item over 128 KiB goes to a file of its own (a
/// blob): chunks of 45 KB (64 records) made every rewritten leaf a new
/// file (6,000 files in 25 minutes of the soak). 7 KiB keeps a leaf inline.
pub const TARGET_BYTES: usize = 7 * 1024;

/// A chunk or run this big is full enough: merging it would gain little.
const FULL_BYTES: usize = TARGET_BYTES * 3 / 4;

/// Chunks read per pass of one tree: a pass must never hold a core (or
/// sled's batch lock) long enough to starve the calls; the host runs a pass
/// every two seconds, so this keeps up with 2,000 small chunks a second a
/// tree, far above what the writer's group commit leaves (about 0.4 a call).
const PASS_CHUNKS: usize = 4_000;

/// What one compaction did: keys before and after, by log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub keys_merged: u64,
    pub keys_written: u64,
}

impl CompactReport {
    fn add(&mut self, other: CompactReport) {
        self.keys_merged += other.keys_merged;
        self.keys_written += other.keys_written;
    }
}

/// The key's leading end time.
pub(super) fn key_ms(key: &[u8]) -> u64 {
    key.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// A run of small chunks being gathered into one.
struct Run<T> {
    keys: Vec<sled::IVec>,
    entries: Vec<T>,
    /// The sum of the run's chunks' sizes.
    bytes: usize,
    from_ms: u64,
}

impl<T: Serialize> Run<T> {
    fn new() -> Self {
        Self {
            keys: Vec::new(),
            entries: Vec::new(),
            bytes: 0,
            from_ms: 0,
        }
    }

    /// Write the run as one chunk under its first key (nothing to do for a
    /// run of one).
    fn flush(
        &mut self,
        tree: &sled::Tree,
        moving: &parking_lot::RwLock<()>,
        order: Option<fn(&T, &T) -> std::cmp::Ordering>,
        report: &mut CompactReport,
    ) -> Result<(), StoreError> {
        if self.keys.len() > 1 {
            if let Some(order) = order {
                self.entries.sort_by(order);
            }
            let mut batch = sled::Batch::default();
            batch.insert(self.keys[0].clone(), serde_json::to_vec(&self.entries)?);
            for k in &self.keys[1..] {
                batch.remove(k.clone());
            }
            {
                let _alone = moving.write();
                tree.apply_batch(batch)?;
            }
            report.keys_merged += self.keys.len() as u64;
            report.keys_written += 1;
        }
        self.keys.clear();
        self.entries.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// Merge the small chunks of `tree` after `cursor` and keyed before
/// `before_ms`; returns where the next pass starts (after this key) and
/// what was merged. A run still short of [`TARGET_BYTES`] and of the span
/// at the end is left for the next pass, so a quiet center's chunks fill up
/// over several passes instead of staying the size of two seconds' calls.
fn compact_tree<T: Serialize + DeserializeOwned>(
    tree: &sled::Tree,
    moving: &parking_lot::RwLock<()>,
    cursor: Option<&[u8]>,
    before_ms: u64,
    at_ms: fn(&T) -> u64,
    order: Option<fn(&T, &T) -> std::cmp::Ordering>,
) -> Result<(Option<sled::IVec>, CompactReport), StoreError> {
    let end = before_ms.to_be_bytes();
    let start = match cursor {
        Some(c) => Bound::Excluded(c),
        None => Bound::Unbounded,
    };
    let mut report = CompactReport::default();
    let mut run = Run::<T>::new();
    // The last key of what is finished: merged, or big enough already.
    let mut done: Option<sled::IVec> = None;
    let mut previous: Option<sled::IVec> = None;
    for item in tree
        .range::<&[u8], _>((start, Bound::Excluded(&end[..])))
        .take(PASS_CHUNKS)
    {
        let (key, value) = item?;
        let entries = decode_chunk::<T>(&value)?;
        let latest = entries.iter().map(at_ms).max().unwrap_or(0);
        let full = value.len() >= FULL_BYTES;
        if !run.keys.is_empty()
            && (full
                || run.bytes + value.len() > TARGET_BYTES
                || latest > run.from_ms.saturating_add(CHUNK_SPAN_MS))
        {
            run.flush(tree, moving, order, &mut report)?;
            done = previous.clone();
        }
        previous = Some(key.clone());
        if full {
            done = Some(key);
            continue;
        }
        if run.keys.is_empty() {
            run.from_ms = key_ms(&key);
        }
        run.keys.push(key);
        run.entries.extend(entries);
        run.bytes += value.len();
    }
    if run.bytes >= FULL_BYTES {
        run.flush(tree, moving, order, &mut report)?;
        done = previous;
    }
    Ok((done, report))
}

impl Store {
    /// Merge the small chunks of the logs keyed before `before_ms`, from
    /// where the last compaction stopped (kept in the store, so a restart
    /// goes on from there).
    pub fn compact_logs(&self, before_ms: u64) -> Result<CompactReport, StoreError> {
        let _one_at_a_time = self.maintenance.lock();
        let mut total = CompactReport::default();
        total.add(self.compact_one(
            "cdr",
            &self.cdr,
            before_ms,
            |r: &ctihost_acd::CallRecord| r.ended_ms,
            Some(super::records::order),
        )?);
        total.add(self.compact_one(
            "queue_log",
            &self.queue_log,
            before_ms,
            |e: &super::QueueLogEntry| e.at_ms,
            None,
        )?);
        total.add(self.compact_one(
            "agent_log",
            &self.agent_log,
            before_ms,
            |e: &super::AgentStateEntry| e.at_ms,
            None,
        )?);
        Ok(total)
    }

    fn compact_one<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        tree: &sled::Tree,
        before_ms: u64,
        at_ms: fn(&T) -> u64,
        order: Option<fn(&T, &T) -> std::cmp::Ordering>,
    ) -> Result<CompactReport, StoreError> {
        let cursor_key = format!("compacted/{name}");
        let cursor = self.meta.get(&cursor_key)?;
        let (last, report) = compact_tree(
            tree,
            &self.moving,
            cursor.as_deref(),
            before_ms,
            at_ms,
            order,
        )?;
        if let Some(last) = last {
            self.meta.insert(cursor_key, last)?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueueLogEntry;
    use crate::tests::record;

    fn ids(v: Vec<ctihost_acd::CallRecord>) -> Vec<String> {
        v.into_iter().map(|r| r.call_id).collect()
    }

    /// Every chunk's size, in key order.
    fn sizes(tree: &sled::Tree) -> Vec<usize> {
        tree.iter().map(|kv| kv.unwrap().1.len()).collect()
    }

    #[test]
    fn merges_a_call_a_key_into_few_keys_and_reads_the_same() {
        let s = Store::temporary().unwrap();
        let t = 10_000_000;
        for i in 0..200u64 {
            s.insert_call(&record(&format!("c{i:03}"), t + i * 100))
                .unwrap();
        }
        let one = sizes(&s.cdr)[0];
        let before = ids(s.calls_since(0, 1000).unwrap());
        let r = s.compact_logs(t + 1_000_000).unwrap();
        let per_chunk = TARGET_BYTES / one;
        // Keys left of `n` single records: full runs merged, and the rest,
        // which waits for more unless it is three quarters full.
        let keys = |n: usize| {
            let rest = n % per_chunk;
            n / per_chunk + if rest * one >= FULL_BYTES { 1 } else { rest }
        };
        assert!(r.keys_merged as usize >= 200 / per_chunk * per_chunk);
        let got = sizes(&s.cdr);
        assert_eq!(got.len(), keys(200), "{got:?}");
        assert!(got.iter().all(|&b| b <= TARGET_BYTES), "{got:?}");
        assert_eq!(ids(s.calls_since(0, 1000).unwrap()), before);
        assert_eq!(
            ids(s.calls_since(t + 5_050, 2).unwrap()),
            ["c051", "c052"],
            "from inside a merged chunk"
        );
        assert_eq!(
            s.compact_logs(t + 1_000_000).unwrap(),
            CompactReport::default(),
            "the last few wait for more"
        );
        // More calls: the waiting run fills up.
        for i in 200..400u64 {
            s.insert_call(&record(&format!("c{i:03}"), t + i * 100))
                .unwrap();
        }
        s.compact_logs(t + 1_000_000).unwrap();
        assert_eq!(s.cdr.len(), keys(400));
        assert_eq!(s.calls_since(0, 1000).unwrap().len(), 400);
    }

    #[test]
    fn leaves_what_is_newer_than_the_cutoff_and_keeps_the_span() {
        let s = Store::temporary().unwrap();
        let t = 10_000_000;
        // One every 10 s for five minutes: seven to a minute.
        for i in 0..30u64 {
            s.insert_call(&record(&format!("c{i:03}"), t + i * 10_000))
                .unwrap();
        }
        s.insert_call(&record("recent", t + 500_000)).unwrap();
        s.compact_logs(t + 400_000).unwrap();
        assert_eq!(
            s.cdr.len(),
            4 + 2 + 1,
            "four minutes merged; the last two calls wait for their minute to close; the recent one"
        );
        // The next pass starts where this one stopped and closes the last
        // minute (the recent calls are more than a minute later).
        s.insert_call(&record("recent2", t + 500_500)).unwrap();
        s.compact_logs(t + 600_000).unwrap();
        assert_eq!(s.cdr.len(), 5 + 2);
        for item in s.cdr.iter() {
            let (k, v) = item.unwrap();
            let recs = decode_chunk::<ctihost_acd::CallRecord>(&v).unwrap();
            let from = key_ms(&k);
            assert!(
                recs.iter()
                    .all(|r| r.ended_ms >= from && r.ended_ms <= from + CHUNK_SPAN_MS)
            );
        }
        assert_eq!(s.calls_since(0, 1000).unwrap().len(), 32);
    }

    #[test]
    fn the_queue_log_keeps_its_order_and_reads_from_inside_a_merged_chunk() {
        let s = Store::temporary().unwrap();
        let q = |at_ms, id: &str| QueueLogEntry {
            at_ms,
            call_id: id.into(),
            queue: "general".into(),
            agent: None,
            kind: ctihost_acd::QueueLogKind::EnterQueue,
        };
        for i in 0..500u64 {
            s.log_queue_event(&q(1000 + i, &format!("q{i:03}")))
                .unwrap();
        }
        s.compact_logs(1_000_000).unwrap();
        assert!(s.queue_log.len() < 500 / 8, "{}", s.queue_log.len());
        let got: Vec<String> = s
            .queue_log_since(1250, 3)
            .unwrap()
            .into_iter()
            .map(|e| e.call_id)
            .collect();
        assert_eq!(got, ["q250", "q251", "q252"]);
        let all: Vec<u64> = s
            .queue_log_since(0, 1000)
            .unwrap()
            .into_iter()
            .map(|e| e.at_ms)
            .collect();
        assert_eq!(all, (1000..1500).collect::<Vec<u64>>());
    }

    /// Pages read while compaction moves records between keys see every
    /// record once (the host compacts while the CLI exports).
    #[test]
    fn a_reader_paging_during_a_compaction_misses_nothing() {
        let s = Store::temporary().unwrap();
        let t = 10_000_000;
        let n = 12_000u64;
        for i in 0..n {
            s.insert_call(&record(&format!("c{i:05}"), t + i / 3))
                .unwrap();
        }
        let compacting = s.clone();
        let worker = std::thread::spawn(move || {
            for _ in 0..4 {
                compacting.compact_logs(t + 1_000_000).unwrap();
            }
        });
        let mut reads = 0;
        while !worker.is_finished() {
            reads += 1;
            let (mut since, mut after, mut seen) = (0, None::<String>, 0u64);
            loop {
                let page = s.calls_page(since, after.as_deref(), 500).unwrap();
                let Some(last) = page.last() else { break };
                since = last.ended_ms;
                after = Some(last.call_id.clone());
                seen += page.len() as u64;
            }
            assert_eq!(seen, n);
        }
        worker.join().unwrap();
        assert!(reads > 0, "the reads overlapped the compaction");
    }
}
