//! Call records in chunks. The `cdr` tree's keys are a chunk's earliest end
//! time (big-endian milliseconds) and a unique id; a value is the JSON array
//! of the chunk's records, sorted by end time and call id (a store written
//! before chunks holds one record a key, which reads the same).
//!
//! A chunk spans at most [`CHUNK_SPAN_MS`] of end times, so every record
//! that ended at or after `t` lies in a chunk keyed at or after
//! `t - CHUNK_SPAN_MS`: a page reads from there and merges, and the records
//! come back in order with none skipped, however the writer's batches
//! overlapped (a clock stepped back, interrupted calls closed at start-up).

use std::cmp::Ordering;
use std::ops::Bound;

use super::compact::key_ms;
use super::{StoreError, decode_chunk};
use ctihost_acd::CallRecord;

/// Records a key the writer writes holds at most (about 5 KB: under the
/// size at which sled moves a leaf to a file of its own, see
/// `compact::TARGET_BYTES`).
pub const CHUNK_RECORDS: usize = 8;

/// End times a chunk spans at most, ms.
pub const CHUNK_SPAN_MS: u64 = 60_000;

/// The order records are listed in: by end time, then call id.
pub fn order(a: &CallRecord, b: &CallRecord) -> Ordering {
    (a.ended_ms, &a.call_id).cmp(&(b.ended_ms, &b.call_id))
}

/// `sorted` cut into chunks of at most [`CHUNK_RECORDS`] spanning at most
/// [`CHUNK_SPAN_MS`].
pub fn chunks<'a>(sorted: &'a [&'a CallRecord]) -> impl Iterator<Item = &'a [&'a CallRecord]> {
    let mut rest = sorted;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let len = rest
            .iter()
            .take(CHUNK_RECORDS)
            .take_while(|r| r.ended_ms - first.ended_ms <= CHUNK_SPAN_MS)
            .count();
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        Some(chunk)
    })
}

/// Whether `r` comes after the cursor: ended at or after `since_ms`, and
/// after `after`'s record when that ended at `since_ms`.
fn after_cursor(r: &CallRecord, since_ms: u64, after: Option<&str>) -> bool {
    match after {
        None => r.ended_ms >= since_ms,
        Some(id) => (r.ended_ms, r.call_id.as_str()) > (since_ms, id),
    }
}

