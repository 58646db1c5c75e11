//! Memory per stored call: `cargo bench -p ctihost --bench store`.
//!
//! sled (0.34) keeps a page-table entry in memory for every page of every
//! tree, paged out or not, and a leaf page holds at most 16 keys: the
//! host's resident memory grows with the number of keys the store holds,
//! whatever the page cache's bound. This writes calls as the record writer
//! does (a record, four queue-log lines, two agent-state lines, the
//! live-call entry put and removed), two ways, each in its own process so
//! one allocator's leftovers do not count against the other:
//! 1. baseline: one key per record and per log line (the host before
//!    batching);
//! 2. the host: one key per log and per record chunk per writer batch
//!    (one call a batch, what the writer sees at a bank's rate), and the
//!    store's compaction merging what is older than 10 s.
//!
//! It prints RSS growth per call once the page cache is full (the last
//! two thirds of the run) and the ratio. `CTIHOST_STORE_CALLS` sets the
//! calls per way (default 600,000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The host's allocator (host/src/main.rs): RSS per call depends on it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::BTreeMap;
use std::process::Command;

use ctihost::acd::{CallRecord, Disposition, QueueLogKind};
use ctihost::store::{AgentStateEntry, QueueLogEntry, Store};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn record(i: u64, at: u64) -> CallRecord {
    CallRecord {
        call_id: format!("{i}-6577@127.0.0.1"),
        caller: "+8613800000000".into(),
        dialed: "95588".into(),
        trunk: "pstn".into(),
        arrived_ms: at,
        queued_ms: Some(at),
        offered_ms: Some(at + 10),
        answered_ms: Some(at + 20),
        ended_ms: at + 100,
        queue: Some("general".into()),
        agent: Some(format!("{}", 1000 + i % 500)),
        disposition: Disposition::Answered,
        wait_secs: 0.02,
        talk_secs: 0.08,
        overflowed_from: vec![],
        plugin_versions: BTreeMap::from([("skills-router".into(), "f4bb5d64e0a1".into())]),
        cause: "caller hung up".into(),
    }
}

/// Write `calls` calls; bytes of RSS per call over the last two thirds.
fn measure(batched: bool, calls: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t0 = 1_796_000_000_000u64;
    let (mut queue, mut agents) = (Vec::new(), Vec::new());
    let mut third = (0, 0);
    for i in 0..calls {
        let at = t0 + i;
        let r = record(i, at);
        store.put_live_call(&r).unwrap();
        for kind in [
            QueueLogKind::EnterQueue,
            QueueLogKind::Offered,
            QueueLogKind::Connect,
            QueueLogKind::Complete,
        ] {
            queue.push(QueueLogEntry {
                at_ms: at,
                call_id: r.call_id.clone(),
                queue: "general".into(),
                agent: r.agent.clone(),
                kind,
            });
        }
        for state in ["on-call", "ready"] {
            agents.push(AgentStateEntry {
                at_ms: at,
                agent: r.agent.clone().unwrap(),
                state: state.into(),
            });
        }
        if batched {
            // What the writer sees at a bank's rate: one call a wake-up.
            store.log_queue_events(&queue).unwrap();
            store.log_agent_states(&agents).unwrap();
            store.insert_calls(&[&r]).unwrap();
            // The host's compaction runs every 2 s and reads at most 4,000
            // chunks a tree a pass; here 5,000 calls come between passes,
            // so a pass is repeated until it merges nothing (one pass would
            // fall behind and measure a backlog, not the steady state).
            if i % 5_000 == 4_999 {
                while store.compact_logs(at - 10_000).unwrap().keys_merged > 0 {}
            }
        } else {
            for e in &queue {
                store.log_queue_event(e).unwrap();
            }
            for e in &agents {
                store.log_agent_state(e).unwrap();
            }
            store.insert_call(&r).unwrap();
        }
        queue.clear();
        agents.clear();
        store.end_live_call(&r.call_id).unwrap();
        if i % 10 == 9 {
            store.flush_calls().unwrap();
        }
        if i + 1 == calls / 3 {
            third = (i + 1, rss_kib());
        }
    }
    let end = rss_kib();
    (end.saturating_sub(third.1) * 1024) as f64 / (calls - third.0) as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let calls: u64 = std::env::var("CTIHOST_STORE_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600_000);
    if let Ok(way) = std::env::var("CTIHOST_STORE_WAY") {
        println!("{}", measure(way == "batched", calls));
        return;
    }
    let me = std::env::current_exe().unwrap();
    let run = |way: &str| -> f64 {
        let out = Command::new(&me)
            .env("CTIHOST_STORE_WAY", way)
            .env("CTIHOST_STORE_CALLS", calls.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    // Medians of three runs each: the machine is noisy.
    let median = |way: &str| {
        let mut v: Vec<f64> = (0..3).map(|_| run(way)).collect();
        v.sort_by(f64::total_cmp);
        v[1]
    };
    let base = median("per-line");
    let host = median("batched");
    println!(
        "store: {calls} calls a way, RSS growth per call once the page cache is full (median of 3)"
    );
    println!("  baseline, a key per record and log line: {base:>6.0} bytes a call");
    println!("  the host, a batch a call, compacted:     {host:>6.0} bytes a call");
    println!("  ratio host/baseline: {:.2}", host / base.max(1.0));
}
