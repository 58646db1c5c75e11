//! The host's stop loses nothing: a drain refuses new calls with 503 and
//! Retry-After (OPTIONS probes too, for a load balancer) while live calls
//! go on; the calls left are ended with BYE both ways; every record and the
//! recording's index are written before the process exits; the next start
//! finds nothing interrupted.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::Server;
use support::sipp::{finished, phone_with, spawn_caller};
use support::{Crm, desk};

/// Send one request from a socket of our own and return the first final
/// answer (provisional ones skipped).
fn ask(host: SocketAddr, method: &str, call_id: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = sock.local_addr().unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let (ctype, body) = if method == "INVITE" {
        ("Content-Type: application/sdp\r\n", sdp)
    } else {
        ("", "")
    };
    let msg = format!(
        "{method} sip:95566@{host} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:+8613800000009@{me}>;tag=t{call_id}\r\nTo: <sip:95566@{host}>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:c@{me}>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.send_to(msg.as_bytes(), host).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer within 3 s");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

/// Wait (20 s at most) until `f` of the admin endpoint `path` holds.
fn wait_admin(s: &Server, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let v = s.admin_json(path, "t0k");
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < until, "{what} within 20 s: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn recording_live(s: &Server) {
    wait_admin(s, "/admin/media", "a live, recorded call", |m| {
        m["relays"]
            .as_array()
            .is_some_and(|r| r.len() == 1 && r[0]["recording"] == true)
    });
}

fn draining(s: &Server) -> Value {
    wait_admin(s, "/admin/drain", "the drain", |d| d["phase"] == "draining")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_a_second_ends_the_calls_with_bye_both_ways_and_loses_nothing() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tables = "[shutdown]\ndrain_secs = 600\nretry_after_secs = 7\n";
    let mut s = desk::center_with(dir.path(), crm.addr, "", tables);
    let host = s.sip_udp.unwrap();
    let phone = phone_with(&s, "1001", "agent_answer.xml", &[]);
    // This caller talks until the host sends its BYE.
    let caller = spawn_caller(&s, "caller_wait_bye.xml", &["-s", "95566"]);
    recording_live(&s);
    assert_eq!(
        ask(host, "OPTIONS", "probe-before").lines().next(),
        Some("SIP/2.0 200 OK")
    );

    // First SIGTERM: the drain. The live call goes on; new calls and
    // probes are refused with the configured Retry-After.
    s.signal("TERM");
    let d = draining(&s);
    assert_eq!(d["live_calls"], 1, "{d}");
    assert_eq!(d["retry_after_secs"], 7, "{d}");
    for (method, id) in [("INVITE", "new-call-1"), ("OPTIONS", "probe-1")] {
        let answer = ask(host, method, id);
        assert!(
            answer.starts_with("SIP/2.0 503 Service Unavailable"),
            "{method} while draining: {answer}"
        );
        assert_eq!(header(&answer, "Retry-After"), Some("7"), "{answer}");
        assert_eq!(header(&answer, "Call-ID"), Some(id), "{answer}");
    }
    // A retransmitted INVITE gets the same refusal, not a call.
    assert!(ask(host, "INVITE", "new-call-1").starts_with("SIP/2.0 503"));
    let m = s.admin_text("/metrics", "t0k");
    assert!(m.contains("ctihost_draining 1"), "{m}");
    assert!(m.contains("ctihost_drain_refused_total 3"), "{m}");
    assert!(
        s.wait_exit(Duration::from_millis(300)).is_none(),
        "the drain waits for the call"
    );
    assert_eq!(s.records(0).len(), 0, "the live call has no record yet");

    // Second SIGTERM: the calls left are ended both ways at once.
    s.signal("TERM");
    let (caller_ok, phone_ok) =
        tokio::task::spawn_blocking(move || (finished(caller), finished(phone)))
            .await
            .unwrap();
    assert!(caller_ok, "the caller got the host's BYE and answered it");
    assert!(
        phone_ok,
        "the agent's phone got the host's BYE and answered it"
    );
    let status = s
        .wait_exit(Duration::from_secs(20))
        .expect("the host exits");
    assert!(status.success(), "exit status {status}");
    let log = s.log.lock().unwrap().join("\n");
    assert!(log.contains("ending the calls still live"), "{log}");
    assert!(!log.contains("work unfinished"), "{log}");
    drop(s);

    // The next start: the call's record and its recording are there, and
    // nothing was left to be recorded as interrupted.
    let s = support::server::start(&dir.path().join("ctihost.toml"));
    let records = s.records(1);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["disposition"], "answered", "{r}");
    assert_eq!(r["agent"], "1001", "{r}");
    assert!(r["cause"].as_str().unwrap().contains("host's stop"), "{r}");
    let recs = s.admin_json("/admin/recordings", "t0k");
    let recs = recs.as_array().unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["call_id"], r["call_id"], "{recs:?}");
    let file = std::path::PathBuf::from(recs[0]["file"].as_str().unwrap());
    let file = if file.is_absolute() {
        file
    } else {
        dir.path().join(file)
    };
    // Sealed on disk (the default center's keys); served decrypted.
    assert!(
        !std::fs::read(&file).unwrap().starts_with(b"RIFF"),
        "sealed"
    );
    let wav = s.recording_wav(recs[0]["call_id"].as_str().unwrap(), "t0k");
    assert!(wav.duration() > 0, "the WAV has audio frames");
    assert!(recs[0]["duration_ms"].as_u64().unwrap() > 0, "{recs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctihost_drain_lets_the_live_call_finish_then_the_host_exits_by_itself() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = desk::center(dir.path(), crm.addr, "");
    let host = s.sip_udp.unwrap();
    let phone = phone_with(&s, "1001", "agent_answer.xml", &[]);
    // This caller hangs up by itself after 4 s of talk.
    let caller = spawn_caller(&s, "caller_uac.xml", &["-s", "95566", "-d", "4000"]);
    recording_live(&s);

    let out = Command::new(env!("CARGO_BIN_EXE_ctihost"))
        .args(["drain", "--within", "5m", "--token", "t0k"])
        .args(s.url_args())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("draining"), "{said}");
    assert!(said.contains("1 live call"), "{said}");
    let d = draining(&s);
    assert_eq!(d["retry_after_secs"], 30, "the default: {d}");
    let answer = ask(host, "INVITE", "during-drain");
    assert!(answer.starts_with("SIP/2.0 503"), "{answer}");
    let (caller_ok, phone_ok) =
        tokio::task::spawn_blocking(move || (finished(caller), finished(phone)))
            .await
            .unwrap();
    assert!(caller_ok && phone_ok);
    let status = s
        .wait_exit(Duration::from_secs(20))
        .expect("the host exits once the call ended");
    assert!(status.success(), "exit status {status}");
    drop(s);

    let s = support::server::start(&dir.path().join("ctihost.toml"));
    let records = s.records(1);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["disposition"], "answered", "{records:?}");
    assert!(
        !records[0]["cause"]
            .as_str()
            .unwrap_or("")
            .contains("host's stop"),
        "the caller ended it: {records:?}"
    );
    let recs = s.admin_json("/admin/recordings", "t0k");
    assert_eq!(recs.as_array().unwrap().len(), 1, "{recs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_beyond_a_day_is_refused() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let out = Command::new(env!("CARGO_BIN_EXE_ctihost"))
        .args(["drain", "--within", "2d", "--token", "t0k"])
        .args(s.url_args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("86400"), "{err}");
    assert_eq!(s.admin_json("/admin/drain", "t0k")["phase"], "running");
}

