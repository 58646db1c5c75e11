//! Calls through the real binary: SIPp as the trunk's caller and as agents'
//! phones, the stock router deciding, call records read back from the host.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::server::{self, Server, free_port};
use support::sipp::{caller, finished, phone, phone_with, sipp_cmd, spawn_caller};

fn center(dir: &std::path::Path, ring_timeout_secs: u32) -> Server {
    center_with(dir, ring_timeout_secs, "")
}

/// `plugins` is added to the `[plugins]` table.
fn center_with(dir: &std::path::Path, ring_timeout_secs: u32, plugins: &str) -> Server {
    center_full(dir, ring_timeout_secs, plugins, "")
}

/// `queue` is added to the general queue's table.
fn center_full(
    dir: &std::path::Path,
    ring_timeout_secs: u32,
    plugins: &str,
    queue: &str,
) -> Server {
    center_trunks(
        dir,
        ring_timeout_secs,
        plugins,
        queue,
        "[[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n",
    )
}

/// `trunks`: the `[[trunks]]` tables.
fn center_trunks(
    dir: &std::path::Path,
    ring_timeout_secs: u32,
    plugins: &str,
    queue: &str,
    trunks: &str,
) -> Server {
    center_agents(dir, ring_timeout_secs, plugins, queue, trunks, "")
}

/// `agent_1001`: more keys for agent 1001's table.
fn center_agents(
    dir: &std::path::Path,
    ring_timeout_secs: u32,
    plugins: &str,
    queue: &str,
    trunks: &str,
    agent_1001: &str,
) -> Server {
    let config = dir.join("ctihost.toml");
    let plugins = if plugins.contains("dir =") {
        plugins.to_owned()
    } else {
        format!(
            "{plugins}\ndir = \"{}\"",
            support::always_open_router(dir).display()
        )
    };
    let agent = |id: &str| {
        format!(
            "[[agents]]\nid = \"{id}\"\nsip_user = \"{id}\"\npassword = \"pw-{id}\"\nqueues = {{ general = 1 }}\n{}",
            if id == "1001" { agent_1001 } else { "" }
        )
    };
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n[plugins]\nwatch = false\n{plugins}\n\
             [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\ndigest_algorithms = [\"MD5\"]\n\
             {trunks}\
             [[queues]]\nname = \"general\"\nring_timeout_secs = {ring_timeout_secs}\n{queue}\n[[queues]]\nname = \"vip\"\n{}{}",
            agent("1001"),
            agent("1002")
        ),
    )
    .unwrap();
    server::start(&config)
}

fn records(s: &Server, n: usize) -> Vec<serde_json::Value> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let v = s
            .admin_json("/admin/cdr", "t0k")
            .as_array()
            .cloned()
            .unwrap_or_default();
        if v.len() >= n || Instant::now() > until {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn answered_calls_end_from_either_side_with_correct_records() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), 15);
    // Caller hangs up (INVITE, ACK, 1 s of talk, BYE).
    let agent = phone(&s, "1001", "agent_answer.xml");
    assert!(caller(&s, &["caller_uac.xml", "-s", "95566", "-d", "1000"]));
    assert!(finished(agent));
    // Agent hangs up.
    let agent = phone(&s, "1001", "agent_answer_bye.xml");
    assert!(caller(&s, &["caller_wait_bye.xml", "-s", "95566"]));
    assert!(finished(agent));
    let r = records(&s, 2);
    assert_eq!(r.len(), 2, "{r:?}");
    for (rec, cause) in r.iter().zip(["caller hung up", "agent hung up"]) {
        assert_eq!(rec["disposition"], "answered", "{rec}");
        assert_eq!(rec["agent"], "1001");
        assert_eq!(rec["queue"], "general");
        assert_eq!(rec["trunk"], "pstn");
        assert_eq!(rec["dialed"], "95566");
        assert_eq!(rec["cause"], cause);
        assert!(rec["talk_secs"].as_f64().unwrap() >= 0.9, "{rec}");
        assert_eq!(
            rec["plugin_versions"]["skills-router"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
    }
}

/// The same over TCP: the caller's and the agent's legs each on their own connection.
#[test]
fn answered_calls_over_tcp_end_from_either_side() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), 15);
    let tcp = ["-t", "t1"];
    let agent = phone_with(&s, "1001", "agent_answer.xml", &tcp);
    assert!(caller(
        &s,
        &["caller_uac.xml", "-s", "95566", "-d", "1000", "-t", "t1"]
    ));
    assert!(finished(agent));
    let agent = phone_with(&s, "1002", "agent_answer_bye.xml", &tcp);
    assert!(caller(
        &s,
        &["caller_wait_bye.xml", "-s", "95566", "-t", "t1"]
    ));
    assert!(finished(agent));
    let r = records(&s, 2);
    assert_eq!(r.len(), 2, "{r:?}");
    for (rec, (agent, cause)) in r
        .iter()
        .zip([("1001", "caller hung up"), ("1002", "agent hung up")])
    {
        assert_eq!(rec["disposition"], "answered", "{rec}");
        assert_eq!(rec["agent"], agent);
        assert_eq!(rec["cause"], cause);
        assert!(rec["talk_secs"].as_f64().unwrap() >= 0.9 || cause == "agent hung up");
    }
    let regs = s.admin_json("/admin/sip/registrations", "t0k");
    assert_eq!(regs["1001"][0]["transport"], "tcp", "{regs}");
}

/// The queue log's event kinds for one call, in order.
fn queue_log_of(s: &Server, call_id: &str) -> Vec<String> {
    s.admin_json("/admin/queue-log", "t0k")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["call_id"] == call_id)
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// The only agent is busy; a second caller waits in the queue and gives up.
#[test]
fn caller_abandons_in_queue() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), 15);
    let agent = phone(&s, "1001", "agent_answer.xml");
    let talking = spawn_caller(&s, "caller_uac.xml", &["-s", "95566", "-d", "4000"]);
    // Wait until the first call is connected.
    let until = Instant::now() + Duration::from_secs(10);
    while !s
        .admin_json("/admin/queue-log", "t0k")
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "connect")
    {
        assert!(Instant::now() < until, "first call connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(caller(&s, &["caller_cancel_queued.xml", "-s", "95566"]));
    assert!(finished(talking));
    assert!(finished(agent));
    let r = records(&s, 2);
    let abandoned = r
        .iter()
        .find(|c| c["disposition"] == "abandoned-in-queue")
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(abandoned["agent"].is_null(), "{abandoned}");
    assert!(
        abandoned["wait_secs"].as_f64().unwrap() >= 0.9,
        "{abandoned}"
    );
    assert_eq!(
        queue_log_of(&s, abandoned["call_id"].as_str().unwrap()),
        ["enter-queue", "abandon"]
    );
    let answered = r
        .iter()
        .find(|c| c["disposition"] == "answered")
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(
        queue_log_of(&s, answered["call_id"].as_str().unwrap()),
        ["enter-queue", "offered", "connect", "complete"]
    );
}

#[test]
fn caller_abandons_while_the_agent_rings() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), 15);
    let agent = phone(&s, "1001", "agent_ring_cancel.xml");
    assert!(caller(&s, &["caller_cancel.xml", "-s", "95566"]));
    assert!(finished(agent), "the agent's phone saw the CANCEL");
    let r = records(&s, 1);
    assert_eq!(r[0]["disposition"], "abandoned-ringing", "{r:?}");
    assert_eq!(
        queue_log_of(&s, r[0]["call_id"].as_str().unwrap()),
        ["enter-queue", "offered", "abandon"]
    );
    // The agent is free again: the next call reaches the same phone.
    let agent = phone(&s, "1001", "agent_answer_bye.xml");
    assert!(caller(&s, &["caller_wait_bye.xml", "-s", "95566"]));
    assert!(finished(agent));
    assert_eq!(records(&s, 2)[1]["disposition"], "answered");
}