/// The first `limit` records after the cursor, in [`order`].
pub fn page(
    tree: &sled::Tree,
    since_ms: u64,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<CallRecord>, StoreError> {
    let start = since_ms.saturating_sub(CHUNK_SPAN_MS).to_be_bytes();
    let mut out: Vec<CallRecord> = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for item in tree.range::<&[u8], _>((Bound::Included(&start[..]), Bound::Unbounded)) {
        let (key, value) = item?;
        // Every record of this chunk and the ones after ended at or after
        // its key's time: once the page is full of earlier ones, stop.
        let chunk_from = key_ms(&key);
        if out.len() >= limit && out.last().is_some_and(|r| r.ended_ms < chunk_from) {
            break;
        }
        out.extend(
            decode_chunk::<CallRecord>(&value)?
                .into_iter()
                .filter(|r| after_cursor(r, since_ms, after)),
        );
        out.sort_by(order);
        out.truncate(limit);
    }
    Ok(out)
}

/// How many entries a chunk's value holds (0 when unreadable).
pub fn count(value: &[u8]) -> u64 {
    decode_chunk::<serde::de::IgnoredAny>(value).map_or(0, |v| v.len() as u64)
}

/// Delete every entry of a time-keyed tree of chunks (records, logs)
/// older than `before_ms`; returns how many. Chunks keyed a span or more
/// earlier go whole, and the few that straddle `before_ms` keep their later
/// entries, so a purge is exact to the millisecond.
pub fn purge_before<T: serde::Serialize + serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    before_ms: u64,
    at_ms: fn(&T) -> u64,
) -> Result<u64, StoreError> {
    let whole = before_ms.saturating_sub(CHUNK_SPAN_MS).to_be_bytes();
    let mut deleted = 0;
    loop {
        let mut batch = sled::Batch::default();
        let mut keys = 0;
        for item in tree
            .range::<&[u8], _>((Bound::Unbounded, Bound::Excluded(&whole[..])))
            .take(super::retention::BATCH)
        {
            let (key, value) = item?;
            deleted += count(&value);
            batch.remove(key);
            keys += 1;
        }
        if keys == 0 {
            break;
        }
        tree.apply_batch(batch)?;
    }
    let end = before_ms.to_be_bytes();
    for item in tree.range::<&[u8], _>((Bound::Included(&whole[..]), Bound::Excluded(&end[..]))) {
        let (key, value) = item?;
        let entries = decode_chunk::<T>(&value)?;
        let before = entries.len();
        let kept: Vec<T> = entries
            .into_iter()
            .filter(|e| at_ms(e) >= before_ms)
            .collect();
        deleted += (before - kept.len()) as u64;
        if kept.is_empty() {
            tree.remove(key)?;
        } else if kept.len() < before {
            tree.insert(key, serde_json::to_vec(&kept)?)?;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::tests::record;

    fn ended(r: &CallRecord) -> u64 {
        r.ended_ms
    }

    fn ids(v: Vec<CallRecord>) -> Vec<String> {
        v.into_iter().map(|r| r.call_id).collect()
    }

    #[test]
    fn a_batch_is_few_keys_and_reads_back_in_order() {
        let s = Store::temporary().unwrap();
        let batch: Vec<CallRecord> = (0..100)
            .rev()
            .map(|i| record(&format!("c{i:03}"), 1_000_000 + i * 10))
            .collect();
        s.insert_calls(&batch).unwrap();
        assert_eq!(s.cdr.len(), 100usize.div_ceil(CHUNK_RECORDS));
        let all = ids(s.calls_since(0, 1000).unwrap());
        let want: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
        assert_eq!(all, want);
        assert_eq!(
            ids(s.calls_since(1_000_000 + 455, 3).unwrap()),
            ["c046", "c047", "c048"],
            "from inside a chunk"
        );
    }

    #[test]
    fn a_chunk_spans_at_most_a_minute_of_end_times() {
        let s = Store::temporary().unwrap();
        let batch = [
            record("a", 1_000_000),
            record("b", 1_000_000 + CHUNK_SPAN_MS),
            record("c", 1_000_000 + CHUNK_SPAN_MS + 1),
        ];
        s.insert_calls(&batch).unwrap();
        assert_eq!(s.cdr.len(), 2);
    }

    /// Overlapping chunks (a clock stepped back, interrupted calls closed at
    /// start-up) and pages of one record at a time through calls that
    /// ended in the same millisecond: each record once, in order.
    #[test]
    fn pages_through_overlapping_chunks_skip_and_repeat_nothing() {
        let s = Store::temporary().unwrap();
        let t = 5_000_000;
        s.insert_calls(&[
            record("x1", t),
            record("x3", t + 30_000),
            record("x5", t + 50_000),
        ])
        .unwrap();
        s.insert_calls(&[record("x2", t + 10_000), record("x4", t + 40_000)])
            .unwrap();
        s.insert_calls(&[record("s1", t + 40_000), record("s2", t + 40_000)])
            .unwrap();
        s.insert_call(&record("old", t - 1)).unwrap();
        let want = ["old", "x1", "x2", "x3", "s1", "s2", "x4", "x5"];
        assert_eq!(ids(s.calls_since(0, 100).unwrap()), want);
        let mut got = Vec::new();
        let (mut since, mut after) = (0, None::<String>);
        loop {
            let page = s.calls_page(since, after.as_deref(), 1).unwrap();
            let Some(r) = page.into_iter().next() else {
                break;
            };
            since = r.ended_ms;
            after = Some(r.call_id.clone());
            got.push(r.call_id);
            assert!(got.len() <= want.len(), "{got:?}");
        }
        assert_eq!(got, want);
        assert_eq!(ids(s.calls_since(t + 40_000, 2).unwrap()), ["s1", "s2"]);
    }

    #[test]
    fn a_store_with_one_record_a_key_reads_the_same() {
        let s = Store::temporary().unwrap();
        // The old layout: the record's end time, then its call id.
        for (id, at) in [("b", 2_000_000u64), ("a", 1_000_000)] {
            let mut key = at.to_be_bytes().to_vec();
            key.extend_from_slice(id.as_bytes());
            s.cdr
                .insert(key, serde_json::to_vec(&record(id, at)).unwrap())
                .unwrap();
        }
        s.insert_call(&record("c", 1_500_000)).unwrap();
        assert_eq!(ids(s.calls_since(0, 10).unwrap()), ["a", "c", "b"]);
        assert_eq!(ids(s.calls_since(1_500_000, 10).unwrap()), ["c", "b"]);
        assert_eq!(count(&s.cdr.first().unwrap().unwrap().1), 1);
    }

    #[test]
    fn a_purge_keeps_the_later_records_of_a_chunk_that_straddles_the_cutoff() {
        let s = Store::temporary().unwrap();
        let cut = 10_000_000;
        s.insert_calls(&[record("gone", cut - 5 * CHUNK_SPAN_MS)])
            .unwrap();
        s.insert_calls(&[
            record("a", cut - 30_000),
            record("b", cut - 1),
            record("c", cut),
            record("d", cut + 10_000),
        ])
        .unwrap();
        assert_eq!(s.cdr.len(), 2);
        assert_eq!(purge_before(&s.cdr, cut, ended).unwrap(), 3);
        assert_eq!(ids(s.calls_since(0, 10).unwrap()), ["c", "d"]);
        assert_eq!(purge_before(&s.cdr, cut, ended).unwrap(), 0, "nothing more");
    }
}