/// SIGTERM the moment a call has ended (nothing waits for its record to be
/// written): the stop ends every loop, the record writer's last batch
/// included, before the process exits, and the next start has the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_a_call_ends_keeps_its_record() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = desk::center(dir.path(), crm.addr, "");
    let phone = phone_with(&s, "1001", "agent_answer.xml", &[]);
    let caller = spawn_caller(&s, "caller_uac.xml", &["-s", "95566", "-d", "200"]);
    let (caller_ok, phone_ok) =
        tokio::task::spawn_blocking(move || (finished(caller), finished(phone)))
            .await
            .unwrap();
    assert!(caller_ok && phone_ok);
    s.signal("TERM");
    let status = s
        .wait_exit(Duration::from_secs(20))
        .expect("the host exits on SIGTERM");
    assert!(status.success(), "exit status {status}");
    // The log's last lines may still be in the pipe when the process is reaped.
    let until = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = s.log.lock().unwrap().join("\n");
        if log.contains("ctihost stopped") || Instant::now() > until {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        log.contains("ctihost stopped") && !log.contains("did not end in time"),
        "every loop ended: {log}"
    );
    drop(s);
    let s = support::server::start(&dir.path().join("ctihost.toml"));
    let records = s.records(1);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["disposition"], "answered", "{records:?}");
}