#[test]
fn unanswered_agent_goes_not_ready_and_the_next_agent_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), 2);
    // 1001 registers first, so it has idled longest and rings first; it never answers.
    let silent = phone(&s, "1001", "agent_ring_cancel.xml");
    let answering = phone(&s, "1002", "agent_answer.xml");
    assert!(caller(&s, &["caller_uac.xml", "-s", "95566", "-d", "1000"]));
    assert!(finished(silent), "ring-no-answer cancelled 1001's phone");
    assert!(finished(answering));
    let r = records(&s, 1);
    assert_eq!(r[0]["disposition"], "answered", "{r:?}");
    assert_eq!(r[0]["agent"], "1002");
    assert!(r[0]["wait_secs"].as_f64().unwrap() >= 2.0, "{r:?}");
}

/// rsip cannot read IPv6 references; the host still serves phones and trunks over IPv6.
#[test]
fn a_call_over_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ctihost.toml");
    std::fs::write(
        &config,
        format!("data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n[plugins]\nwatch = false\ndir = \"{}\"\n\
         [sip]\nudp = [\"[::1]:0\"]\ntcp = []\ndigest_algorithms = [\"MD5\"]\n\
         [[trunks]]\nname = \"pstn6\"\naddresses = [\"::1\"]\n\
         [[queues]]\nname = \"general\"\n[[queues]]\nname = \"vip\"\n\
         [[agents]]\nid = \"1001\"\nsip_user = \"1001\"\npassword = \"pw-1001\"\nqueues = {{ general = 1 }}\n", support::always_open_router(dir.path()).display()),
    )
    .unwrap();
    let s = server::start(&config);
    assert!(s.sip_udp.unwrap().is_ipv6());
    let agent = phone(&s, "1001", "agent_answer.xml");
    assert!(caller(&s, &["caller_uac.xml", "-s", "95566", "-d", "500"]));
    assert!(finished(agent));
    let r = records(&s, 1);
    assert_eq!(r[0]["disposition"], "answered", "{r:?}");
    assert_eq!(r[0]["trunk"], "pstn6");
    let regs = s.admin_json("/admin/sip/registrations", "t0k");
    assert!(
        regs["1001"][0]["contact"]
            .as_str()
            .unwrap()
            .contains("[::1]"),
        "{regs}"
    );
}

/// A trunk known by its digest credential rather than its address: 407, then
/// the INVITE with Proxy-Authorization is a call of that trunk; a wrong
/// password is refused and leaves no call behind.
#[test]
fn trunk_authenticates_with_digest() {
    let dir = tempfile::tempdir().unwrap();
    let s = center_trunks(
        dir.path(),
        15,
        "",
        "",
        "[[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.9\"]\n\
         [[trunks]]\nname = \"carrier\"\nusername = \"carrier1\"\npassword = \"s3cret\"\n",
    );
    // Refused first: a wrong password, then no credentials at all (the plain
    // caller gets the 407 and gives up).
    assert!(!caller(
        &s,
        &[
            "caller_uac_auth.xml",
            "-s",
            "95566",
            "-au",
            "carrier1",
            "-ap",
            "wrong"
        ]
    ));
    assert!(!caller(&s, &["caller_uac.xml", "-s", "95566"]));
    let agent = phone(&s, "1001", "agent_answer.xml");
    assert!(caller(
        &s,
        &[
            "caller_uac_auth.xml",
            "-s",
            "95566",
            "-d",
            "500",
            "-au",
            "carrier1",
            "-ap",
            "s3cret"
        ]
    ));
    assert!(finished(agent));
    // The center handles events in order: a record of a refused INVITE would come first.
    let r = records(&s, 1);
    assert_eq!(r.len(), 1, "refused INVITEs make no call records: {r:?}");
    assert_eq!(r[0]["trunk"], "carrier");
    assert_eq!(r[0]["disposition"], "answered");
}

#[test]
fn invite_from_an_address_that_is_no_trunk_is_refused() {
    // One small stateless answer, never retransmitted and no 100 Trying: a
    // forged source cannot turn the host into an amplifier (an unACKed 403
    // used to come back eleven times, plus the 100).
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), 15);
    let (got, sent) = intrude(&s, "127.0.0.2", "x1", Duration::from_millis(2500));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("SIP/2.0 403 Forbidden - not a trunk"),
        "{got:?}"
    );
    assert!(
        got[0].len() <= sent,
        "the answer is no larger than the request"
    );
    assert!(records(&s, 0).is_empty());
}

/// An INVITE from `source` (127.0.0.2 is no trunk): every answer within
/// `wait`, and the request's size. Timer G would repeat a final answer at
/// 0.5 s and 1.5 s.
fn intrude(s: &Server, source: &str, id: &str, wait: Duration) -> (Vec<String>, usize) {
    let sock = UdpSocket::bind(format!("{source}:0")).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    let me = sock.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:95566@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{id}\r\nFrom: <sip:intruder@{me}>;tag=1\r\nTo: <sip:95566@127.0.0.1>\r\nCall-ID: intruder-{id}\r\nCSeq: 1 INVITE\r\nContact: <sip:intruder@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(invite.as_bytes(), s.sip_udp.unwrap()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    (got, invite.len())
}

#[test]
fn unknown_sources_can_be_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ctihost.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n\
             [plugins]\nwatch = false\ndir = \"{}\"\n\
             [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = []\nunknown_sources = \"ignore\"\n\
             [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n[[queues]]\nname = \"general\"\n",
            support::always_open_router(dir.path()).display()
        ),
    )
    .unwrap();
    let s = server::start(&config);
    let (got, _) = intrude(&s, "127.0.0.2", "x2", Duration::from_millis(1500));
    assert!(got.is_empty(), "no answer at all: {got:?}");
    // The trunk's calls still get in.
    let (got, _) = intrude(&s, "127.0.0.1", "x3", Duration::from_millis(500));
    assert!(
        got.first()
            .is_some_and(|r| r.starts_with("SIP/2.0 100 Trying")),
        "{got:?}"
    );
}

