//! Soak: `CTIHOST_SOAK_SECS=3600 CTIHOST_SOAK_RATE=1100 cargo bench -p ctihost --bench soak`
//! (not part of `make bench`: it runs for as long as it is told).
//!
//! One host for the whole run, the RTP relay on, 500 agents registered at one
//! SIPp answerer, SIPp callers at RATE calls/s (half the measured maximum,
//! BENCHMARKS.md) for SECS seconds, and around them what a bank's network
//! adds: the router reloaded every minute through the admin API, refused
//! REGISTERs from an address that is no phone (20 a second), and 30 idle TCP
//! connections held open (reopened when the host closes them). Every 10 s
//! the host's RSS and open descriptors (all, and all but the relay's UDP
//! sockets, which follow the live calls) are sampled. Printed: zero failed
//! calls or not, the median RSS and descriptors of the first and the last
//! tenth of the run (after a minute of warm-up) and their ratios.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sipp_load.rs"]
mod sipp_load;
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sipp_load::{Killed, agents_config, callers_for, register_agents};
use support::server;

const AGENTS: usize = 500;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Descriptors that are not UDP sockets: the relay holds two UDP sockets
/// a live call, so the total follows how many calls are up at the sample;
/// what could leak (TCP connections, files, pipes) is the rest.
fn fds_not_udp(pid: u32) -> usize {
    let mut udp = std::collections::HashSet::new();
    for table in ["udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            if let Some(inode) = line.split_whitespace().nth(9) {
                udp.insert(format!("socket:[{inode}]"));
            }
        }
    }
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| {
                std::fs::read_link(e.path())
                    .map(|l| !udp.contains(l.to_string_lossy().as_ref()))
                    .unwrap_or(false)
            })
            .count()
    })
}

