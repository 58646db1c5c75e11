//! `plugin list` and `plugin history` as tables a person reads, with times in
//! the local zone (the machine's, where the default center's days begin too).

use serde_json::Value;

use ctihost::calendar::Calendar;

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// One line, printable, at most `width` characters (plugin and CRM texts
/// can be long or hold control characters).
fn cell(s: &str, width: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= width {
        clean
    } else {
        let cut: String = clean.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn when(cal: &Calendar, v: &Value, key: &str) -> String {
    v[key]
        .as_u64()
        .map(|ms| cal.format(ms).replace('T', " "))
        .unwrap_or_else(|| "-".to_owned())
}

/// The answer of `GET /admin/plugins`.
pub fn plugins(list: &Value, cal: &Calendar) -> String {
    let mut out = format!(
        "{:<18} {:<16} {:<12} {:<12} {:<25} {:<8} {:>7} {:>6} {:>9}  {}\n",
        "name",
        "kind",
        "version",
        "previous",
        "loaded",
        "by",
        "calls",
        "fails",
        "mean_us",
        "source"
    );
    for p in list.as_array().into_iter().flatten() {
        let counters = p["counters"]
            .as_object()
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<18} {:<16} {:<12} {:<12} {:<25} {:<8} {:>7} {:>6} {:>9.1}  {}{}\n",
            cell(&text(p, "name"), 18),
            text(p, "kind"),
            cell(&text(p, "version"), 12),
            cell(&text(p, "previous"), 12),
            when(cal, p, "loaded_at_ms"),
            text(p, "trigger"),
            p["invocations"].as_u64().unwrap_or(0),
            p["failures"].as_u64().unwrap_or(0),
            p["mean_us"].as_f64().unwrap_or(0.0),
            text(p, "source"),
            if counters.is_empty() {
                String::new()
            } else {
                format!("  [{}]", cell(&counters, 80))
            },
        ));
    }
    out
}

/// The answer of `GET /admin/plugins/history` (oldest first).
pub fn history(entries: &Value, cal: &Calendar) -> String {
    let mut out = format!(
        "{:<25} {:<18} {:<12} {:<14} {:<12}  {}\n",
        "at", "plugin", "version", "by", "outcome", "message"
    );
    for e in entries.as_array().into_iter().flatten() {
        let version = text(e, "version");
        out.push_str(&format!(
            "{:<25} {:<18} {:<12} {:<14} {:<12}  {}\n",
            when(cal, e, "at_ms"),
            cell(&text(e, "plugin"), 18),
            cell(if version.is_empty() { "-" } else { &version }, 12),
            text(e, "trigger"),
            text(e, "outcome"),
            cell(&text(e, "message"), 120),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_rows_are_local_times_and_one_line_each() {
        let cal = Calendar::named("Asia/Shanghai").unwrap();
        let h = serde_json::json!([{
            "at_ms": 1_796_083_200_000u64, "plugin": "skills-router",
            "version": "4fc5ea9c4a2c7f00aa", "trigger": "watch", "outcome": "rejected",
            "message": "line one\nline two"
        }]);
        let t = history(&h, &cal);
        let row = t.lines().nth(1).unwrap();
        assert!(row.starts_with("2026-12-01 08:00:00+08:00"), "{row}");
        assert!(
            row.contains("4fc5ea9c4a2…") && row.contains("line one line two"),
            "{row}"
        );
        assert_eq!(t.lines().count(), 2);
    }
}