/// 10% of the trunk caller's SIP packets are lost (both ways); retransmissions
/// still complete every call. (Loss on the agents' side is left out: SIPp as a
/// phone aborts on an INVITE retransmission after its 200, which real phones answer.)
#[test]
fn calls_complete_through_packet_loss() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), 15);
    let agent = phone_with(&s, "1001", "agent_answer.xml", &["-m", "3"]);
    assert!(caller(
        &s,
        &[
            "caller_uac.xml",
            "-s",
            "95566",
            "-d",
            "200",
            "-m",
            "3",
            "-lost",
            "10"
        ]
    ));
    assert!(finished(agent));
    let r = records(&s, 3);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r.iter().all(|c| c["disposition"] == "answered"), "{r:?}");
}

/// The router is hot-reloaded four times while twelve calls flow: none fails,
/// and the records show the versions that decided them.
#[test]
fn router_hot_reload_while_calls_flow() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    let router = std::fs::read(support::wasm("test_router")).unwrap();
    let install = |tag: &str| {
        std::fs::write(plugins.join("r.wasm"), support::variant_of(&router, tag)).unwrap();
        std::fs::write(
            plugins.join("skills-router.toml"),
            "name = \"skills-router\"\nkind = \"router\"\nfile = \"r.wasm\"\n[config]\nmode = \"ok\"\nqueue = \"general\"\n",
        )
        .unwrap();
    };
    install("v0");
    let s = center_with(dir.path(), 15, "dir = \"plugins.d\"");
    let agent = phone_with(&s, "1001", "agent_answer.xml", &["-m", "12"]);
    let mut calls = sipp_cmd(
        "caller_uac.xml",
        s.sip_udp.unwrap(),
        free_port(),
        &["-s", "95566", "-d", "200", "-m", "12", "-r", "4"],
    )
    .spawn()
    .unwrap();
    for i in 1..=4 {
        // Swap while calls are in progress: after every second finished call.
        let done = records(&s, 2 * i).len();
        assert!(done >= 2 * i, "calls progressing");
        install(&format!("v{i}"));
        let out = Command::new(env!("CARGO_BIN_EXE_ctihost"))
            .args([
                "plugin",
                "reload",
                "skills-router",
                "--ca-file",
                &s.ca,
                "--url",
                &s.url,
                "--token",
                "t0k",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = calls.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < until, "calls finished");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "every call succeeded");
    assert!(finished(agent));
    let r = records(&s, 12);
    assert_eq!(r.len(), 12);
    assert!(r.iter().all(|c| c["disposition"] == "answered"), "{r:?}");
    let versions: std::collections::BTreeSet<&str> = r
        .iter()
        .map(|c| c["plugin_versions"]["skills-router"].as_str().unwrap())
        .collect();
    assert!(
        versions.len() >= 3,
        "several router versions decided calls: {versions:?}"
    );
}

/// A raw INVITE from the trunk address; returns the final response after
/// ACKing it.
fn invite_for_final(s: &Server, call_id: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let head = |method: &str| {
        format!(
            "{method} sip:95566@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}\r\nFrom: <sip:+8613900000009@{me}>;tag=c1\r\nTo: <sip:95566@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:caller@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    sock.send_to(head("INVITE").as_bytes(), s.sip_udp.unwrap())
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        let code: u16 = r.split_whitespace().nth(1).unwrap().parse().unwrap();
        if code >= 200 {
            sock.send_to(head("ACK").as_bytes(), s.sip_udp.unwrap())
                .unwrap();
            return r;
        }
    }
}

#[test]
fn router_rejects_with_its_chosen_code() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(support::wasm("test_router"), plugins.join("r.wasm")).unwrap();
    std::fs::write(
        plugins.join("skills-router.toml"),
        "name = \"skills-router\"\nkind = \"router\"\nfile = \"r.wasm\"\n[config]\nmode = \"reject\"\ncode = \"486\"\nreason = \"Busy Here\"\n",
    )
    .unwrap();
    let s = center_with(dir.path(), 15, "dir = \"plugins.d\"");
    let r = invite_for_final(&s, "reject-1");
    assert!(r.starts_with("SIP/2.0 486 Busy Here\r\n"), "{r}");
    let rec = &records(&s, 1)[0];
    assert_eq!(rec["disposition"], "rejected");
    assert_eq!(rec["cause"], "486 Busy Here");
}

/// What a router returns never reaches the wire unchecked: a reject reason,
/// a forward target or a prompt name carrying CRLF and a header of its own
/// is a plugin failure, and the caller gets the manifest's fallback.
#[test]
fn a_router_cannot_write_sip_headers() {
    for (i, config) in [
        "mode = \"reject\"\ncode = \"486\"\nreason = \"Busy Here\\r\\nX-Injected: from-plugin\"",
        "mode = \"forward\"\ntarget = \"sip:x@h>\\r\\nRecord-Route: <sip:attacker@203.0.113.9>\\r\\nX-Injected: 1\"",
        "mode = \"forward\"\ntarget = \"sip:attacker@203.0.113.9?X-Injected=1\"",
        "mode = \"ivr\"\nprompt = \"main-menu\\r\\nX-Injected: 1\"",
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins.d");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::copy(support::wasm("test_router"), plugins.join("r.wasm")).unwrap();
        std::fs::write(
            plugins.join("skills-router.toml"),
            format!(
                "name = \"skills-router\"\nkind = \"router\"\nfile = \"r.wasm\"\n\
                 [fallback.route.Reject]\ncode = 503\nreason = \"Service Unavailable\"\n\
                 [config]\n{config}\n"
            ),
        )
        .unwrap();
        let s = center_with(dir.path(), 15, "dir = \"plugins.d\"");
        let r = invite_for_final(&s, &format!("inject-{i}"));
        assert!(
            r.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
            "{config}: the fallback answers: {r}"
        );
        assert!(
            !r.contains("X-Injected") && !r.contains("attacker") && !r.contains("Record-Route"),
            "{config}: {r}"
        );
        let metrics = s.admin_text("/metrics", "t0k");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("ctihost_plugin_failures_total{plugin=\"skills-router\"")
                    && l.ends_with(" 1")),
            "{config}: counted as the plugin's failure:\n{metrics}"
        );
    }
}

