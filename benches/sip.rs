//! Call throughput: `cargo bench -p ctihost --bench sip` (or `make bench`).
//!
//! SIPp callers place INVITE..BYE calls (`-sn uac`) and SIPp answers them
//! (`-sn uas`), three ways in the same run on the same machine:
//! 1. directly, caller -> answerer: the limit of this machine and of SIPp;
//! 2. through ctihost: trunk INVITE, the stock router plugin decides, the ACD
//!    offers the call to one of many registered agents (all bound to the one
//!    answerer), the B2BUA bridges;
//! 3. through Kamailio (Debian `kamailio`) as a stateful proxy, when installed.
//!
//! For each, the highest calls/s with zero failed calls (doubling, then
//! bisecting), and for ctihost the resident memory per concurrent call and
//! per idle SIP connection, TCP and TLS (`CTIHOST_SIP_CONNECTIONS=N` alone:
//! that last figure only, with N connections of each), and calls/s over TLS
//! against UDP with one caller of this harness (`CTIHOST_SIP_TRANSPORTS=1`
//! alone: that figure only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sip_caller.rs"]
mod sip_caller;
#[path = "support/sipp_load.rs"]
mod sipp_load;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sipp_load::{Killed, KilledGroup, agents_config, answerer, callers, register_agents};
use support::server::{self, free_port};

/// Agents registered for the host run: the most calls the ACD can have connected at once.
const AGENTS: usize = 500;
/// Seconds of calls per rate step.
const STEP_SECS: f64 = 4.0;

