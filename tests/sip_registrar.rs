//! The SIP endpoint of the real binary, against SIPp (Debian's sip-tester)
//! and raw sockets: digest REGISTER, OPTIONS, and bad input answered with the
//! right status while the host keeps serving.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::server::{self, Server, free_port};

fn center(dir: &std::path::Path, algorithms: &str) -> Server {
    let config = dir.join("ctihost.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "data"
[admin]
listen = "127.0.0.1:0"
token = "t0k"
[plugins]
watch = false
[sip]
udp = ["127.0.0.1:0"]
tcp = ["127.0.0.1:0"]
realm = "bank.test"
max_message_bytes = 4096
digest_algorithms = {algorithms}
[[queues]]
name = "general"
[[agents]]
id = "1001"
sip_user = "1001"
password = "demo-1001"
queues = {{ general = 1 }}
"#
        ),
    )
    .unwrap();
    server::start(&config)
}

fn scenario(name: &str) -> PathBuf {
    support::root().join("tests").join("sipp").join(name)
}

/// Run one SIPp call of `scenario` against `target`; true when it passed.
fn sipp(scenario_file: &str, target: SocketAddr, transport: &str, extra: &[&str]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("sipp")
        .current_dir(dir.path())
        .args([
            "-sf",
            scenario(scenario_file).to_str().unwrap(),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &free_port().to_string(),
            "-t",
            transport,
            "-timeout",
            "10",
            "-timeout_error",
            "-nostdin",
        ])
        .args(extra)
        .arg(target.to_string())
        .output()
        .expect("sipp is installed (Debian package sip-tester)");
    if !out.status.success() {
        eprintln!(
            "sipp {scenario_file} failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    out.status.success()
}

fn registrations(s: &Server) -> serde_json::Value {
    s.admin_json("/admin/sip/registrations", "t0k")
}

#[test]
fn register_without_wrong_and_right_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), r#"["MD5", "SHA-256"]"#);
    let (udp, tcp) = (s.sip_udp.unwrap(), s.sip_tcp.unwrap());
    // No credentials: 401 offering both algorithms; nothing registered.
    assert!(sipp("register_noauth.xml", udp, "u1", &["-s", "1001"]));
    // Wrong password: 403, nothing registered.
    assert!(sipp(
        "register_wrong.xml",
        udp,
        "u1",
        &["-s", "1001", "-au", "1001", "-ap", "not-the-password"]
    ));
    // Unknown user: 403.
    assert!(sipp(
        "register_wrong.xml",
        udp,
        "u1",
        &["-s", "9999", "-au", "9999", "-ap", "whatever"]
    ));
    assert_eq!(registrations(&s), serde_json::json!({}));
    // Right password over UDP, then over TCP: two bindings with the device's instance id.
    assert!(sipp(
        "register_ok.xml",
        udp,
        "u1",
        &["-s", "1001", "-au", "1001", "-ap", "demo-1001"]
    ));
    assert!(sipp(
        "register_ok.xml",
        tcp,
        "t1",
        &["-s", "1001", "-au", "1001", "-ap", "demo-1001"]
    ));
    let r = registrations(&s);
    let b = r["1001"].as_array().unwrap();
    assert_eq!(b.len(), 2, "{r}");
    assert_eq!(b[0]["transport"], "udp");
    assert_eq!(b[1]["transport"], "tcp");
    assert_eq!(
        b[0]["instance"],
        "urn:uuid:00000000-0000-1000-8000-000A95A0E128"
    );
}