#[test]
fn queue_timeout_overflows_to_the_configured_target() {
    let dir = tempfile::tempdir().unwrap();
    let s = center_full(
        dir.path(),
        15,
        "",
        "max_wait_secs = 1\noverflow = \"+861095566\"",
    );
    // No agent is registered: the caller waits a second, then is sent on.
    let started = Instant::now();
    let r = invite_for_final(&s, "overflow-1");
    assert!(r.starts_with("SIP/2.0 302 Moved Temporarily\r\n"), "{r}");
    assert!(r.contains("Contact: <sip:+861095566@127.0.0.1>"), "{r}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    let rec = &records(&s, 1)[0];
    assert_eq!(rec["disposition"], "overflowed", "{rec}");
    assert!(rec["wait_secs"].as_f64().unwrap() >= 1.0);
}

/// A baresip process (a real softphone), killed when dropped.
struct Baresip {
    child: Child,
    log: std::path::PathBuf,
    rtp_ports: std::ops::RangeInclusive<u16>,
    /// Its directory: with SRTP, the audio it decoded is dumped there.
    home: std::path::PathBuf,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Baresip {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// baresip with its config and accounts in `home` and `args`, its output
/// in `home/baresip.log`.
fn spawn_baresip(home: &std::path::Path, args: &[&str]) -> (Child, std::path::PathBuf) {
    let log = home.join("baresip.log");
    let child = Command::new("baresip")
        .arg("-f")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip is installed (Debian package baresip-core)");
    (child, log)
}

/// baresip registered as `agent` over `transport` ("udp", "tcp" or "tls"),
/// answering calls by itself; over TLS it trusts `ca` (PEM).
fn baresip(s: &Server, dir: &std::path::Path, agent: &str, transport: &str) -> Baresip {
    baresip_trusting(s, dir, agent, transport, None)
}

fn baresip_trusting(
    s: &Server,
    dir: &std::path::Path,
    agent: &str,
    transport: &str,
    ca: Option<&std::path::Path>,
) -> Baresip {
    baresip_with(s, dir, agent, transport, ca, false)
}

/// The same; with `srtp`, a phone that takes SRTP only (`mediaenc=srtp-mand`:
/// it answers a plain offer with 488).
fn baresip_with(
    s: &Server,
    dir: &std::path::Path,
    agent: &str,
    transport: &str,
    ca: Option<&std::path::Path>,
    srtp: bool,
) -> Baresip {
    let home = dir.join(format!("baresip-{agent}"));
    std::fs::create_dir_all(&home).unwrap();
    let port = free_port();
    let rtp = 30_000 + (port % 1_000) * 20;
    std::fs::write(
        home.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\naudio_player aufile,{heard}\n\
             audio_source ausine,440\nausrc_srate 48000\nausrc_channels 2\nauplay_srate 48000\naudio_alert aufile,/dev/null\nrtp_ports {rtp}-{}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule ausine.so\n\
             module aufile.so\nmodule menu.so\nmodule_app account.so\n{cafile}{srtp}",
            rtp + 19,
            heard = home.join("heard.wav").display(),
            cafile = ca.map_or(String::new(), |c| format!("sip_cafile {}\n", c.display())),
            srtp = if srtp {
                // What it decodes is dumped (sndfile: dump-*-dec.wav).
                format!("module srtp.so\nmodule sndfile.so\nsnd_path {}\n", home.display())
            } else {
                String::new()
            },
        ),
    )
    .unwrap();
    let host = match transport {
        "tcp" => s.sip_tcp.unwrap(),
        "tls" => s.sip_tls.unwrap(),
        _ => s.sip_udp.unwrap(),
    };
    std::fs::write(
        home.join("accounts"),
        format!(
            "<sip:{agent}@{host};transport={transport}>;auth_pass=pw-{agent};answermode=auto;regint=600{}\n",
            if srtp { ";mediaenc=srtp-mand" } else { "" }
        ),
    )
    .unwrap();
    let (child, log) = spawn_baresip(&home, &[]);
    let phone = Baresip {
        child,
        log,
        rtp_ports: rtp..=rtp + 19,
        home: home.clone(),
    };
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let regs = s.admin_json("/admin/sip/registrations", "t0k");
        if regs[agent][0]["transport"] == transport {
            return phone;
        }
        assert!(
            Instant::now() < until,
            "baresip never registered {agent} over {transport}: {regs}\n{}",
            phone.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// baresip as a real phone, over UDP and then over TCP: it registers with its
/// digest credentials, rings, answers by itself and the caller's BYE ends the call.
#[test]
fn baresip_phones_answer_calls_over_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), 15);
    for (n, (agent, transport)) in [("1001", "udp"), ("1002", "tcp")].into_iter().enumerate() {
        let phone = baresip(&s, dir.path(), agent, transport);
        assert!(
            caller(&s, &["caller_uac.xml", "-s", "95566", "-d", "1500"]),
            "call to baresip over {transport}:\n{}",
            phone.log()
        );
        let r = records(&s, n + 1);
        let rec = &r[n];
        assert_eq!(rec["disposition"], "answered", "{rec}\n{}", phone.log());
        assert_eq!(rec["agent"], agent);
        assert_eq!(rec["cause"], "caller hung up");
        assert!(rec["talk_secs"].as_f64().unwrap() >= 1.4, "{rec}");
        // 1001 stays registered but took the last call: longest-idle picks 1002 next.
        drop(phone);
    }
}

/// tshark on loopback, writing what passes `filter` to `file`; stopped
/// (and the file complete) when dropped.
struct Capture(Child);

impl Capture {
    /// Start, and return once a probe connection to `port` is in `file`
    /// (tshark's "Capturing on" comes before packets are really kept).
    fn start(file: &std::path::Path, filter: &str, port: u16) -> Self {
        let child = Command::new("tshark")
            .args(["-i", "lo", "-f", filter, "-w"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tshark (`make test-deps` installs it)");
        let mut capture = Self(child);
        // tshark says "Capturing on 'Loopback" once packets are being kept.
        let mut err = BufReader::new(capture.0.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "tshark ended before capturing"
            );
            if line.contains("Capturing on") {
                break;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        let empty = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            drop(std::net::TcpStream::connect(("127.0.0.1", port)));
            std::thread::sleep(Duration::from_millis(200));
            if std::fs::metadata(file).map(|m| m.len()).unwrap_or(0) > empty {
                return capture;
            }
            assert!(Instant::now() < until, "tshark captured nothing in 15 s");
        }
    }

    /// SIGINT: tshark writes out what it holds and exits.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A center with SIP over TLS too (its certificate signed by a CA made
/// here, returned for the phones to trust), the `pstn` trunk at 127.0.0.1
/// (`pstn` and what follows: more keys of that trunk, or more trunks) and
/// `agent_1001`: more keys of agent 1001.
fn tls_center(dir: &std::path::Path, pstn: &str, agent_1001: &str) -> (Server, std::path::PathBuf) {
    let (ca, cert, key) = support::bank_certificate(dir, "sip");
    let s = center_agents(
        dir,
        15,
        "",
        "",
        &format!(
            "tls = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n{pstn}",
            cert.display(),
            key.display()
        ),
        agent_1001,
    );
    (s, ca)
}

/// The call's relay once at least 50 packets crossed it each way (20 s at
/// most; `context` says what the peers logged when it fails).
fn relay_both_ways(s: &Server, context: impl Fn() -> String) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let m = s.admin_json("/admin/media", "t0k");
        if let Some(r) = m["relays"].as_array().and_then(|r| r.first())
            && r["from_agent"].as_u64().unwrap_or(0) >= 50
            && r["from_caller"].as_u64().unwrap_or(0) >= 50
        {
            return r.clone();
        }
        assert!(
            Instant::now() < until,
            "audio both ways: {m}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// baresip registers over TLS (the center's SIP certificate signed by a
/// CA it trusts) and takes a call from a plain UDP trunk; a capture of the
/// TLS port holds TLS records and no SIP in clear.
#[test]
fn baresip_registers_and_answers_over_tls_with_no_sip_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ca) = tls_center(dir.path(), "", "");
    let tls = s.sip_tls.expect("a TLS listener");
    let pcap = dir.path().join("tls.pcap");
    let capture = Capture::start(&pcap, &format!("tcp port {}", tls.port()), tls.port());
    let phone = baresip_trusting(&s, dir.path(), "1001", "tls", Some(&ca));
    assert!(
        caller(&s, &["caller_uac.xml", "-s", "95566", "-d", "1500"]),
        "call to baresip over TLS:\n{}",
        phone.log()
    );
    let r = records(&s, 1);
    assert_eq!(r[0]["disposition"], "answered", "{}\n{}", r[0], phone.log());
    assert_eq!(r[0]["agent"], "1001");
    drop(phone);
    capture.stop();
    let raw = std::fs::read(&pcap).unwrap();
    for clear in [&b"SIP/2.0"[..], b"REGISTER ", b"INVITE ", b"Digest "] {
        assert!(
            !raw.windows(clear.len()).any(|w| w == clear),
            "{} in clear on the TLS port",
            String::from_utf8_lossy(clear)
        );
    }
    let tshark = |filter: &str| {
        let o = Command::new("tshark")
            .args(["-r", pcap.to_str().unwrap(), "-d"])
            .arg(format!("tcp.port=={},tls", tls.port()))
            .args(["-Y", filter])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    assert!(
        tshark("tls.handshake.type == 1") >= 1,
        "a TLS ClientHello in {} bytes of capture",
        raw.len()
    );
    assert!(
        tshark("tls.app_data") >= 6,
        "TLS application data both ways"
    );
    assert_eq!(tshark("sip"), 0, "tshark finds no SIP");

    // Clear SIP sent to the TLS port is a failed handshake, counted; the
    // host goes on serving TLS.
    use std::io::{Read, Write};
    let mut clear = std::net::TcpStream::connect(tls).unwrap();
    clear
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    clear
        .write_all(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP x;branch=z9hG4bK1\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = clear.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"SIP/2.0"), "{answer:?}");
    let until = Instant::now() + Duration::from_secs(10);
    while !s
        .admin_text("/metrics", "t0k")
        .contains("ctihost_bound_hits_total{bound=\"tls-handshake-failed\"}")
    {
        assert!(Instant::now() < until, "the failed handshake is counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = baresip_trusting(&s, dir.path(), "1002", "tls", Some(&ca));
    drop(again);
}

/// The RMS of the 16-bit samples baresip decoded from what it received
/// (its sndfile dump `dump-*-dec.wav` in `home`; the WAV header may not be
/// final: baresip is killed, not asked to stop).
fn rms_decoded(home: &std::path::Path) -> f64 {
    let dump = std::fs::read_dir(home)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"));
    let bytes = dump.map(|d| std::fs::read(d).unwrap()).unwrap_or_default();
    let samples: Vec<f64> = bytes
        .get(44..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
        .collect();
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| s * s).sum::<f64>() / samples.len() as f64).sqrt()
}

/// RTP payloads (hex, after the 12-byte header) of the UDP packets in
/// `pcap` that `filter` selects.
fn rtp_payloads(pcap: &std::path::Path, filter: &str) -> Vec<String> {
    let o = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap(), "-Y", filter])
        .args(["-T", "fields", "-e", "udp.payload"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.len() > 24)
        .map(|l| l[24..].to_owned())
        .collect()
}

/// An agent whose phone must get SRTP (`srtp = "required"`), registered
/// over TLS, takes a call from a plain UDP trunk playing speech: the relay
/// decrypts and re-encrypts between the legs, the phone hears the caller
/// (energy in what it decrypted), the host authenticates every packet the
/// phone sends, and no RTP payload of the caller's crosses the phone's
/// leg in clear.
#[test]
fn an_srtp_phone_over_tls_talks_with_a_plain_trunk_and_no_rtp_crosses_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ca) = tls_center(dir.path(), "", "srtp = \"required\"\n");
    let tls = s.sip_tls.expect("a TLS listener");
    let pcap = dir.path().join("media.pcap");
    let capture = Capture::start(
        &pcap,
        &format!("udp or tcp port {}", tls.port()),
        tls.port(),
    );
    let phone = baresip_with(&s, dir.path(), "1001", "tls", Some(&ca), true);
    let caller = spawn_caller(&s, "caller_pcap.xml", &["-s", "95566", "-d", "6000"]);
    // While the call lasts: the relay's legs as the host sees them.
    let relay = relay_both_ways(&s, || phone.log());
    assert_eq!(relay["caller_srtp"], false, "{relay}");
    assert_eq!(relay["agent_srtp"], true, "{relay}");
    assert_eq!(
        relay["srtp_refused"], 0,
        "every SRTP packet authenticated: {relay}"
    );
    assert!(finished(caller), "the caller's scenario passed");
    let r = records(&s, 1);
    assert_eq!(r[0]["disposition"], "answered", "{}", r[0]);
    assert_eq!(r[0]["agent"], "1001");
    // The host decrypted the phone's tone: the recording's agent channel
    // (right) carries it.
    let call_id = r[0]["call_id"].as_str().unwrap();
    s.recording_closed(call_id, "t0k");
    let wav = s.recording_wav(call_id, "t0k");
    let samples: Vec<i16> = wav.into_samples().collect::<Result<_, _>>().unwrap();
    let right: Vec<f64> = samples.chunks(2).map(|f| f[1] as f64).collect();
    let right_rms = (right.iter().map(|x| x * x).sum::<f64>() / right.len().max(1) as f64).sqrt();
    assert!(
        right_rms > 300.0,
        "the phone's tone, decrypted by the host (RMS {right_rms:.0})"
    );
    let home = phone.home.clone();
    let phone_ports = phone.rtp_ports.clone();
    let phone_log = phone.log();
    drop(phone);
    capture.stop();

    // The phone decrypted the caller's speech.
    let rms = rms_decoded(&home);
    assert!(
        rms > 300.0,
        "the phone heard the caller (RMS {rms:.0})\n{phone_log}"
    );
    // On the wire: what the caller sent the relay is plain RTP; what the
    // relay sent the phone carries none of those payloads, and 10 bytes more
    // (the SRTP tag).
    let caller_port = relay["caller_port"].as_u64().unwrap();
    let agent_port = relay["agent_port"].as_u64().unwrap();
    let plain = rtp_payloads(&pcap, &format!("udp.dstport == {caller_port}"));
    let to_phone = rtp_payloads(
        &pcap,
        &format!(
            "udp.srcport == {agent_port} && udp.dstport >= {} && udp.dstport <= {}",
            phone_ports.start(),
            phone_ports.end()
        ),
    );
    assert!(
        plain.len() >= 100 && to_phone.len() >= 100,
        "{} {}",
        plain.len(),
        to_phone.len()
    );
    let plain_set: std::collections::HashSet<&str> =
        plain.iter().map(|p| &p[..p.len().min(320)]).collect();
    let in_clear = to_phone
        .iter()
        .filter(|p| plain_set.contains(&p[..p.len().min(320)]))
        .count();
    assert_eq!(in_clear, 0, "caller payloads in clear on the phone's leg");
    let plain_lengths: std::collections::BTreeSet<usize> =
        plain.iter().map(|p| p.len() / 2).collect();
    let phone_lengths: std::collections::BTreeSet<usize> =
        to_phone.iter().map(|p| p.len() / 2).collect();
    assert!(
        phone_lengths
            .iter()
            .all(|n| plain_lengths.contains(&(n - 10))),
        "SRTP packets: the caller's payloads and an 80-bit tag: {phone_lengths:?} vs {plain_lengths:?}"
    );
}

/// A phone that takes SRTP only (baresip `mediaenc=srtp-mand`), offered
/// plain RTP because its agent's `srtp` is "off", answers 488; a trunk that
/// requires SRTP gets 488 for a plain offer.
#[test]
fn plain_offers_to_srtp_only_peers_get_488() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ca) = tls_center(
        dir.path(),
        "[[trunks]]\nname = \"secure\"\naddresses = [\"127.0.0.2\"]\nsrtp = \"required\"\n",
        "",
    );
    let strict = baresip_with(&s, dir.path(), "1002", "tls", Some(&ca), true);
    let caller = spawn_caller(&s, "caller_uac.xml", &["-s", "95566", "-d", "1000"]);
    let until = Instant::now() + Duration::from_secs(15);
    let kinds = loop {
        let log: Vec<String> = s
            .admin_json("/admin/queue-log", "t0k")
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or("").to_owned())
            .collect();
        if log.iter().any(|k| k == "offer-failed") {
            break log;
        }
        assert!(
            Instant::now() < until,
            "the strict phone refused the plain offer: {log:?}\n{}",
            strict.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(kinds.contains(&"offered".to_owned()), "{kinds:?}");
    let metrics = s.admin_text("/metrics", "t0k");
    assert!(
        metrics.contains("ctihost_sip_responses_total{direction=\"in\",status=\"488\"}"),
        "the phone's 488 is counted"
    );
    drop(caller);
    drop(strict);

    // The trunk that requires SRTP, calling from 127.0.0.2 with a plain offer.
    let out = sipp_cmd(
        "caller_uac.xml",
        s.sip_udp.unwrap(),
        free_port(),
        &["-s", "95566", "-i", "127.0.0.2"],
    )
    .output()
    .unwrap();
    assert!(
        !out.status.success(),
        "the plain call from the SRTP trunk fails"
    );
    let metrics = s.admin_text("/metrics", "t0k");
    assert!(
        metrics.contains("ctihost_sip_responses_total{direction=\"out\",status=\"488\"} 1"),
        "one 488 to the trunk"
    );
}