/// Run `calls` calls at `rate`/s against `target`; Some(seconds taken) when none failed.
fn run(target: SocketAddr, rate: u32, calls: u32, dir: &Path) -> Option<f64> {
    let start = Instant::now();
    let ok = callers(target, rate, calls, 0, dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let secs = start.elapsed().as_secs_f64();
    ok.then_some(secs)
}

/// The highest rate with no failed call that SIPp could actually hold (90% of the target).
fn max_rate(target: SocketAddr, dir: &Path, label: &str) -> f64 {
    max_rate_with(label, |rate, calls| run(target, rate, calls, dir))
}

fn max_rate_with(label: &str, step: impl Fn(u32, u32) -> Option<f64>) -> f64 {
    let passes = |rate: u32| {
        let calls = ((rate as f64 * STEP_SECS) as u32).max(100);
        let r = step(rate, calls);
        // Held the rate: done within 10% of the planned time, plus a second
        // for SIPp's own start and the last calls' round trips.
        let planned = calls as f64 / rate as f64;
        let ok = r.is_some_and(|secs| secs <= planned * 1.1 + 1.0);
        eprintln!(
            "  {label}: {rate:>5} calls/s target, {calls} calls -> {}",
            match r {
                Some(secs) => format!(
                    "{secs:.1} s for {planned:.1} s planned{}",
                    if ok { "" } else { " (too slow)" }
                ),
                None => "failed calls".into(),
            }
        );
        ok
    };
    let (mut good, mut bad) = (0u32, 0u32);
    let mut rate = 50;
    while rate <= 25_600 {
        if passes(rate) {
            good = rate;
            rate *= 2;
        } else {
            bad = rate;
            break;
        }
    }
    if bad == 0 {
        return good as f64;
    }
    for _ in 0..3 {
        let mid = (good + bad) / 2;
        if mid <= good || mid >= bad {
            break;
        }
        if passes(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    good as f64
}

/// `relay`: anchor RTP at the host (the default) or leave media end to end,
/// as Kamailio (a SIP proxy) does.
fn host_config(dir: &Path, relay: bool) -> std::path::PathBuf {
    let mut cfg = String::from(
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n\
         [plugins]\nwatch = false\ndir = \"router.d\"\n\
         [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = []\ndigest_algorithms = [\"MD5\"]\n\
         [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n\
         [[queues]]\nname = \"general\"\nring_timeout_secs = 20\nmax_wait_secs = 60\n\
         [[queues]]\nname = \"vip\"\n",
    );
    cfg.push_str(&agents_config(AGENTS, dir));
    // Signalling (and relay) throughput: recording's disk cost belongs to the
    // media benchmark, not here (the recording policy is still asked).
    cfg.push_str(&format!(
        "[media]\nrelay = {relay}\n[recording]\nenabled = false\n"
    ));
    support::always_open_router(dir);
    let path = dir.join(format!("ctihost-relay-{relay}.toml"));
    std::fs::write(&path, cfg).unwrap();
    path
}

/// A center started from `config` with every agent registered at one SIPp answerer.
fn fresh_center(config: &Path, dir: &Path) -> (server::Server, Killed) {
    let s = server::start(config);
    let uas = register_agents(&s, AGENTS, dir);
    (s, uas)
}

fn kamailio(port: u16, uas: u16, dir: &Path) -> Option<KilledGroup> {
    let modules = [
        "/usr/lib/x86_64-linux-gnu/kamailio/modules",
        "/usr/lib/kamailio/modules",
    ]
    .into_iter()
    .find(|p| Path::new(p).join("tm.so").exists())?;
    let cfg = format!(
        r#"#!KAMAILIO
debug=0
log_stderror=yes
children=1
# The same 4 MiB socket buffer ctihost asks for (Kamailio probes up to this;
# its default ceiling is 256 KiB).
maxbuffer=4194304
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{modules}/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "pv.so"
loadmodule "textops.so"
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    # SIPp's built-in UAC ignores Record-Route: in-dialog requests come here
    # too and go to the one next hop. The ACK of a 2xx is forwarded statelessly.
    if (is_method("ACK")) {{
        if (t_check_trans()) {{ t_relay(); exit; }}
        $du = "sip:127.0.0.1:{uas}";
        forward();
        exit;
    }}
    $du = "sip:127.0.0.1:{uas}";
    t_relay();
}}
"#
    );
    let path = dir.join("kamailio.cfg");
    std::fs::write(&path, cfg).unwrap();
    let bin = ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    // Kamailio forks its workers: they die with its process group.
    let k = KilledGroup::spawn(
        Command::new(bin)
            .args(["-f", path.to_str()?, "-DD", "-E", "-m", "256", "-M", "16"])
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .ok()?;
    // Ready once its UDP socket is bound.
    let bound = format!("0100007F:{port:04X}");
    let until = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .contains(&bound)
    {
        if Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(k)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // CTIHOST_SIP_PROBE=RATE: one step at RATE through a fresh center
    // (signalling only), then what the host saw: dispositions and causes of
    // the calls, queue-log kinds, SIP counters. With CTIHOST_SIP_PERF=FILE the
    // host runs under `perf record` for the step.
    if let Some(rate) = std::env::var("CTIHOST_SIP_PROBE")
        .ok()
        .and_then(|r| r.parse::<u32>().ok())
    {
        probe(rate, dir);
        return;
    }

    if std::env::var("CTIHOST_SIP_TRANSPORTS").is_ok() {
        transports(dir);
        return;
    }
    if let Some(n) = std::env::var("CTIHOST_SIP_CONNECTIONS")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
    {
        connections(n, dir);
        return;
    }

    eprintln!("direct: SIPp caller -> SIPp answerer");
    let uas_port = free_port();
    let uas = answerer(uas_port, dir);
    let direct = max_rate(SocketAddr::from(([127, 0, 0, 1], uas_port)), dir, "direct");
    drop(uas);

    eprintln!("kamailio: SIPp caller -> Kamailio (stateful proxy, tm) -> SIPp answerer");
    let uas_port = free_port();
    let kport = free_port();
    let kam = {
        let _uas = answerer(uas_port, dir);
        kamailio(kport, uas_port, dir)
            .map(|_k| max_rate(SocketAddr::from(([127, 0, 0, 1], kport)), dir, "kamailio"))
    };
    if kam.is_none() {
        eprintln!("  kamailio not installed: skipped");
    }

    eprintln!(
        "ctihost: SIPp caller -> ctihost (router plugin, ACD, B2BUA) -> {AGENTS} agents on one SIPp answerer"
    );
    let config = host_config(dir, true);
    let signalling_only = host_config(dir, false);

    // Memory per concurrent call: hold AGENTS calls for a while, watch the RSS.
    let (s, _uas) = fresh_center(&config, dir);
    let host = s.sip_udp.unwrap();
    let before = support::rss_kib(s.pid());
    let hold = callers(host, 200, AGENTS as u32, 8000, dir)
        .spawn()
        .unwrap();
    let mut hold = Killed(hold);
    let mut peak = before;
    while hold.0.try_wait().unwrap().is_none() {
        peak = peak.max(support::rss_kib(s.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let held_ok = hold.0.wait().map(|s| s.success()).unwrap_or(false);
    let per_call_kib = (peak.saturating_sub(before)) as f64 / AGENTS as f64;
    drop(s);

    // Every step on a fresh center, so a failed step (agents left not-ready) cannot spoil the next.
    let through = max_rate_with("ctihost (signalling only)", |rate, calls| {
        let (s, _uas) = fresh_center(&signalling_only, dir);
        run(s.sip_udp.unwrap(), rate, calls, dir)
    });
    let relayed = max_rate_with("ctihost (with RTP relay)", |rate, calls| {
        let (s, _uas) = fresh_center(&config, dir);
        run(s.sip_udp.unwrap(), rate, calls, dir)
    });

    println!();
    println!(
        "calls/s with 0 failed calls (INVITE..BYE, {STEP_SECS} s per step, 2-core machine, all peers on it):"
    );
    println!("  SIPp -> SIPp directly       {direct:>7.0}   (the machine's limit, 1.00)");
    match kam {
        Some(k) => println!(
            "  SIPp -> Kamailio -> SIPp    {k:>7.0}   ({:.2} of direct)",
            k / direct
        ),
        None => println!("  SIPp -> Kamailio -> SIPp    not installed"),
    }
    println!(
        "  SIPp -> ctihost -> SIPp     {through:>7.0}   ({:.2} of direct{}; media end to end, like the proxy)",
        through / direct,
        kam.map(|k| format!(", {:.2} of Kamailio", through / k))
            .unwrap_or_default()
    );
    println!(
        "  ... with the RTP relay      {relayed:>7.0}   ({:.2} of signalling only; two relay ports per call, no RTP sent)",
        relayed / through
    );
    println!(
        "ctihost memory (relay on): {before} KiB RSS idle with {AGENTS} registered agents, peak {peak} KiB with {AGENTS} calls connected{}: {per_call_kib:.1} KiB per concurrent call",
        if held_ok {
            ""
        } else {
            " (some held calls failed)"
        }
    );
    connections(1000, dir);
    transports(dir);
}

/// Memory of the host per idle SIP connection, TCP and TLS: for each, a
/// fresh center, then `n` connections (the TLS ones with their handshake
/// done), each having sent one CRLF keep-alive. The live heap (jemalloc's
/// allocated bytes, from /metrics) and the RSS, before and after; medians
/// of three centers each. Kamailio's anchor: about 61 kB more per TLS
/// connection than per TCP one.
fn connections(n: usize, dir: &Path) {
    let (_, cert, key) = support::bank_certificate(dir, "sip");
    let base = std::fs::read_to_string(host_config(dir, false)).unwrap();
    let cfg = base.replace(
        "tcp = []",
        &format!(
            "tcp = [\"127.0.0.1:0\"]\ntls = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             tcp_max_connections = {m}\ntcp_max_per_source = {m}",
            cert.display(),
            key.display(),
            m = n + 16
        ),
    );
    let path = dir.join("ctihost-connections.toml");
    std::fs::write(&path, cfg).unwrap();
    let ca = dir.join("sip-ca.pem");
    let connector = tokio_rustls::TlsConnector::from(support::tls_client(ca.to_str().unwrap()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let allocated = |s: &server::Server| -> f64 {
        s.admin_text("/metrics", "t0k")
            .lines()
            .find_map(|l| l.strip_prefix("ctihost_memory_allocated_bytes "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let settle = || std::thread::sleep(Duration::from_secs(2));
    // (heap kB, RSS kB) per connection, for TLS or TCP.
    let measure = |tls: bool| -> (f64, f64) {
        let s = server::start(&path);
        let target = if tls {
            s.sip_tls.unwrap()
        } else {
            s.sip_tcp.unwrap()
        };
        settle();
        let (heap0, rss0) = (allocated(&s), support::rss_kib(s.pid()));
        let (heap1, rss1) = rt.block_on(async {
            use tokio::io::AsyncWriteExt;
            let mut plain = Vec::new();
            let mut secure = Vec::new();
            for _ in 0..n {
                let c = tokio::net::TcpStream::connect(target).await.unwrap();
                if tls {
                    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                    let mut c = connector.connect(name, c).await.unwrap();
                    c.write_all(b"\r\n\r\n").await.unwrap();
                    c.flush().await.unwrap();
                    secure.push(c);
                } else {
                    let mut c = c;
                    c.write_all(b"\r\n\r\n").await.unwrap();
                    plain.push(c);
                }
            }
            settle();
            (allocated(&s), support::rss_kib(s.pid()))
        });
        (
            (heap1 - heap0) / 1000.0 / n as f64,
            rss1.saturating_sub(rss0) as f64 * 1.024 / n as f64,
        )
    };
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut tcp, mut tls) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for _ in 0..3 {
        let (h, r) = measure(false);
        tcp.0.push(h);
        tcp.1.push(r);
        let (h, r) = measure(true);
        tls.0.push(h);
        tls.1.push(r);
    }
    let (tcp_heap, tcp_rss, tls_heap, tls_rss) = (med(tcp.0), med(tcp.1), med(tls.0), med(tls.1));
    println!();
    println!(
        "ctihost memory per idle SIP connection ({n} on a fresh center, median of 3, kB): \
         TCP {tcp_heap:.1} heap / {tcp_rss:.1} RSS, TLS {tls_heap:.1} heap / {tls_rss:.1} RSS: \
         {:.1} kB more heap per TLS connection (Kamailio's anchor: about 61 kB more)",
        tls_heap - tcp_heap
    );
}

/// Calls a second through the host with its trunk's calls over UDP and
/// over TLS: the same caller (this harness's, `sip_caller`) with
/// `CALLERS` links each placing INVITE..BYE calls back to back for
/// `SECS` seconds, on a fresh center each time (agents on one SIPp
/// answerer over UDP, as in the main run); medians of three each way.
fn transports(dir: &Path) {
    const CALLERS: usize = 32;
    const SECS: u64 = 8;
    let (_, cert, key) = support::bank_certificate(dir, "sip");
    let base = std::fs::read_to_string(host_config(dir, false)).unwrap();
    let cfg = base.replace(
        "tcp = []",
        &format!(
            "tcp = []\ntls = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            key.display(),
        ),
    );
    let path = dir.join("ctihost-transports.toml");
    std::fs::write(&path, cfg).unwrap();
    let ca = dir.join("sip-ca.pem");
    let connector = tokio_rustls::TlsConnector::from(support::tls_client(ca.to_str().unwrap()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = |tls: bool| -> (f64, u64) {
        let (s, _uas) = fresh_center(&path, dir);
        let target = if tls {
            s.sip_tls.unwrap()
        } else {
            s.sip_udp.unwrap()
        };
        let (ok, failed) = rt.block_on(async {
            let until = tokio::time::Instant::now() + Duration::from_secs(SECS);
            let tasks: Vec<_> = (0..CALLERS)
                .map(|c| {
                    let connector = connector.clone();
                    tokio::spawn(async move {
                        let mut link = if tls {
                            sip_caller::Link::tls(target, &connector).await
                        } else {
                            sip_caller::Link::udp(target).await
                        };
                        let (mut ok, mut failed) = (0u64, 0u64);
                        let mut n = (c as u64) << 32;
                        while tokio::time::Instant::now() < until {
                            n += 1;
                            match sip_caller::call(&mut link, target, "95588-en", n).await {
                                Some(()) => ok += 1,
                                None => failed += 1,
                            }
                        }
                        (ok, failed)
                    })
                })
                .collect();
            let mut sum = (0u64, 0u64);
            for t in tasks {
                let (o, f) = t.await.unwrap();
                sum.0 += o;
                sum.1 += f;
            }
            sum
        });
        (ok as f64 / SECS as f64, failed)
    };
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut udp, mut tls, mut failed) = (Vec::new(), Vec::new(), 0u64);
    for _ in 0..3 {
        let (r, f) = run(false);
        udp.push(r);
        failed += f;
        let (r, f) = run(true);
        tls.push(r);
        failed += f;
    }
    let (udp_rate, tls_rate) = (med(udp.clone()), med(tls.clone()));
    println!();
    println!(
        "calls/s through ctihost, trunk leg over UDP vs TLS ({CALLERS} callers back to back, {SECS} s, median of 3; runs {udp:.0?} / {tls:.0?}; {failed} calls failed):"
    );
    println!("  UDP {udp_rate:>7.0}   (1.00)");
    println!(
        "  TLS {tls_rate:>7.0}   ({:.2} of UDP; the harness's own TLS shares the 2 cores)",
        tls_rate / udp_rate
    );
}

fn probe(rate: u32, dir: &Path) {
    let config = host_config(dir, false);
    let (s, _uas) = fresh_center(&config, dir);
    let perf = std::env::var("CTIHOST_SIP_PERF").ok().map(|out| {
        Killed(
            Command::new("perf")
                .args([
                    "record",
                    "-F",
                    "499",
                    "--call-graph",
                    "dwarf,16384",
                    "-o",
                    &out,
                    "-p",
                    &s.pid().to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    });
    let calls = rate * STEP_SECS as u32;
    let udp_errors = || {
        let t = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
        let rows: Vec<&str> = t.lines().filter(|l| l.starts_with("Udp:")).collect();
        rows.first()
            .zip(rows.get(1))
            .map(|(h, v)| {
                h.split_whitespace()
                    .zip(v.split_whitespace())
                    .filter(|(k, _)| k.contains("Errors"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    println!("UDP before: {}", udp_errors());
    let r = run(s.sip_udp.unwrap(), rate, calls, dir);
    println!("UDP after:  {}", udp_errors());
    if let Some(mut p) = perf {
        // SIGINT lets perf write its file.
        let _ = Command::new("kill")
            .args(["-INT", &p.0.id().to_string()])
            .status();
        let _ = p.0.wait();
    }
    println!(
        "{rate} calls/s, {calls} calls: {r:?} s (planned {} s)",
        calls / rate
    );
    let cdr = s.admin_json(&format!("/admin/cdr?limit={}", calls * 2), "t0k");
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for r in cdr.as_array().into_iter().flatten() {
        let k = format!("{} / {}", r["disposition"], r["cause"]);
        *kinds.entry(k).or_default() += 1;
        if r["wait_secs"].as_f64().unwrap_or(0.0) > 2.0 {
            *kinds.entry("waited > 2 s".into()).or_default() += 1;
        }
    }
    println!("call records: {kinds:#?}");
    let log = s.admin_json(&format!("/admin/queue-log?limit={}", calls * 10), "t0k");
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for e in log.as_array().into_iter().flatten() {
        *kinds.entry(e["kind"].to_string()).or_default() += 1;
    }
    println!("queue log: {kinds:#?}");
    for l in s.admin_text("/metrics", "t0k").lines() {
        if l.starts_with("ctihost_sip") || l.starts_with("ctihost_calls") {
            println!("{l}");
        }
    }
}
