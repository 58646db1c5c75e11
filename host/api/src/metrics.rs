//! Counters for Prometheus (`GET /metrics`): calls by disposition and SIP
//! messages by method and status, kept here; queue and agent gauges come from
//! the ACD and plugin figures from the plugin host when the page is rendered.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::acd::AcdSnapshot;
use crate::plugins::PluginStatus;

#[derive(Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<String, u64>>,
    /// (direction, method or status) -> count.
    sip: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Times a bound refused something, by bound (static names only).
    bounds: Mutex<BTreeMap<&'static str, u64>>,
    /// The plugins the config names, by role (checked when rendered).
    configured: Mutex<Vec<(&'static str, String, crate::plugins::PluginKind)>>,
    draining: AtomicBool,
    /// Calls and probes refused with 503 while draining.
    drain_refused: AtomicU64,
    /// Keys deleted by the store's retention, by log (static names).
    store_purged: Mutex<BTreeMap<&'static str, u64>>,
    store_purge_failures: AtomicU64,
    store_compacted_keys: AtomicU64,
    store_compaction_failures: AtomicU64,
}

impl Metrics {
    pub fn call_ended(&self, disposition: &str) {
        *self.calls.lock().entry(disposition.to_owned()).or_default() += 1;
    }

    /// A SIP message seen on the wire: `first_line` is its start line. The
    /// network cannot add label values: methods outside the ones the host
    /// knows, and anything but a status code 100-699, count as "other".
    pub fn sip_message(&self, direction: &'static str, first_line: &[u8]) {
        let line = String::from_utf8_lossy(first_line);
        let key = match line.strip_prefix("SIP/2.0 ") {
            Some(rest) => match rest.split_whitespace().next().map(str::parse::<u16>) {
                Some(Ok(code)) if (100..=699).contains(&code) => format!("status:{code}"),
                _ => "status:other".to_owned(),
            },
            None => {
                let method = line.split_whitespace().next().unwrap_or("");
                if crate::sip::wire::KNOWN_METHODS.contains(&method) {
                    format!("method:{method}")
                } else {
                    "method:other".to_owned()
                }
            }
        };
        *self.sip.lock().entry((direction, key)).or_default() += 1;
    }

    /// A bound refused something (a connection, a queue entry).
    pub fn bound_hit(&self, bound: &'static str) {
        *self.bounds.lock().entry(bound).or_default() += 1;
    }

    pub fn store_purged(&self, log: &'static str, n: u64) {
        *self.store_purged.lock().entry(log).or_default() += n;
    }

    /// Small chunks merged by the store's compaction.
    pub fn store_compacted(&self, keys: u64) {
        self.store_compacted_keys.fetch_add(keys, Ordering::Relaxed);
    }

    pub fn store_compaction_failed(&self) {
        self.store_compaction_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn store_purge_failed(&self) {
        self.store_purge_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::Relaxed);
    }