/// baresip as a trunk's caller over TLS from the trunk's address, offering
/// SRTP only, dials an agent whose phone (baresip, TLS, SRTP only) must get
/// SRTP: both legs encrypted with their own keys, each end hears the other
/// (energy in what each decrypted: the caller's 880 Hz at the phone, the
/// phone's 440 Hz at the caller), the relay authenticates every packet, no
/// payload crosses from one leg to the other unchanged, and the TLS port
/// carries no SIP in clear. The trunk requires TLS: its INVITE over UDP is
/// refused.
#[test]
fn a_tls_trunk_offering_srtp_reaches_an_srtp_phone_with_nothing_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ca) = tls_center(dir.path(), "require_tls = true\n", "srtp = \"required\"\n");
    let tls = s.sip_tls.expect("a TLS listener");
    // Over UDP the trunk's INVITE is refused: it must come over TLS.
    assert!(
        !caller(&s, &["caller_uac.xml", "-s", "95566", "-d", "500"]),
        "a UDP call from a TLS-only trunk fails"
    );
    let metrics = s.admin_text("/metrics", "t0k");
    assert!(
        metrics.contains("ctihost_sip_responses_total{direction=\"out\",status=\"403\"} 1"),
        "one 403 for it"
    );
    let pcap = dir.path().join("call.pcap");
    let capture = Capture::start(
        &pcap,
        &format!("udp or tcp port {}", tls.port()),
        tls.port(),
    );
    let phone = baresip_with(&s, dir.path(), "1001", "tls", Some(&ca), true);

    // The trunk's caller: dials 95566 over TLS, SRTP only, hangs up (BYE)
    // when it quits after 8 s.
    let mut trunk = dialer(&s, dir.path(), "trunk", &ca, None, true);
    let (home, log) = (trunk.home.clone(), trunk.log.clone());
    let relay = relay_both_ways(&s, || {
        format!(
            "trunk: {}\nphone: {}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            phone.log()
        )
    });
    assert_eq!(relay["caller_srtp"], true, "{relay}");
    assert_eq!(relay["agent_srtp"], true, "{relay}");
    assert_eq!(relay["srtp_refused"], 0, "{relay}");
    let r = records(&s, 1);
    let _ = trunk.child.wait();
    assert_eq!(r[0]["disposition"], "answered", "{}", r[0]);
    assert_eq!(r[0]["trunk"], "pstn");
    let phone_home = phone.home.clone();
    drop(phone);
    capture.stop();

    for (who, home) in [("the phone", &phone_home), ("the caller", &home)] {
        let rms = rms_decoded(home);
        assert!(rms > 300.0, "{who} heard the other end (RMS {rms:.0})");
    }
    let caller_port = relay["caller_port"].as_u64().unwrap();
    let agent_port = relay["agent_port"].as_u64().unwrap();
    let from_caller = rtp_payloads(&pcap, &format!("udp.dstport == {caller_port}"));
    let to_phone = rtp_payloads(&pcap, &format!("udp.srcport == {agent_port}"));
    let from_phone = rtp_payloads(&pcap, &format!("udp.dstport == {agent_port}"));
    let to_caller = rtp_payloads(&pcap, &format!("udp.srcport == {caller_port}"));
    for (a, b, what) in [
        (&from_caller, &to_phone, "caller to phone"),
        (&from_phone, &to_caller, "phone to caller"),
    ] {
        assert!(
            a.len() >= 50 && b.len() >= 50,
            "{what}: {} {}",
            a.len(),
            b.len()
        );
        let seen: std::collections::HashSet<&String> = a.iter().collect();
        assert!(
            b.iter().all(|p| !seen.contains(p)),
            "{what}: a packet crossed the relay unchanged"
        );
    }
    let o = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap(), "-Y"])
        .arg(format!("tcp.port == {} && sip", tls.port()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        0,
        "no SIP in clear on the TLS port"
    );
}