/// RFC 8760 SHA-256 digest, computed here independently of the host's code
/// (SIPp only speaks MD5).
#[test]
fn register_with_sha256_digest() {
    use sha2::{Digest, Sha256};
    let h = |s: String| hex::encode(Sha256::digest(s.as_bytes()));
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), r#"["SHA-256", "MD5"]"#);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = sock.local_addr().unwrap();
    let reg = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:bank.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-sha-{cseq}\r\nFrom: <sip:1001@bank.test>;tag=x\r\nTo: <sip:1001@bank.test>\r\nCall-ID: sha256-test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@{me}>\r\n{auth}Expires: 120\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let ask = |msg: String| -> String {
        sock.send_to(msg.as_bytes(), s.sip_udp.unwrap()).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let challenge = ask(reg(1, ""));
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let first = challenge
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:"))
        .unwrap();
    assert!(
        first.contains("algorithm=SHA-256"),
        "SHA-256 is offered first: {first}"
    );
    let nonce = first
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let ha1 = h("1001:bank.test:demo-1001".into());
    let ha2 = h("REGISTER:sip:bank.test".into());
    let response = h(format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    let auth = format!(
        "Authorization: Digest username=\"1001\", realm=\"bank.test\", nonce=\"{nonce}\", uri=\"sip:bank.test\", response=\"{response}\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
    );
    let ok = ask(reg(2, &auth));
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert!(
        ok.contains(&format!("Contact: <sip:1001@{me}>;expires=120")),
        "{ok}"
    );
    // Unregister with the next nonce count (a nonce count is good once):
    // Expires 0 removes the binding.
    let response = h(format!("{ha1}:{nonce}:00000002:c0ffee:auth:{ha2}"));
    let auth = format!(
        "Authorization: Digest username=\"1001\", realm=\"bank.test\", nonce=\"{nonce}\", uri=\"sip:bank.test\", response=\"{response}\", algorithm=SHA-256, qop=auth, nc=00000002, cnonce=\"c0ffee\"\r\n"
    );
    let bye = ask(reg(3, &auth).replace("Expires: 120", "Expires: 0"));
    assert!(bye.starts_with("SIP/2.0 200 OK"), "{bye}");
    assert_eq!(registrations(&s), serde_json::json!({}));
}

/// A REGISTER captured on the wire cannot be replayed to take an agent's
/// calls (RFC 7616: each nonce count once, the answer bound to its
/// Request-URI), and passwords cannot be guessed at wire speed: a source's
/// attempts are refused unchecked after ten failures, while the owner's
/// phone, elsewhere, still registers.
#[test]
fn a_captured_register_cannot_be_replayed_and_guessing_is_throttled() {
    use sha2::{Digest, Sha256};
    let h = |s: String| hex::encode(Sha256::digest(s.as_bytes()));
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), r#"["SHA-256", "MD5"]"#);
    let host = s.sip_udp.unwrap();
    let socket = |ip: &str| {
        let sock = UdpSocket::bind(format!("{ip}:0")).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock
    };
    let (phone, attacker, guesser) = (
        socket("127.0.0.1"),
        socket("127.0.0.3"),
        socket("127.0.0.4"),
    );
    let ask = |sock: &UdpSocket, uri: &str, id: &str, auth: &str| -> String {
        let me = sock.local_addr().unwrap();
        let msg = format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{id}\r\nFrom: <sip:1001@bank.test>;tag={id}\r\nTo: <sip:1001@bank.test>\r\nCall-ID: {id}\r\nCSeq: 1 REGISTER\r\nContact: <sip:1001@{me}>\r\n{auth}Expires: 120\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(msg.as_bytes(), host).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let nonce_of = |challenge: &str| -> String {
        assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
        challenge
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let answer = |nonce: &str, nc: u32, uri: &str, password: &str| {
        let ha1 = h(format!("1001:bank.test:{password}"));
        let ha2 = h(format!("REGISTER:{uri}"));
        let response = h(format!("{ha1}:{nonce}:{nc:08x}:c0ffee:auth:{ha2}"));
        format!(
            "Authorization: Digest username=\"1001\", realm=\"bank.test\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=SHA-256, qop=auth, nc={nc:08x}, cnonce=\"c0ffee\"\r\n"
        )
    };
    let nonce = nonce_of(&ask(&phone, "sip:bank.test", "p1", ""));
    let captured = answer(&nonce, 1, "sip:bank.test", "demo-1001");
    let ok = ask(&phone, "sip:bank.test", "p2", &captured);
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");

    // Replayed at once from another address, new branch and Call-ID, the
    // attacker's Contact: challenged again, and no binding of the attacker.
    let replay = ask(&attacker, "sip:bank.test", "a1", &captured);
    assert!(replay.starts_with("SIP/2.0 401"), "{replay}");
    assert!(replay.contains("stale=true"), "{replay}");
    let bindings = registrations(&s).to_string();
    assert!(!bindings.contains("127.0.0.3"), "{bindings}");
    // The same answer under another Request-URI is not this request's.
    let moved = ask(&attacker, "sip:other.test", "a2", &captured);
    assert!(moved.starts_with("SIP/2.0 403"), "{moved}");
    // The phone goes on with the next nonce count.
    let next = ask(
        &phone,
        "sip:bank.test",
        "p3",
        &answer(&nonce, 2, "sip:bank.test", "demo-1001"),
    );
    assert!(next.starts_with("SIP/2.0 200 OK"), "{next}");

    // Guessing: ten wrong passwords from one source, then it is refused
    // unchecked (with Retry-After) even when it finally guesses right.
    for i in 0..10 {
        let nonce = nonce_of(&ask(&guesser, "sip:bank.test", &format!("g{i}a"), ""));
        let r = ask(
            &guesser,
            "sip:bank.test",
            &format!("g{i}b"),
            &answer(&nonce, 1, "sip:bank.test", &format!("guess-{i}")),
        );
        assert!(r.starts_with("SIP/2.0 403 Forbidden\r\n"), "{r}");
    }
    let nonce = nonce_of(&ask(&guesser, "sip:bank.test", "g-right-a", ""));
    let r = ask(
        &guesser,
        "sip:bank.test",
        "g-right-b",
        &answer(&nonce, 1, "sip:bank.test", "demo-1001"),
    );
    assert!(
        r.starts_with("SIP/2.0 403 Forbidden - too many failed attempts\r\n"),
        "{r}"
    );
    assert!(r.contains("Retry-After: "), "{r}");
    // The owner's phone is not locked out.
    let nonce = nonce_of(&ask(&phone, "sip:bank.test", "p4", ""));
    let ok = ask(
        &phone,
        "sip:bank.test",
        "p5",
        &answer(&nonce, 1, "sip:bank.test", "demo-1001"),
    );
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    let metrics = s.admin_text("/metrics", "t0k");
    assert!(
        metrics.contains("ctihost_sip_digest_replays_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ctihost_sip_digest_throttled_total 1"),
        "{metrics}"
    );
}

#[test]
fn bad_requests_get_the_right_answers_and_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), r#"["MD5"]"#);
    let udp = s.sip_udp.unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = sock.local_addr().unwrap();
    let ask = |msg: &str| -> String {
        sock.send_to(msg.as_bytes(), udp).unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let head = |method: &str, branch: &str| {
        format!(
            "{method} sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{branch}\r\nFrom: <sip:t@x>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: bad-{branch}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
        )
    };
    // Unknown method: 501 Not Implemented, with Allow.
    let r = ask(
        &format!("{}Content-Length: 0\r\n\r\n", head("FROBNICATE", "a"))
            .replace("CSeq: 1 FROBNICATE", "CSeq: 1 FROBNICATE"),
    );
    assert!(r.starts_with("SIP/2.0 501 Not Implemented\r\n"), "{r}");
    assert!(r.contains("Allow: INVITE, ACK, BYE, CANCEL, INFO, REGISTER, OPTIONS"));
    // Missing Call-ID: 400 naming it.
    let r = ask(
        &format!("{}Content-Length: 0\r\n\r\n", head("OPTIONS", "b"))
            .replace("Call-ID: bad-b\r\n", ""),
    );
    assert!(
        r.starts_with("SIP/2.0 400 Bad Request - missing Call-ID\r\n"),
        "{r}"
    );
    // CSeq method not matching the request: 400.
    let r = ask(
        &format!("{}Content-Length: 0\r\n\r\n", head("OPTIONS", "c"))
            .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
    );
    assert!(r.starts_with("SIP/2.0 400 Bad Request - bad CSeq"), "{r}");
    // A header the message model cannot read: a plain reason, nothing of
    // the parser's internals.
    let r = ask(
        &format!("{}Content-Length: 0\r\n\r\n", head("OPTIONS", "e")).replace(
            "OPTIONS sip:127.0.0.1 SIP/2.0",
            "OPTIONS sip:127.0.0.1:99999 SIP/2.0",
        ),
    );
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");
    let reason = r.lines().next().unwrap();
    assert!(
        !reason.contains("rsip") && !reason.contains("Tokenizer") && !reason.contains("error"),
        "{reason}"
    );
    // Oversized (limit 4096 in this config): 513.
    let big = format!(
        "{}X-Padding: {}\r\nContent-Length: 0\r\n\r\n",
        head("OPTIONS", "d"),
        "p".repeat(6000)
    );
    let r = ask(&big);
    assert!(r.starts_with("SIP/2.0 513 Message Too Large\r\n"), "{r}");
    // LF-only line endings and compact names are understood: 200.
    let lf = format!(
        "{}l: 0\r\n\r\n",
        head("OPTIONS", "e")
            .replace("Call-ID:", "i:")
            .replace("From:", "f:")
    )
    .replace("\r\n", "\n");
    let r = ask(&lf);
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    // A retransmitted request gets the very same answer (absorbed, not redone).
    let opt = format!("{}Content-Length: 0\r\n\r\n", head("OPTIONS", "f"));
    assert_eq!(ask(&opt), ask(&opt));
    // Garbage gets no answer and breaks nothing; then a normal OPTIONS works.
    sock.send_to(b"\x00\x01garbage\xff\r\n\r\n", udp).unwrap();
    sock.send_to(b"INVITE\r\n\r\n", udp).unwrap();
    // Over TCP, a Content-Length beyond the cap gets 513 and the connection closes.
    {
        use std::io::{Read, Write};
        let mut c = TcpStream::connect(s.sip_tcp.unwrap()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(format!("{}Content-Length: 999999\r\n\r\n", head("OPTIONS", "g")).as_bytes())
            .unwrap();
        let mut buf = String::new();
        let _ = c.read_to_string(&mut buf);
        assert!(buf.starts_with("SIP/2.0 513"), "{buf}");
    }
    // Still serving, over UDP with SIPp (compact headers) and over TCP.
    assert!(sipp("options.xml", udp, "u1", &[]));
    assert!(sipp("options.xml", s.sip_tcp.unwrap(), "t1", &[]));
}

/// TCP is bounded: connections per source, idle connections, and the
/// answers queued for a peer that never reads (3,000 idle connections were
/// held forever, and 60,000 pipelined OPTIONS grew the queue without bound).
#[test]
fn tcp_connections_are_bounded_and_idle_ones_closed() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ctihost.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n[plugins]\nwatch = false\n\
         [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\ntcp_max_per_source = 5\ntcp_idle_secs = 2\n\
         max_requests_per_source = 0\n",
    )
    .unwrap();
    let s = server::start(&config);
    let tcp = s.sip_tcp.unwrap();
    let options = |branch: &str| {
        format!(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-{branch}\r\nFrom: <sip:t@x>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: tcp-{branch}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    // An OPTIONS on each of the first five is answered (they are open);
    // the sixth and later are closed at once.
    let mut open: Vec<TcpStream> = Vec::new();
    for i in 0..5 {
        let mut c = TcpStream::connect(tcp).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(options(&format!("o{i}")).as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"SIP/2.0 200"), "{i}");
        open.push(c);
    }
    let mut extra = TcpStream::connect(tcp).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(options("over").as_bytes());
    let mut buf = [0u8; 512];
    assert!(
        matches!(extra.read(&mut buf), Ok(0) | Err(_)),
        "the sixth is closed"
    );
    // Idle ones are closed after tcp_idle_secs (2 s).
    let started = std::time::Instant::now();
    for c in &mut open {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert!(
            matches!(c.read(&mut buf), Ok(0) | Err(_)),
            "idle connection closed"
        );
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(8),
        "{took:?}"
    );

    // A peer that pipelines requests and never reads is dropped once its
    // answers fill their queue; the host goes on serving.
    // (A small receive buffer, so that the host's answers back up quickly.)
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&tcp.into()).unwrap();
    let mut hog: TcpStream = sock.into();
    hog.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let burst: String = (0..40_000).map(|i| options(&format!("p{i}"))).collect();
    let _ = hog.write_all(burst.as_bytes());
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = s.admin_text("/metrics", "t0k");
        if m.contains("ctihost_bound_hits_total{bound=\"tcp-output-queue\"}") {
            assert!(
                m.contains("ctihost_bound_hits_total{bound=\"tcp-connections-per-source\"} 1"),
                "{m}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the non-reading peer was dropped: {m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut c = TcpStream::connect(tcp).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(options("after").as_bytes()).unwrap();
    let n = c.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200"));
}

/// A source sending more than `[sip] max_requests_per_source` requests in a
/// second has the rest of that second's dropped unanswered (counted in
/// /metrics); a trunk's address is never limited.
#[test]
fn requests_beyond_the_per_source_rate_are_dropped_unanswered_but_trunks_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ctihost.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n[plugins]\nwatch = false\n\
         [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\nmax_requests_per_source = 20\n\
         [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    let s = server::start(&config);
    let udp = s.sip_udp.unwrap();
    // `n` OPTIONS at once from `source`, then (in the next second) a probe:
    // the answers before the probe's are those of the burst.
    let burst = |source: &str, n: usize| -> usize {
        let sock = UdpSocket::bind((source, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = sock.local_addr().unwrap();
        let options = |id: &str| {
            format!(
                "OPTIONS sip:{udp} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{id}\r\nFrom: <sip:t@x>;tag=1\r\nTo: <sip:{udp}>\r\nCall-ID: rate-{id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
        };
        for i in 0..n {
            sock.send_to(options(&format!("{source}-{i}")).as_bytes(), udp)
                .unwrap();
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        std::thread::sleep(Duration::from_millis(1050 - u64::from(now.subsec_millis())));
        sock.send_to(options(&format!("{source}-probe")).as_bytes(), udp)
            .unwrap();
        let mut answered = 0;
        let mut buf = [0u8; 4096];
        loop {
            let (len, _) = sock.recv_from(&mut buf).expect("the probe is answered");
            let text = String::from_utf8_lossy(&buf[..len]);
            if text.contains("Call-ID: rate-") && text.contains("-probe") {
                return answered;
            }
            answered += 1;
        }
    };
    let got = burst("127.0.0.2", 100);
    // 20 a second; a burst that straddles a second boundary gets two.
    assert!((20..=40).contains(&got), "answered {got} of 100");
    let m = s.admin_text("/metrics", "t0k");
    let hits: u64 = m
        .lines()
        .find_map(|l| {
            l.strip_prefix("ctihost_bound_hits_total{bound=\"sip_requests_per_source\"} ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(hits, 100 - got as u64, "{m}");
    assert_eq!(burst("127.0.0.1", 100), 100, "the trunk is not limited");
    let log = s.log.lock().unwrap().join("\n");
    assert!(log.contains("max_requests_per_source"), "{log}");
}