fn post(base: &str, path: &str) -> u16 {
    let host = base.strip_prefix("http://").unwrap();
    let Ok(mut c) = TcpStream::connect(host) else {
        return 0;
    };
    let _ = write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t0k\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut buf = String::new();
    let _ = c.read_to_string(&mut buf);
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// SIPp's cumulative FailedCall(C) in the last line of its statistics file.
fn failed_calls(stats: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(stats).unwrap_or_default();
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return 0;
    };
    let Some(col) = header.split(';').position(|h| h == "FailedCall(C)") else {
        return 0;
    };
    lines
        .rfind(|l| !l.trim().is_empty())
        .and_then(|l| l.split(';').nth(col)?.trim().parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env("CTIHOST_SOAK_SECS", 3600);
    // The agents register once, for the registrar's longest (7,200 s): a
    // longer soak would see their bindings expire (the hour's runs 4 and 11
    // registered for 3,600 s and lost the calls of their last seconds).
    assert!(
        secs <= 7000,
        "CTIHOST_SOAK_SECS={secs}: at most 7000 (the agents' registrations last 7200 s)"
    );
    let rate = env("CTIHOST_SOAK_RATE", 1100) as u32;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut cfg = String::from(
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n\
         [plugins]\nwatch = false\ndir = \"router.d\"\n\
         [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\ndigest_algorithms = [\"MD5\"]\n\
         [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n\
         [[queues]]\nname = \"general\"\nring_timeout_secs = 20\nmax_wait_secs = 60\n\
         [[queues]]\nname = \"vip\"\n",
    );
    cfg.push_str(&agents_config(AGENTS, dir));
    cfg.push_str("[media]\nrelay = true\n[recording]\nenabled = false\n");
    support::always_open_router(dir);
    let config = dir.join("soak.toml");
    std::fs::write(&config, cfg).unwrap();
    // CTIHOST_SOAK_HEAPTRACK=FILE: the host alone under heaptrack's preload,
    // its raw trace in FILE (`heaptrack_interpret < FILE | gzip > x.gz`).
    let profile: Vec<(String, String)> = std::env::var("CTIHOST_SOAK_HEAPTRACK")
        .map(|f| {
            vec![
                (
                    "LD_PRELOAD".to_owned(),
                    "/usr/lib/heaptrack/libheaptrack_preload.so".to_owned(),
                ),
                ("DUMP_HEAPTRACK_OUTPUT".to_owned(), f),
            ]
        })
        .unwrap_or_default();
    let s = server::start_with_env(&config, &profile);
    let _uas = register_agents(&s, AGENTS, dir);
    let pid = s.pid();
    let udp = s.sip_udp.unwrap();
    let tcp = s.sip_tcp.unwrap();
    eprintln!("soak: {rate} calls/s for {secs} s, reloads every 60 s, refused REGISTERs, idle TCP");

    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    // Refused REGISTERs from 127.0.0.2 (no phone there): 20 a second.
    let register = {
        let (stop, refused) = (stop.clone(), refused.clone());
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let me = sock.local_addr().unwrap();
            let mut buf = [0u8; 2048];
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let msg = format!(
                    "REGISTER sip:{udp} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-soak{i}\r\nFrom: <sip:9{i}@{udp}>;tag={i}\r\nTo: <sip:9{i}@{udp}>\r\nCall-ID: soak-{i}\r\nCSeq: 1 REGISTER\r\nContact: <sip:x@{me}>\r\nMax-Forwards: 70\r\nAuthorization: Digest username=\"9{i}\", realm=\"ctihost\", nonce=\"1.1.x\", uri=\"sip:{udp}\", response=\"00000000000000000000000000000000\"\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = sock.send_to(msg.as_bytes(), udp);
                if let Ok((n, _)) = sock.recv_from(&mut buf)
                    && (buf[..n].starts_with(b"SIP/2.0 4"))
                {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // 30 idle TCP connections, reopened when the host closes them.
    let idle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut conns: Vec<TcpStream> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                conns.retain(|c| {
                    let mut b = [0u8; 1];
                    c.set_nonblocking(true).ok();
                    !matches!((&*c).read(&mut b), Ok(0))
                });
                while conns.len() < 30 {
                    match TcpStream::connect(tcp) {
                        Ok(c) => conns.push(c),
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };

    let started = Instant::now();
    // SIPp's built-in caller (as the SIP benchmark), without its global
    // timeout: the run is as long as it is told; a call fails on its own
    // timers (no answer within 64*T1).
    let total = u32::try_from(u64::from(rate) * secs).unwrap_or(u32::MAX);
    // SIPp's statistics every 10 s: the failed calls are counted, not just
    // seen (its exit status says only whether any failed).
    let stats = dir.join("caller-stats.csv");
    let mut caller = callers_for(udp, rate, total, 0, None, dir);
    caller.args(["-trace_stat", "-stf", stats.to_str().unwrap(), "-fd", "10"]);
    let mut calls = Killed(caller.spawn().unwrap());
    // (seconds into the run, failed calls so far) at each change.
    let mut failed_at: Vec<(u64, u64)> = Vec::new();
    let mut samples: Vec<(u64, u64, usize)> = Vec::new();
    let mut reloads = (0u32, 0u32);
    let mut last_reload = Instant::now();
    let ok = loop {
        if let Some(st) = calls.0.try_wait().unwrap() {
            break st.success();
        }
        let t = started.elapsed().as_secs();
        if samples.last().is_none_or(|(at, _, _)| t >= at + 10) {
            let failed = failed_calls(&stats);
            if failed_at.last().map_or(failed > 0, |(_, f)| failed > *f) {
                eprintln!("  {t:>5} s: SIPp counts {failed} failed calls");
                failed_at.push((t, failed));
            }
            let sample = (t, support::rss_kib(pid), fds_not_udp(pid));
            if t % 60 < 10 {
                eprintln!(
                    "  {t:>5} s: RSS {} KiB, {} descriptors ({} not UDP)",
                    sample.1,
                    fds(pid),
                    sample.2
                );
            }
            samples.push(sample);
        }
        if last_reload.elapsed() >= Duration::from_secs(60) {
            last_reload = Instant::now();
            let code = post(&s.url, "/admin/plugins/skills-router/reload?by=soak");
            reloads.0 += 1;
            if code == 200 {
                reloads.1 += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = register.join();
    let _ = idle.join();

    let warm: Vec<_> = samples
        .iter()
        .filter(|(t, _, _)| *t >= 60)
        .copied()
        .collect();
    let tenth = (warm.len() / 10).max(1);
    let first = &warm[..tenth.min(warm.len())];
    let last = &warm[warm.len().saturating_sub(tenth)..];
    let rss = |v: &[(u64, u64, usize)]| median(v.iter().map(|x| x.1).collect());
    let fd = |v: &[(u64, u64, usize)]| median(v.iter().map(|x| x.2 as u64).collect());
    let m = s.admin_text("/metrics", "t0k");
    let ended: u64 = m
        .lines()
        .filter(|l| l.starts_with("ctihost_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    println!();
    println!(
        "soak: {rate} calls/s for {took:.0} s ({} calls planned), SIPp {}",
        rate as u64 * secs,
        if ok {
            "saw 0 failed calls"
        } else {
            "saw FAILED calls"
        }
    );
    println!(
        "  calls ended (host's count): {ended}; reloads {} of {} served 200; refused REGISTERs answered: {}",
        reloads.1,
        reloads.0,
        refused.load(Ordering::Relaxed)
    );
    println!(
        "  RSS median first tenth {} KiB, last tenth {} KiB: ratio {:.2}",
        rss(first),
        rss(last),
        rss(last) as f64 / rss(first).max(1) as f64
    );
    println!(
        "  failed calls (SIPp): {}{}",
        failed_calls(&stats),
        if failed_at.is_empty() {
            String::new()
        } else {
            format!(", first seen at {:?} (s, count)", failed_at)
        }
    );
    // The first of the host's plugin failure lines, when there were any:
    // what failed and why (the counters below say how often).
    let failures: Vec<String> = s
        .log
        .lock()
        .map(|l| {
            l.iter()
                .filter(|l| l.contains("plugin failed") || l.contains("plugin starved"))
                .take(8)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for l in failures {
        println!("  host log: {l}");
    }
    // What the host counted on its failure paths.
    for l in m.lines().filter(|l| {
        !l.starts_with('#')
            && (l.starts_with("ctihost_plugin_failures_total")
                || l.starts_with("ctihost_plugin_starved_total")
                || l.starts_with("ctihost_bound_hits_total"))
    }) {
        println!("  host: {l}");
    }
    println!(
        "  descriptors but UDP sockets (relay ports come and go with live calls): median first tenth {}, last tenth {}: ratio {:.2}",
        fd(first),
        fd(last),
        fd(last) as f64 / fd(first).max(1) as f64
    );
}