    pub fn drain_refused(&self) {
        self.drain_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_configured_plugins(
        &self,
        configured: Vec<(&'static str, String, crate::plugins::PluginKind)>,
    ) {
        *self.configured.lock() = configured;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, acd: Option<&AcdSnapshot>, plugins: &[PluginStatus]) -> String {
        let mut s = String::new();
        s.push_str("# HELP ctihost_calls_total Calls ended, by disposition.\n# TYPE ctihost_calls_total counter\n");
        for (d, n) in self.calls.lock().iter() {
            let _ = writeln!(s, "ctihost_calls_total{{disposition=\"{}\"}} {n}", esc(d));
        }
        s.push_str("# HELP ctihost_bound_hits_total Times a bound refused something the network asked for, by bound.\n# TYPE ctihost_bound_hits_total counter\n");
        for (b, n) in self.bounds.lock().iter() {
            let _ = writeln!(s, "ctihost_bound_hits_total{{bound=\"{b}\"}} {n}");
        }
        s.push_str("# HELP ctihost_store_purged_total Keys deleted by the store's retention, by log.\n# TYPE ctihost_store_purged_total counter\n");
        for (log, n) in self.store_purged.lock().iter() {
            let _ = writeln!(s, "ctihost_store_purged_total{{log=\"{log}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP ctihost_store_purge_failures_total Retention purges that failed (see the log).\n# TYPE ctihost_store_purge_failures_total counter\nctihost_store_purge_failures_total {}",
            self.store_purge_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP ctihost_store_compacted_keys_total Small chunks of records and logs merged into bigger ones (sled keeps memory per key).\n# TYPE ctihost_store_compacted_keys_total counter\nctihost_store_compacted_keys_total {}\n# HELP ctihost_store_compaction_failures_total Compactions that failed (see the log).\n# TYPE ctihost_store_compaction_failures_total counter\nctihost_store_compaction_failures_total {}",
            self.store_compacted_keys.load(Ordering::Relaxed),
            self.store_compaction_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP ctihost_draining 1 while the host drains (new calls and OPTIONS get 503).\n# TYPE ctihost_draining gauge\nctihost_draining {}",
            u8::from(self.draining.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            s,
            "# HELP ctihost_drain_refused_total New calls and OPTIONS refused with 503 while draining.\n# TYPE ctihost_drain_refused_total counter\nctihost_drain_refused_total {}",
            self.drain_refused.load(Ordering::Relaxed)
        );
        s.push_str("# HELP ctihost_plugin_configured_missing 1 when a plugin the config names for a role is not loaded (or of another kind).\n# TYPE ctihost_plugin_configured_missing gauge\n");
        for (role, name, kind) in self.configured.lock().iter() {
            let missing = !plugins.iter().any(|p| &p.name == name && p.kind == *kind);
            let _ = writeln!(
                s,
                "ctihost_plugin_configured_missing{{role=\"{role}\",plugin=\"{}\"}} {}",
                esc(name),
                u8::from(missing)
            );
        }
        s.push_str("# HELP ctihost_sip_requests_total SIP requests, by direction and method.\n# TYPE ctihost_sip_requests_total counter\n");
        let sip = self.sip.lock().clone();
        for ((dir, key), n) in sip.iter() {
            if let Some(m) = key.strip_prefix("method:") {
                let _ = writeln!(
                    s,
                    "ctihost_sip_requests_total{{direction=\"{dir}\",method=\"{}\"}} {n}",
                    esc(m)
                );
            }
        }
        s.push_str("# HELP ctihost_sip_responses_total SIP responses, by direction and status code.\n# TYPE ctihost_sip_responses_total counter\n");
        for ((dir, key), n) in sip.iter() {
            if let Some(code) = key.strip_prefix("status:") {
                let _ = writeln!(
                    s,
                    "ctihost_sip_responses_total{{direction=\"{dir}\",status=\"{}\"}} {n}",
                    esc(code)
                );
            }
        }
        if let Some(a) = acd {
            s.push_str("# HELP ctihost_queue_waiting Calls waiting in the queue now.\n# TYPE ctihost_queue_waiting gauge\n");
            for q in &a.queues {
                let _ = writeln!(
                    s,
                    "ctihost_queue_waiting{{queue=\"{}\"}} {}",
                    esc(&q.name),
                    q.waiting
                );
            }
            s.push_str("# HELP ctihost_queue_longest_wait_seconds Wait of the oldest waiting call.\n# TYPE ctihost_queue_longest_wait_seconds gauge\n");
            for q in &a.queues {
                let _ = writeln!(
                    s,
                    "ctihost_queue_longest_wait_seconds{{queue=\"{}\"}} {:.3}",
                    esc(&q.name),
                    q.longest_wait_ms as f64 / 1000.0
                );
            }
            s.push_str("# HELP ctihost_agents Agents, by state.\n# TYPE ctihost_agents gauge\n");
            for (state, n) in &a.agents_by_state {
                let _ = writeln!(s, "ctihost_agents{{state=\"{state}\"}} {n}");
            }
        }
        s.push_str("# HELP ctihost_plugin_invocations_total Hook invocations, by plugin and version.\n# TYPE ctihost_plugin_invocations_total counter\n");
        for p in plugins {
            let _ = writeln!(
                s,
                "ctihost_plugin_invocations_total{{plugin=\"{}\",version=\"{}\"}} {}",
                esc(&p.name),
                esc(&p.version),
                p.invocations
            );
        }
        s.push_str("# HELP ctihost_plugin_failures_total Failed invocations (fallback used), by plugin and version.\n# TYPE ctihost_plugin_failures_total counter\n");
        for p in plugins {
            let _ = writeln!(
                s,
                "ctihost_plugin_failures_total{{plugin=\"{}\",version=\"{}\"}} {}",
                esc(&p.name),
                esc(&p.version),
                p.failures
            );
        }
        s.push_str("# HELP ctihost_plugin_starved_total Calls the host could not run in time: starved, a slow host call, or no free instance slot (fallback used, not the plugin's failure).\n# TYPE ctihost_plugin_starved_total counter\n");
        for p in plugins {
            let _ = writeln!(
                s,
                "ctihost_plugin_starved_total{{plugin=\"{}\",version=\"{}\"}} {}",
                esc(&p.name),
                esc(&p.version),
                p.starved
            );
        }
        type Figure = fn(&PluginStatus) -> u64;
        let kv: [(&str, &str, &str, Figure); 3] = [
            (
                "ctihost_plugin_kv_bytes",
                "gauge",
                "Bytes in the plugin's key-value namespace (keys and values).",
                |p| p.kv.bytes,
            ),
            (
                "ctihost_plugin_kv_keys",
                "gauge",
                "Keys in the plugin's key-value namespace.",
                |p| p.kv.keys,
            ),
            (
                "ctihost_plugin_kv_refused_total",
                "counter",
                "Key-value writes refused for the plugin's quota.",
                |p| p.kv.refused,
            ),
        ];
        for (metric, kind, help, figure) in kv {
            let _ = writeln!(s, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
            for p in plugins {
                let _ = writeln!(s, "{metric}{{plugin=\"{}\"}} {}", esc(&p.name), figure(p));
            }
        }
        // host.counter-add: at most 256 names per plugin, each at most 64
        // bytes (the sandbox's bounds), so the series stay bounded.
        s.push_str("# HELP ctihost_plugin_counter A plugin's own counter (host.counter-add), by plugin and name.\n# TYPE ctihost_plugin_counter gauge\n");
        for p in plugins {
            for (name, value) in &p.counters {
                let _ = writeln!(
                    s,
                    "ctihost_plugin_counter{{plugin=\"{}\",name=\"{}\"}} {value}",
                    esc(&p.name),
                    esc(name)
                );
            }
        }
        s.push_str("# HELP ctihost_plugin_latency_seconds Invocation latency, by plugin and version.\n# TYPE ctihost_plugin_latency_seconds summary\n");
        for p in plugins {
            let labels = format!(
                "plugin=\"{}\",version=\"{}\"",
                esc(&p.name),
                esc(&p.version)
            );
            let _ = writeln!(
                s,
                "ctihost_plugin_latency_seconds_sum{{{labels}}} {:.6}\nctihost_plugin_latency_seconds_count{{{labels}}} {}",
                p.mean_us * p.invocations as f64 / 1e6,
                p.invocations
            );
        }
        s
    }
}

/// The driver's counters are these.
impl crate::center::CenterMetrics for Metrics {
    fn call_ended(&self, disposition: &str) {
        Metrics::call_ended(self, disposition);
    }
    fn arrival_refused(&self) {
        Metrics::bound_hit(self, "center_unread_arrivals");
    }
}

/// The SIP room's counters are these.
impl crate::sip::SipMetrics for Metrics {
    fn sip_message(&self, direction: &'static str, first_line: &[u8]) {
        Metrics::sip_message(self, direction, first_line);
    }
    fn bound_hit(&self, bound: &'static str) {
        Metrics::bound_hit(self, bound);
    }
    fn set_draining(&self, on: bool) {
        Metrics::set_draining(self, on);
    }
    fn drain_refused(&self) {
        Metrics::drain_refused(self);
    }
}

/// The store's size on disk (read when scraped: a file's length and the
/// blob directory).
pub fn render_store_size(bytes: u64) -> String {
    format!(
        "# HELP ctihost_store_disk_bytes The embedded store's size on disk.\n# TYPE ctihost_store_disk_bytes gauge\nctihost_store_disk_bytes {bytes}\n"
    )
}

/// The allocator's figures at scrape time: `allocated` is what the host's
/// live data holds, `resident` what the process keeps in RAM for it (the
/// difference is fragmentation and pages not yet returned). Near zero in a
/// program that links the library without making jemalloc its allocator
/// (the binary does, in main.rs).
pub fn render_allocator() -> String {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The figures are cached until the epoch moves.
    if epoch::advance().is_err() {
        return String::new();
    }
    let (Ok(allocated), Ok(resident), Ok(retained)) = (
        stats::allocated::read(),
        stats::resident::read(),
        stats::retained::read(),
    ) else {
        return String::new();
    };
    format!(
        "# HELP ctihost_memory_allocated_bytes Bytes the host's live data holds (jemalloc stats.allocated).\n# TYPE ctihost_memory_allocated_bytes gauge\nctihost_memory_allocated_bytes {allocated}\n\
         # HELP ctihost_memory_resident_bytes Bytes of RAM the allocator keeps (jemalloc stats.resident).\n# TYPE ctihost_memory_resident_bytes gauge\nctihost_memory_resident_bytes {resident}\n\
         # HELP ctihost_memory_retained_bytes Bytes of address space the allocator keeps without RAM behind it (jemalloc stats.retained).\n# TYPE ctihost_memory_retained_bytes gauge\nctihost_memory_retained_bytes {retained}\n"
    )
}

/// The SIP digest check's refusals.
pub fn render_auth(f: &crate::sip::digest::AuthFigures) -> String {
    format!(
        "# HELP ctihost_sip_digest_replays_total Digest answers refused as replays of a nonce count already used.\n# TYPE ctihost_sip_digest_replays_total counter\nctihost_sip_digest_replays_total {}\n\
         # HELP ctihost_sip_digest_throttled_total Digest attempts refused unchecked: too many failures from the source.\n# TYPE ctihost_sip_digest_throttled_total counter\nctihost_sip_digest_throttled_total {}\n\
         # HELP ctihost_sip_digest_failing_sources Sources with failed digest attempts in the current window (at most 10000 tracked).\n# TYPE ctihost_sip_digest_failing_sources gauge\nctihost_sip_digest_failing_sources {}\n\
         # HELP ctihost_sip_digest_throttled_users Users whose attempts from elsewhere than their own phone are refused unchecked now (20 failures a minute).\n# TYPE ctihost_sip_digest_throttled_users gauge\nctihost_sip_digest_throttled_users {}\n",
        f.replays, f.throttled, f.failing_sources, f.throttled_users
    )
}

/// Label values escape backslash, quote and newline.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_cannot_add_label_values() {
        let m = Metrics::default();
        for i in 0..2000 {
            m.sip_message("in", format!("M{i}ETHOD sip:x SIP/2.0").as_bytes());
            m.sip_message("in", format!("SIP/2.0 {} Odd", 700 + i).as_bytes());
        }
        m.sip_message("in", b"INVITE sip:x SIP/2.0");
        m.sip_message("in", b"SIP/2.0 486 Busy Here");
        let page = m.render(None, &[]);
        let series = page
            .lines()
            .filter(|l| l.starts_with("ctihost_sip_"))
            .count();
        assert_eq!(series, 4, "{page}");
        assert!(
            page.contains("ctihost_sip_requests_total{direction=\"in\",method=\"other\"} 2000")
        );
        assert!(
            page.contains("ctihost_sip_responses_total{direction=\"in\",status=\"other\"} 2000")
        );
    }

    #[test]
    fn disposition_names_match_the_call_records() {
        use crate::acd::Disposition::*;
        for d in [
            Answered,
            AbandonedInQueue,
            AbandonedRinging,
            AbandonedInIvr,
            Rejected,
            Overflowed,
            Forwarded,
            Failed,
            Interrupted,
        ] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
    }

    #[test]
    fn counts_render_as_prometheus_text() {
        let m = Metrics::default();
        m.call_ended("answered");
        m.call_ended("answered");
        m.sip_message("in", b"INVITE sip:95588@h SIP/2.0");
        m.sip_message("out", b"SIP/2.0 200 OK");
        m.sip_message("in", b"X\x01Y sip:a SIP/2.0");
        let text = m.render(None, &[]);
        assert!(
            text.contains("ctihost_calls_total{disposition=\"answered\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("ctihost_sip_requests_total{direction=\"in\",method=\"INVITE\"} 1\n")
        );
        assert!(text.contains("ctihost_sip_responses_total{direction=\"out\",status=\"200\"} 1\n"));
        assert!(text.contains("method=\"other\"} 1\n"), "{text}");
    }
}