/// baresip as a trunk's caller over TLS, killed when dropped.
struct Dialer {
    child: Child,
    home: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Drop for Dialer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// baresip dialing 95566 at the host's TLS address at once, with no
/// registration, sending an 880 Hz tone, quitting (with a BYE) after 8 s;
/// trusting `ca`, presenting `client` (a PEM of a certificate and its key)
/// when asked, offering SRTP only with `srtp`. What it decodes is dumped
/// into its directory (`dump-*-dec.wav`).
fn dialer(
    s: &Server,
    dir: &std::path::Path,
    name: &str,
    ca: &std::path::Path,
    client: Option<&std::path::Path>,
    srtp: bool,
) -> Dialer {
    let home = dir.join(format!("baresip-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    // baresip listens on the port (UDP, TCP) and the next one (TLS).
    let port = loop {
        let p = free_port();
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if p < u16::MAX && free(p) && free(p + 1) && UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            break p;
        }
    };
    let rtp = 30_000 + (port % 1_000) * 20;
    std::fs::write(
        home.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\nsip_cafile {ca}\n{cert}\
             audio_player aufile,/dev/null\naudio_source ausine,880\nausrc_srate 48000\nausrc_channels 2\n\
             auplay_srate 48000\naudio_alert aufile,/dev/null\nrtp_ports {rtp}-{}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule ausine.so\nmodule aufile.so\n\
             module menu.so\nmodule srtp.so\nmodule sndfile.so\nsnd_path {home}\nmodule_app account.so\n",
            rtp + 19,
            ca = ca.display(),
            cert = client.map_or(String::new(), |c| format!("sip_certificate {}\n", c.display())),
            home = home.display(),
        ),
    )
    .unwrap();
    std::fs::write(
        home.join("accounts"),
        format!(
            "<sip:+8613800000001@127.0.0.1;transport=tls>;regint=0{}\n",
            if srtp { ";mediaenc=srtp-mand" } else { "" }
        ),
    )
    .unwrap();
    let dial = format!("/dial sip:95566@{};transport=tls", s.sip_tls.unwrap());
    let (child, log) = spawn_baresip(&home, &["-t", "8", "-e", &dial]);
    Dialer { child, home, log }
}

/// A trunk known only by its TLS client certificate (mutual TLS: a
/// certificate of the carrier's CA, valid for `carrier.example`) places a
/// call from an address that is no trunk's; the same caller without the
/// certificate, or with one for another name, is no trunk (403).
#[test]
fn a_trunk_is_known_by_its_tls_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::bank_certificate(dir.path(), "sip");
    let carrier = support::client_certificate(dir.path(), "carrier", "carrier.example");
    let stranger = support::client_certificate(dir.path(), "stranger", "stranger.example");
    // Both client certificates are signed by one CA file the host trusts.
    let clients = dir.path().join("clients-ca.pem");
    std::fs::write(
        &clients,
        [carrier.0.as_path(), stranger.0.as_path()]
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect::<String>(),
    )
    .unwrap();
    let s = center_agents(
        dir.path(),
        15,
        "",
        "",
        &format!(
            "tls = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n\
             [[trunks]]\nname = \"carrier\"\ntls_client_name = \"carrier.example\"\n",
            cert.display(),
            key.display(),
            clients.display()
        ),
        "",
    );
    let agent = phone(&s, "1001", "agent_answer.xml");
    let call = dialer(&s, dir.path(), "carrier", &ca, Some(&carrier.1), false);
    let r = records(&s, 1);
    assert_eq!(
        r.len(),
        1,
        "{}",
        std::fs::read_to_string(&call.log).unwrap_or_default()
    );
    assert_eq!(r[0]["trunk"], "carrier", "{}", r[0]);
    assert_eq!(r[0]["disposition"], "answered", "{}", r[0]);
    drop(call);
    drop(agent);
    for (name, client) in [
        ("anonymous", None),
        ("stranger", Some(stranger.1.as_path())),
    ] {
        let before = s.admin_text("/metrics", "t0k");
        let refused = |m: &str| {
            m.lines()
                .find_map(|l| {
                    l.strip_prefix("ctihost_sip_responses_total{direction=\"out\",status=\"403\"} ")
                })
                .map_or(0, |v| v.trim().parse::<u64>().unwrap())
        };
        let call = dialer(&s, dir.path(), name, &ca, client, false);
        let until = Instant::now() + Duration::from_secs(10);
        while refused(&s.admin_text("/metrics", "t0k")) <= refused(&before) {
            assert!(
                Instant::now() < until,
                "{name}: refused as no trunk\n{}",
                std::fs::read_to_string(&call.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(records(&s, 1).len(), 1, "{name}: no call");
    }
}

/// Parse Prometheus text format strictly enough to catch a malformed page:
/// (metric name with labels) -> value.
fn prometheus(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut w = rest.split_whitespace();
            let kind = w.next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "bad comment: {line}");
            if kind == "TYPE" {
                w.next().unwrap();
                let t = w.next().unwrap();
                assert!(
                    ["counter", "gauge", "summary", "histogram", "untyped"].contains(&t),
                    "{line}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels: {line}");
            for pair in series[name_end + 1..series.len() - 1].split("\",") {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                assert!(!k.is_empty() && !v.contains('\n'), "{line}");
            }
        }
        out.insert(
            series.to_owned(),
            value.parse::<f64>().unwrap_or_else(|_| panic!("{line}")),
        );
    }
    out
}

/// `/metrics` parses as Prometheus text and its counters move with calls.
#[test]
fn metrics_move_with_calls() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), 15);
    assert!(
        s.admin_text("/metrics", "wrong").contains("error"),
        "the admin token is required"
    );
    let before = prometheus(&s.admin_text("/metrics", "t0k"));
    let answered = "ctihost_calls_total{disposition=\"answered\"}";
    assert_eq!(before.get(answered), None);
    let agent = phone(&s, "1001", "agent_answer.xml");
    assert!(caller(&s, &["caller_uac.xml", "-s", "95566", "-d", "200"]));
    assert!(finished(agent));
    records(&s, 1);
    let after = prometheus(&s.admin_text("/metrics", "t0k"));
    assert_eq!(after.get(answered), Some(&1.0), "{after:?}");
    let get = |k: &str| after.get(k).copied().unwrap_or(0.0);
    assert!(get("ctihost_sip_requests_total{direction=\"in\",method=\"INVITE\"}") >= 1.0);
    assert!(get("ctihost_sip_requests_total{direction=\"in\",method=\"REGISTER\"}") >= 2.0);
    assert!(get("ctihost_sip_responses_total{direction=\"out\",status=\"200\"}") >= 1.0);
    assert!(get("ctihost_sip_requests_total{direction=\"out\",method=\"INVITE\"}") >= 1.0);
    assert_eq!(get("ctihost_queue_waiting{queue=\"general\"}"), 0.0);
    assert_eq!(
        get("ctihost_agents{state=\"ready\"}"),
        1.0,
        "1001 back to ready"
    );
    assert_eq!(
        get("ctihost_agents{state=\"logged-out\"}"),
        1.0,
        "1002 never registered"
    );
    let invocations: f64 = after
        .iter()
        .filter(|(k, _)| k.starts_with("ctihost_plugin_invocations_total{plugin=\"skills-router\""))
        .map(|(_, v)| v)
        .sum();
    let invocations_before: f64 = before
        .iter()
        .filter(|(k, _)| k.starts_with("ctihost_plugin_invocations_total{plugin=\"skills-router\""))
        .map(|(_, v)| v)
        .sum();
    assert!(
        invocations > invocations_before,
        "the router was invoked for the call"
    );
}

