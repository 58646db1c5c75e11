//! Media: `cargo bench -p ctihost --bench media` (or `make bench`).
//!
//! Concurrent calls with G.711 audio both ways, 50 packets a second each way
//! per call, through:
//! 1. nothing (the sockets of this harness send to each other): the baseline
//!    of this machine and this harness;
//! 2. ctihost's relay: SIPp callers dial a trunk number, the stock router and
//!    the ACD hand each call to one of many registered agents (one SIPp
//!    answerer); each side's SDP names a socket of this harness;
//! 3. the same with every call recorded (stereo WAV, the stock policy);
//! 4. rtpengine (Debian `rtpengine-daemon`, userspace forwarding, its ng
//!    control protocol) when installed.
//!
//! For each and each step of concurrent calls: packet loss, the RFC 3550
//! interarrival jitter the relay adds over the baseline, and CPU of the relay
//! process per call. A step passes with loss < 0.1% and added jitter < 5 ms.
//! `CTIHOST_MEDIA_STEPS=100,500` overrides the steps, `CTIHOST_MEDIA_RUNS=3`
//! runs each step three times and reports each figure's median,
//! `CTIHOST_MEDIA_ONLY=rtpengine` runs only the systems whose name matches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sipp_load.rs"]
mod sipp_load;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sipp_load::{Killed, agents_config, register, sipp};
use support::server::{self, Server, free_port};
use tokio::net::UdpSocket;

const MEASURE: Duration = Duration::from_secs(10);
const PTIME: Duration = Duration::from_millis(20);

/// One direction's receiver state (RFC 3550 A.8 jitter).
#[derive(Default)]
struct Rx {
    packets: u64,
    last_transit: Option<f64>,
    jitter: f64,
}

impl Rx {
    fn packet(&mut self, rtp_ts: u32, arrival: f64) {
        self.packets += 1;
        // In timestamp units (8 kHz).
        let transit = arrival * 8000.0 - rtp_ts as f64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    sent: u64,
    received: u64,
    /// Mean over streams, ms.
    jitter_ms: f64,
    /// Worst stream, ms.
    jitter_max_ms: f64,
    /// CPU seconds of the relay process per second of measurement.
    cpu_cores: f64,
}

impl Figures {
    fn loss(&self) -> f64 {
        1.0 - self.received as f64 / self.sent.max(1) as f64
    }
}

/// The harness's two sockets per call.
struct Call {
    caller: Arc<UdpSocket>,
    agent: Arc<UdpSocket>,
}

async fn sockets(n: usize) -> Vec<Call> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(Call {
            caller: Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
            agent: Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
        });
    }
    v
}

fn port(s: &UdpSocket) -> u16 {
    s.local_addr().unwrap().port()
}

/// CPU seconds (user + system) of a process so far.
fn cpu_secs(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Send audio both ways for [`MEASURE`]: each caller socket to `targets.0`,
/// each agent socket to `targets.1`; count and time what comes back.
async fn pump(calls: &[Call], targets: &[(SocketAddr, SocketAddr)], pid: Option<u32>) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut receivers = Vec::new();
    let stats: Vec<Arc<Mutex<Rx>>> = (0..calls.len() * 2)
        .map(|_| Arc::new(Mutex::new(Rx::default())))
        .collect();
    for (i, c) in calls.iter().enumerate() {
        for (j, sock) in [c.caller.clone(), c.agent.clone()].into_iter().enumerate() {
            let rx = stats[i * 2 + j].clone();
            let stop = stop.clone();
            receivers.push(tokio::spawn(async move {
                let mut buf = [0u8; 512];
                loop {
                    tokio::select! {
                        r = sock.recv_from(&mut buf) => {
                            if let Ok((n, _)) = r && n >= 12 {
                                let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                                rx.lock().packet(ts, start.elapsed().as_secs_f64());
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                        }
                    }
                }
            }));
        }
    }
    let cpu0 = cpu_secs(pid);
    let mut tick = tokio::time::interval(PTIME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut packet = vec![0u8; 12 + 160];
    packet[0] = 0x80;
    packet[1] = 8;
    packet[12..].fill(0xd5);
    let mut sent = 0u64;
    let frames = (MEASURE.as_millis() / PTIME.as_millis()) as u32;
    for f in 0..frames {
        tick.tick().await;
        packet[2..4].copy_from_slice(&(f as u16).to_be_bytes());
        packet[4..8].copy_from_slice(&(f * 160).to_be_bytes());
        for (c, (to_caller_side, to_agent_side)) in calls.iter().zip(targets) {
            if c.caller.try_send_to(&packet, *to_caller_side).is_ok() {
                sent += 1;
            }
            if c.agent.try_send_to(&packet, *to_agent_side).is_ok() {
                sent += 1;
            }
        }
    }
    let cpu = cpu_secs(pid) - cpu0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for r in receivers {
        let _ = r.await;
    }
    let jitters: Vec<f64> = stats.iter().map(|s| s.lock().jitter / 8.0).collect();
    Figures {
        sent,
        received: stats.iter().map(|s| s.lock().packets).sum(),
        jitter_ms: jitters.iter().sum::<f64>() / jitters.len().max(1) as f64,
        jitter_max_ms: jitters.iter().copied().fold(0.0, f64::max),
        cpu_cores: cpu / MEASURE.as_secs_f64(),
    }
}

/// The harness talking to itself: each caller socket sends to its agent
/// socket and back.
async fn baseline(n: usize) -> Figures {
    let calls = sockets(n).await;
    let targets: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c.agent.local_addr().unwrap(),
                c.caller.local_addr().unwrap(),
            )
        })
        .collect();
    pump(&calls, &targets, None).await
}

