//! Screen-pop latency: `cargo bench -p ctihost --bench screenpop` (or `make bench`).
//!
//! Time from the INVITE reaching the host to the card arriving on a desktop's
//! WebSocket, with the stock router, screen-pop and CRM connector plugins and
//! a real HTTP CRM on loopback. SIPp places calls (built-in `uac`) that the
//! ACD offers to agents registered at one SIPp answerer; a supervisor's event
//! stream (which carries every agent's cards) timestamps each card as it
//! arrives. The host stamps the INVITE's arrival (`call_arrived_us`); both
//! clocks are this machine's.
//!
//! Reported for the host's provisional card and for the plugin's card, one
//! call at a time and under load, with the CRM's own round trip measured from
//! here in the same run as the baseline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sipp_load.rs"]
mod sipp_load;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sipp_load::{agents_config, callers, register_agents};
use support::{Crm, desk};
use tokio_tungstenite::tungstenite::Message;

const AGENTS: usize = 100;

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

struct Stats {
    n: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn stats(mut us: Vec<u64>) -> Stats {
    us.sort_unstable();
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0;
    Stats {
        n: us.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}

fn config(dir: &Path, crm: std::net::SocketAddr) -> std::path::PathBuf {
    let plugins = desk::plugins_with_crm(dir, crm);
    let cfg = format!(
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n\
         [plugins]\nwatch = false\ndir = \"{}\"\ncrm_connector = \"crm-http\"\n\
         [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = []\ndigest_algorithms = [\"MD5\"]\n\
         [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n\
         [[queues]]\nname = \"general\"\nring_timeout_secs = 20\nmax_wait_secs = 60\nwrap_up_secs = 0\n\
         [[queues]]\nname = \"vip\"\n\
         [[supervisors]]\nid = \"9001\"\ndesktop_password = \"desk-9001\"\n{}",
        plugins.display(),
        agents_config(AGENTS, dir)
    );
    let path = dir.join("ctihost.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// Place `calls` calls at `rate`/s (each talking `talk_ms`) and collect the
/// latency of every card: (provisional, plugin's) in microseconds.
async fn phase(
    ws: &mut desk::Socket,
    target: std::net::SocketAddr,
    rate: u32,
    calls: u32,
    talk_ms: u32,
    dir: &Path,
) -> (Vec<u64>, Vec<u64>, bool) {
    let mut sipp = callers(target, rate, calls, talk_ms, dir);
    let run = tokio::task::spawn_blocking(move || sipp.status().map(|s| s.success()));
    let (mut first, mut full) = (Vec::new(), Vec::new());
    let mut seen: HashMap<String, u8> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(calls as u64 / rate as u64 + 60);
    while full.len() < calls as usize && Instant::now() < deadline {
        let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await
        else {
            if run.is_finished() {
                break;
            }
            continue;
        };
        let at = now_us();
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] != "card" {
            continue;
        }
        let lat = at.saturating_sub(v["call_arrived_us"].as_u64().unwrap());
        let call = v["call_id"].as_str().unwrap().to_owned();
        let n = seen.entry(call).or_default();
        *n += 1;
        if v["provisional"] == true {
            first.push(lat);
        } else {
            assert!(v["failure"].is_null(), "screen-pop failed: {v}");
            assert_eq!(v["card"]["title"], "Zhao Lei", "{v}");
            full.push(lat);
        }
    }
    let ok = run.await.unwrap().unwrap_or(false);
    (first, full, ok)
}

fn row(label: &str, s: &Stats, base: &Stats) {
    println!(
        "  {label:<38} n={:<5} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (p50 {:>5.1}x, p99 {:>5.1}x the CRM round trip)",
        s.n,
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
        s.p50_ms / base.p50_ms,
        s.p99_ms / base.p99_ms
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let crm = Crm::start().await;
    // SIPp's built-in caller presents itself as "sipp".
    crm.add(
        "sipp",
        json!({"id": 7, "name": "Zhao Lei", "segment": "retail", "accounts": ["6222000011112222"]}),
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // Baseline: the CRM's own HTTP round trip, from here.
    let http = reqwest::Client::new();
    let url = format!("http://{}/customers/by-phone/sipp", crm.addr);
    let mut crm_us = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let r = http.get(&url).send().await.unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
        crm_us.push(t.elapsed().as_micros() as u64);
    }
    let crm_rt = stats(crm_us);

    let s = support::server::start(&config(dir, crm.addr));
    let _uas = register_agents(&s, AGENTS, dir);
    let api = desk::Api::new(&s);
    let token = api.login("9001", "desk-9001").await;
    let mut ws = desk::events(&s, &token).await;
    let target = s.sip_udp.unwrap();

    eprintln!("warm-up: 50 calls");
    phase(&mut ws, target, 25, 50, 100, dir).await;
    eprintln!("one call at a time: 300 calls at 10/s, 50 ms talk");
    let (idle_first, idle_full, idle_ok) = phase(&mut ws, target, 10, 300, 50, dir).await;
    eprintln!("under load: 3000 calls at 100/s, 500 ms talk ({AGENTS} agents)");
    let (busy_first, busy_full, busy_ok) = phase(&mut ws, target, 100, 3000, 500, dir).await;

    println!();
    println!(
        "screen-pop latency, INVITE at the host -> card on the supervisor's WebSocket (stock plugins, loopback CRM, 2-core machine):"
    );
    println!(
        "  {:<38} n={:<5} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        "CRM HTTP round trip (baseline)", crm_rt.n, crm_rt.p50_ms, crm_rt.p99_ms, crm_rt.max_ms
    );
    row(
        "provisional card, one call at a time",
        &stats(idle_first),
        &crm_rt,
    );
    let idle = stats(idle_full);
    row("plugin card, one call at a time", &idle, &crm_rt);
    row("provisional card, 100 calls/s", &stats(busy_first), &crm_rt);
    let busy = stats(busy_full);
    row("plugin card, 100 calls/s", &busy, &crm_rt);
    println!(
        "  target p99 < 50 ms: {} (one at a time {:.2} ms, 100 calls/s {:.2} ms){}",
        if idle.p99_ms < 50.0 && busy.p99_ms < 50.0 {
            "met"
        } else {
            "NOT met"
        },
        idle.p99_ms,
        busy.p99_ms,
        if idle_ok && busy_ok {
            ""
        } else {
            "; some SIPp calls failed"
        }
    );
}