/// `kill -9` with calls in progress: after the restart every record of a
/// finished call is still there, and every call that was live at the kill
/// has a record too, disposition `interrupted`, so no call offered to the
/// center goes unaccounted for.
#[test]
fn calls_live_at_a_kill_are_recorded_as_interrupted_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = center(dir.path(), 15);
    let phones: Vec<_> = ["1001", "1002"]
        .iter()
        .map(|id| {
            support::sipp::agent_phone(
                s.sip_udp.unwrap(),
                id,
                &format!("pw-{id}"),
                120,
                free_port(),
            )
        })
        .collect();
    s.wait_registered("t0k", &["1001", "1002"]);
    // Four calls a second, each talking 1.5 s: two agents, so some calls
    // are talking and some waiting at any moment.
    let mut caller = sipp_cmd(
        "caller_uac.xml",
        s.sip_udp.unwrap(),
        free_port(),
        &["-s", "95566", "-d", "1500", "-r", "4", "-m", "100"],
    )
    .spawn()
    .unwrap();
    let before = records(&s, 4);
    assert!(before.len() >= 4, "calls finished before the kill");
    let finished = s
        .admin_json("/admin/cdr?limit=5000", "t0k")
        .as_array()
        .cloned()
        .unwrap();
    let killed_at = ctihost::clock::now_ms();
    Command::new("kill")
        .args(["-KILL", &s.pid().to_string()])
        .status()
        .unwrap();
    let _ = caller.kill();
    let _ = caller.wait();
    drop(phones);
    drop(s);

    let s = center(dir.path(), 15);
    let after = s
        .admin_json("/admin/cdr?limit=5000", "t0k")
        .as_array()
        .cloned()
        .unwrap();
    let ids = |v: &[serde_json::Value]| -> std::collections::BTreeSet<String> {
        v.iter()
            .map(|r| r["call_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        ids(&finished).is_subset(&ids(&after)),
        "every finished call kept its record"
    );
    let interrupted: Vec<_> = after
        .iter()
        .filter(|r| r["disposition"] == "interrupted")
        .collect();
    assert!(
        !interrupted.is_empty(),
        "calls were live at the kill: {after:?}"
    );
    for r in &interrupted {
        assert!(
            !ids(&finished).contains(r["call_id"].as_str().unwrap()),
            "{r}"
        );
        assert!(r["arrived_ms"].as_u64().unwrap() <= killed_at, "{r}");
        assert_eq!(r["caller"], "+8613800000001", "{r}");
        assert!(r["cause"].as_str().unwrap().contains("host stopped"), "{r}");
    }
    // Some of them had reached an agent: the record says who.
    assert!(
        interrupted
            .iter()
            .any(|r| r["agent"].is_string() && r["talk_secs"].as_f64().unwrap() >= 0.0),
        "{interrupted:?}"
    );
    // The recordings being written at the kill are indexed, interrupted,
    // their WAV repaired to the audio that reached the disk, the hash of
    // the repaired file in the index.
    let recs = s.admin_json("/admin/recordings", "t0k");
    let recs = recs.as_array().unwrap();
    assert!(
        recs.iter().all(|e| e["state"] != "recording"),
        "none is left half-written: {recs:?}"
    );
    let cut: Vec<_> = recs
        .iter()
        .filter(|e| e["state"] == "interrupted")
        .collect();
    assert!(
        !cut.is_empty(),
        "a connected call was recording at the kill: {recs:?}"
    );
    for e in &cut {
        assert!(
            interrupted.iter().any(|r| r["call_id"] == e["call_id"]),
            "an interrupted recording belongs to an interrupted call: {e}"
        );
        let file = std::path::PathBuf::from(e["file"].as_str().unwrap());
        let file = if file.is_absolute() {
            file
        } else {
            dir.path().join(file)
        };
        assert!(file.exists(), "{e}");
        let call_id = e["call_id"].as_str().unwrap();
        let audio = s.admin_bytes(&format!("/admin/recordings/{call_id}/audio"), "t0k");
        assert!(audio.starts_with(b"RIFF"), "served (its hash matches): {e}");
        let wav = hound::WavReader::new(std::io::Cursor::new(audio)).unwrap();
        assert_eq!(wav.spec().channels, 2, "{e}");
    }
    // Written once: a second restart adds nothing.
    drop(s);
    let s = center(dir.path(), 15);
    let again = s
        .admin_json("/admin/cdr?limit=5000", "t0k")
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(again.len(), after.len());
}