fn host_config(dir: &Path, n: usize, record: bool) -> std::path::PathBuf {
    let mut cfg = String::from(
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n\
         [plugins]\nwatch = false\ndir = \"router.d\"\n\
         [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = []\ndigest_algorithms = [\"MD5\"]\n\
         [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n\
         [[queues]]\nname = \"general\"\nring_timeout_secs = 20\nmax_wait_secs = 120\n\
         [[queues]]\nname = \"vip\"\n",
    );
    cfg.push_str(&agents_config(n, dir));
    cfg.push_str(&format!(
        "[media]\nrtp_ports = [20000, 29999]\nrtp_timeout_secs = 120\n[recording]\nenabled = {record}\n"
    ));
    support::always_open_router(dir);
    let path = dir.join(format!("ctihost-{n}-{record}.toml"));
    std::fs::write(&path, cfg).unwrap();
    path
}

fn admin_media(s: &Server) -> serde_json::Value {
    s.admin_json("/admin/media", "t0k")
}

/// `n` calls set up through ctihost (SIPp callers and answerer), then the pump.
async fn through_host(n: usize, record: bool, dir: &Path) -> Option<Figures> {
    let calls = sockets(n).await;
    let s = server::start(&host_config(dir, n, record));
    let phones = register(&s, n, dir);
    let mut callers_csv = String::from("SEQUENTIAL\n");
    let mut agents_csv = String::from("SEQUENTIAL\n");
    for c in &calls {
        callers_csv.push_str(&format!("{}\n", port(&c.caller)));
        agents_csv.push_str(&format!("{}\n", port(&c.agent)));
    }
    std::fs::write(dir.join("callers_rtp.csv"), callers_csv).unwrap();
    std::fs::write(dir.join("agents_rtp.csv"), agents_csv).unwrap();
    let scenario = |name: &str| {
        support::root()
            .join("benches/sipp")
            .join(name)
            .to_str()
            .unwrap()
            .to_owned()
    };
    let _answerer = Killed(
        sipp(
            &[
                "-sf",
                &scenario("media_answerer.xml"),
                "-inf",
                dir.join("agents_rtp.csv").to_str().unwrap(),
                "-p",
                &phones.to_string(),
            ],
            dir,
        )
        .spawn()
        .unwrap(),
    );
    let talk_ms = (MEASURE.as_millis() as u64 + 40_000).to_string();
    let _callers = Killed(
        sipp(
            &[
                "-sf",
                &scenario("media_caller.xml"),
                "-inf",
                dir.join("callers_rtp.csv").to_str().unwrap(),
                "-s",
                "95588-en",
                "-p",
                &free_port().to_string(),
                "-m",
                &n.to_string(),
                "-r",
                "200",
                "-d",
                &talk_ms,
                &s.sip_udp.unwrap().to_string(),
            ],
            dir,
        )
        .spawn()
        .unwrap(),
    );
    // Every call bridged: both sides of each relay known from the SDP.
    let until = Instant::now() + Duration::from_secs(30);
    let relays = loop {
        let m = admin_media(&s);
        let relays: Vec<serde_json::Value> = m["relays"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["agent_peer"].is_string() && r["caller_peer"].is_string())
            // With recording on, every call's recorder runs before the measure.
            .filter(|r| !record || r["recording"] == true)
            .collect();
        if relays.len() >= n {
            break relays;
        }
        if Instant::now() > until {
            eprintln!("  ctihost: only {} of {n} calls bridged", relays.len());
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_caller: HashMap<u16, &serde_json::Value> = relays
        .iter()
        .filter_map(|r| {
            let peer: SocketAddr = r["caller_peer"].as_str()?.parse().ok()?;
            Some((peer.port(), r))
        })
        .collect();
    let host_ip = s.sip_udp.unwrap().ip();
    let targets: Option<Vec<(SocketAddr, SocketAddr)>> = calls
        .iter()
        .map(|c| {
            let r = by_caller.get(&port(&c.caller))?;
            let cp = r["caller_port"].as_u64()? as u16;
            let ap = r["agent_port"].as_u64()? as u16;
            Some((SocketAddr::new(host_ip, cp), SocketAddr::new(host_ip, ap)))
        })
        .collect();
    let Some(targets) = targets else {
        eprintln!("  ctihost: a call's relay was not found by its caller port");
        return None;
    };
    Some(pump(&calls, &targets, Some(s.pid())).await)
}

/// bencode, enough for the ng protocol's requests.
fn bencode(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut sorted = pairs.to_vec();
    sorted.sort();
    let mut out = b"d".to_vec();
    for (k, v) in sorted {
        out.extend(format!("{}:{k}{}:{v}", k.len(), v.len()).bytes());
    }
    out.push(b'e');
    out
}

/// The audio port in the SDP of an ng answer.
fn ng_port(reply: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(reply);
    let m = text.split("m=audio ").nth(1)?;
    m.split_whitespace().next()?.parse().ok()
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    )
}

/// `n` calls set up in rtpengine by offer/answer over its ng protocol.
async fn through_rtpengine(n: usize, dir: &Path) -> Option<Figures> {
    let ng_port_no = free_port();
    let child = Command::new("rtpengine")
        .args([
            "--config-file=none",
            "-f",
            "-E",
            "-t",
            "-1",
            "-i",
            "127.0.0.1",
            "-n",
            &format!("127.0.0.1:{ng_port_no}"),
            "-m",
            "40000",
            "-M",
            "49999",
            "--num-threads=2",
            "-L",
            "3",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    let _rtpengine = Killed(child);
    let calls = sockets(n).await;
    let ng = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ng_addr: SocketAddr = format!("127.0.0.1:{ng_port_no}").parse().unwrap();
    let ask = |cookie: String, body: Vec<u8>| {
        let ng = &ng;
        async move {
            let prefix = format!("{cookie} ");
            let mut msg = prefix.clone().into_bytes();
            msg.extend(body);
            let mut buf = vec![0u8; 65536];
            for _ in 0..50 {
                ng.send_to(&msg, ng_addr).await.ok()?;
                let until = tokio::time::Instant::now() + Duration::from_millis(500);
                // A late reply to an earlier request is not this one's.
                while let Ok(Ok((len, _))) =
                    tokio::time::timeout_at(until, ng.recv_from(&mut buf)).await
                {
                    if buf[..len].starts_with(prefix.as_bytes()) {
                        return Some(buf[..len].to_vec());
                    }
                }
            }
            None
        }
    };
    let mut targets = Vec::with_capacity(n);
    for (i, c) in calls.iter().enumerate() {
        let call_id = format!("bench-{i}");
        let offer_sdp = sdp(port(&c.caller));
        let offer = ask(
            format!("o{i}"),
            bencode(&[
                ("command", "offer"),
                ("call-id", &call_id),
                ("from-tag", "caller"),
                ("sdp", &offer_sdp),
            ]),
        )
        .await?;
        let answer_sdp = sdp(port(&c.agent));
        let answer = ask(
            format!("a{i}"),
            bencode(&[
                ("command", "answer"),
                ("call-id", &call_id),
                ("from-tag", "caller"),
                ("to-tag", "agent"),
                ("sdp", &answer_sdp),
            ]),
        )
        .await?;
        // The offer's SDP goes to the agent (it sends there); the answer's
        // to the caller.
        let (Some(to_agent_side), Some(to_caller_side)) = (ng_port(&offer), ng_port(&answer))
        else {
            eprintln!(
                "  rtpengine: call {i}: no port in {:?} / {:?}",
                String::from_utf8_lossy(&offer),
                String::from_utf8_lossy(&answer)
            );
            return None;
        };
        targets.push((
            SocketAddr::from(([127, 0, 0, 1], to_caller_side)),
            SocketAddr::from(([127, 0, 0, 1], to_agent_side)),
        ));
    }
    Some(pump(&calls, &targets, Some(pid)).await)
}

/// The median of each figure over runs (upper median for even counts).
fn median(runs: &[Figures]) -> Figures {
    let mid = |f: &dyn Fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let received = mid(&|f| f.received as f64 / f.sent.max(1) as f64);
    let sent = runs[0].sent;
    Figures {
        sent,
        received: (received * sent as f64).round() as u64,
        jitter_ms: mid(&|f| f.jitter_ms),
        jitter_max_ms: mid(&|f| f.jitter_max_ms),
        cpu_cores: mid(&|f| f.cpu_cores),
    }
}

fn has(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn report(label: &str, n: usize, f: &Figures, base: &Figures) -> bool {
    let added = (f.jitter_ms - base.jitter_ms).max(0.0);
    let ok = f.loss() < 0.001 && added < 5.0;
    println!(
        "  {label:<22} {n:>5} calls  loss {:>7.3}%  jitter {:>5.2} ms (+{:>5.2} over baseline, worst stream {:>6.2})  CPU {:>5.1}% of a core = {:>6.3}%/call  {}",
        f.loss() * 100.0,
        f.jitter_ms,
        added,
        f.jitter_max_ms,
        f.cpu_cores * 100.0,
        f.cpu_cores * 100.0 / n as f64,
        if ok { "pass" } else { "FAIL" }
    );
    ok
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let steps: Vec<usize> = std::env::var("CTIHOST_MEDIA_STEPS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 250, 500, 1000]);
    let rtpengine = has("rtpengine");
    println!(
        "== media: concurrent G.711 calls, 50 packets/s each way, {} s per step ==",
        MEASURE.as_secs()
    );
    let mut best: HashMap<&str, usize> = HashMap::new();
    let mut cpu_at: HashMap<(&str, usize), f64> = HashMap::new();
    // CTIHOST_MEDIA_RUNS=3: each step that many times; the median of each figure.
    let runs: usize = std::env::var("CTIHOST_MEDIA_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
        .max(1);
    for &n in &steps {
        let mut bases = Vec::new();
        for _ in 0..runs {
            bases.push(baseline(n).await);
        }
        let base = median(&bases);
        report("baseline (no relay)", n, &base, &base);
        let mut systems: Vec<&str> = vec!["ctihost relay", "ctihost relay+record"];
        if rtpengine {
            systems.push("rtpengine");
        }
        // CTIHOST_MEDIA_ONLY=rtpengine (a substring) runs only the matching systems.
        if let Ok(only) = std::env::var("CTIHOST_MEDIA_ONLY") {
            systems.retain(|s| s.contains(only.as_str()));
        }
        for label in systems {
            let mut all = Vec::new();
            for _ in 0..runs {
                let dir = tempfile::tempdir().unwrap();
                let f = match label {
                    "ctihost relay" => through_host(n, false, dir.path()).await,
                    "ctihost relay+record" => through_host(n, true, dir.path()).await,
                    _ => through_rtpengine(n, dir.path()).await,
                };
                all.extend(f);
            }
            let f = (all.len() == runs).then(|| median(&all));
            match f {
                Some(f) => {
                    if report(label, n, &f, &base) {
                        best.insert(label, n);
                    }
                    cpu_at.insert((label, n), f.cpu_cores);
                }
                None => println!("  {label:<22} {n:>5} calls  could not be set up"),
            }
        }
    }
    println!("== most concurrent calls passing (loss < 0.1%, added jitter < 5 ms) ==");
    for label in ["ctihost relay", "ctihost relay+record", "rtpengine"] {
        println!(
            "  {label:<22} {}",
            best.get(label).map(|n| n.to_string()).unwrap_or("-".into())
        );
    }
    if let Some(&n) = steps
        .iter()
        .rev()
        .find(|n| cpu_at.contains_key(&("rtpengine", **n)))
    {
        let r = cpu_at[&("rtpengine", n)].max(1e-9);
        for label in ["ctihost relay", "ctihost relay+record"] {
            if let Some(c) = cpu_at.get(&(label, n)) {
                println!("  CPU at {n} calls, {label} / rtpengine: {:.2}", c / r);
            }
        }
    }
}
