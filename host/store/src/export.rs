//! Call records as CSV, JSON or a table for people.

use ctihost_acd::CallRecord;

const COLUMNS: [&str; 17] = [
    "call_id",
    "caller",
    "dialed",
    "trunk",
    "arrived",
    "queued",
    "offered",
    "answered",
    "ended",
    "queue",
    "agent",
    "disposition",
    "wait_secs",
    "talk_secs",
    "overflowed_from",
    "plugin_versions",
    "cause",
];

fn time(ms: Option<u64>) -> String {
    ms.map(|ms| {
        humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string()
    })
    .unwrap_or_default()
}

fn row(r: &CallRecord) -> [String; 17] {
    [
        r.call_id.clone(),
        r.caller.clone(),
        r.dialed.clone(),
        r.trunk.clone(),
        time(Some(r.arrived_ms)),
        time(r.queued_ms),
        time(r.offered_ms),
        time(r.answered_ms),
        time(Some(r.ended_ms)),
        r.queue.clone().unwrap_or_default(),
        r.agent.clone().unwrap_or_default(),
        serde_json::to_value(r.disposition)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        format!("{:.3}", r.wait_secs),
        format!("{:.3}", r.talk_secs),
        r.overflowed_from.join(" "),
        r.plugin_versions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        r.cause.clone(),
    ]
}

pub fn to_csv(records: &[CallRecord]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for r in records {
        w.write_record(row(r))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A compact table: the columns a supervisor scans.
pub fn to_table(records: &[CallRecord]) -> String {
    let mut out = format!(
        "{:<24} {:<16} {:<10} {:<10} {:<8} {:<18} {:>8} {:>8}\n",
        "ended", "caller", "dialed", "queue", "agent", "disposition", "wait_s", "talk_s"
    );
    for r in records {
        let c = row(r);
        out.push_str(&format!(
            "{:<24} {:<16} {:<10} {:<10} {:<8} {:<18} {:>8.1} {:>8.1}\n",
            c[8], c[1], c[2], c[9], c[10], c[11], r.wait_secs, r.talk_secs
        ));
    }
    out
}
