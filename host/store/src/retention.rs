//! Retention of the store's logs. Call records, the queue log, the
//! agent-state log and the audit log are keyed by time (big-endian
//! milliseconds first), so what is past its retention is a prefix of each
//! tree. Without a purge the store grows with every call (about 2.8 KB on
//! disk a call in the soak) until the disk is full; with it, the store holds
//! `retention_days` of traffic and no more (exports keep the rest).

use super::records::purge_before as purge_chunks;
use super::{AgentStateEntry, AuditEntry, QueueLogEntry, Store, StoreError};
use ctihost_acd::CallRecord;

/// Keys deleted per batch: a purge of months of records must not hold the
/// tree's writers up for long.
pub(super) const BATCH: usize = 10_000;

const DAY_MS: u64 = 24 * 3600 * 1000;

/// How long each log is kept, in days (0: kept for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Call records, the queue log, the agent-state log and the index
    /// entries of purged recordings.
    pub records_days: u32,
    pub audit_days: u32,
}

/// What one purge deleted, by log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionReport {
    pub calls: u64,
    pub queue_log: u64,
    pub agent_log: u64,
    pub audit: u64,
    pub recording_entries: u64,
}

impl RetentionReport {
    pub fn total(&self) -> u64 {
        self.calls + self.queue_log + self.agent_log + self.audit + self.recording_entries
    }

    /// Each log's count with its metric label.
    pub fn by_log(&self) -> [(&'static str, u64); 5] {
        [
            ("calls", self.calls),
            ("queue_log", self.queue_log),
            ("agent_log", self.agent_log),
            ("audit", self.audit),
            ("recording_index", self.recording_entries),
        ]
    }
}

fn cutoff(now_ms: u64, days: u32) -> Option<u64> {
    (days > 0).then(|| now_ms.saturating_sub(u64::from(days) * DAY_MS))
}

impl Store {
    /// Delete what is past its retention at `now_ms`.
    pub fn purge_logs(
        &self,
        now_ms: u64,
        retention: Retention,
    ) -> Result<RetentionReport, StoreError> {
        let _one_at_a_time = self.maintenance.lock();
        let mut r = RetentionReport::default();
        if let Some(before) = cutoff(now_ms, retention.records_days) {
            r.calls = purge_chunks(&self.cdr, before, |r: &CallRecord| r.ended_ms)?;
            r.queue_log = purge_chunks(&self.queue_log, before, |e: &QueueLogEntry| e.at_ms)?;
            r.agent_log = purge_chunks(&self.agent_log, before, |e: &AgentStateEntry| e.at_ms)?;
            r.recording_entries = self.purge_recording_entries(before)?;
        }
        if let Some(before) = cutoff(now_ms, retention.audit_days) {
            r.audit = purge_chunks(&self.audit, before, |e: &AuditEntry| e.at_ms)?;
        }
        if r.total() > 0 {
            self.flush()?;
        }
        Ok(r)
    }

    /// Index entries of recordings whose audio was purged before
    /// `before_ms`: their call's record goes at the same age.
    fn purge_recording_entries(&self, before_ms: u64) -> Result<u64, StoreError> {
        let mut n = 0;
        for e in self.list_recordings()? {
            if e.purged_ms.is_some_and(|p| p < before_ms) {
                self.recordings.remove(e.call_id.as_bytes())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The store's size on disk, bytes.
    pub fn disk_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::record;
    use crate::{AgentStateEntry, AuditEntry};

    #[test]
    fn deletes_exactly_what_is_older_than_the_retention() {
        let s = Store::temporary().unwrap();
        let now = 3000 * DAY_MS;
        let day = |d: u64| now - d * DAY_MS;
        // One a millisecond either side of the cutoff, and a batch's worth
        // more than one batch.
        let cut = day(90);
        for i in 0..(BATCH as u64 + 5) {
            s.insert_call(&record(&format!("old-{i}"), cut - 1 - i))
                .unwrap();
        }
        s.insert_call(&record("at-cutoff", cut)).unwrap();
        s.insert_call(&record("new", day(1))).unwrap();
        for (at, agent) in [(cut - 1, "1001"), (cut, "1002")] {
            s.log_agent_state(&AgentStateEntry {
                at_ms: at,
                agent: agent.into(),
                state: "ready".into(),
            })
            .unwrap();
        }
        let audit = |at_ms| AuditEntry {
            at_ms,
            who: "admin".into(),
            action: "test".into(),
            call_id: None,
            outcome: String::new(),
        };
        s.audit(&audit(day(100))).unwrap();
        s.audit(&audit(day(2000))).unwrap();
        let keep = Retention {
            records_days: 90,
            audit_days: 1000,
        };
        let r = s.purge_logs(now, keep).unwrap();
        assert_eq!(r.calls, BATCH as u64 + 5);
        assert_eq!(r.agent_log, 1);
        assert_eq!(r.audit, 1);
        let left: Vec<String> = s
            .calls_since(0, 100)
            .unwrap()
            .into_iter()
            .map(|c| c.call_id)
            .collect();
        assert_eq!(left, ["at-cutoff", "new"]);
        let agents = s.agent_log_since(0, 10).unwrap();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].agent, "1002");
        assert_eq!(s.audit_since(0, 10).unwrap().len(), 1);
        // Nothing more to do.
        let again = s.purge_logs(now, keep).unwrap();
        assert_eq!(again.total(), 0);
    }

    #[test]
    fn zero_days_keeps_everything() {
        let s = Store::temporary().unwrap();
        s.insert_call(&record("ancient", 100_000)).unwrap();
        let r = s
            .purge_logs(
                400 * DAY_MS,
                Retention {
                    records_days: 0,
                    audit_days: 0,
                },
            )
            .unwrap();
        assert_eq!(r.total(), 0);
        assert_eq!(s.calls_since(0, 10).unwrap().len(), 1);
    }
}
