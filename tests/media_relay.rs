//! The RTP relay through the real binary: a SIPp caller plays the G.711 A-law
//! recording that ships with SIPp, the agent's audio is a UDP socket of this
//! test (named in the agent phone's SDP) that counts what arrives and sends it
//! back; the relay's own counters and port pool are read from the admin API.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::{Server, free_port};
use support::sipp::{finished, phone_with, sipp_cmd, spawn_caller, target};
use support::{Crm, desk};

fn media(s: &Server) -> Value {
    s.admin_json("/admin/media", "t0k")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_audio_reaches_the_agent_and_back_through_the_relay() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let agent_audio = UdpSocket::bind("127.0.0.1:0").unwrap();
    agent_audio
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let rtp = agent_audio.local_addr().unwrap().port().to_string();
    let phone = phone_with(&s, "1001", "agent_answer_at.xml", &["-set", "rtp", &rtp]);
    let caller = spawn_caller(&s, "caller_pcap.xml", &["-s", "95566", "-d", "9000"]);

    // The agent's side: every packet counted on the wire, and sent back (the
    // relay latches onto this socket as the agent's address).
    let (mut got, mut pcma, mut relay_port, mut echoed) = (0u32, 0u32, None, 0u32);
    let mut buf = [0u8; 2048];
    let until = Instant::now() + Duration::from_secs(15);
    let mut quiet_since = Instant::now();
    while Instant::now() < until {
        match agent_audio.recv_from(&mut buf) {
            Ok((n, from)) => {
                quiet_since = Instant::now();
                got += 1;
                // RTP version 2, payload type 8 (PCMA) as the pcap has it.
                if n > 12 && buf[0] >> 6 == 2 && buf[1] & 0x7f == 8 {
                    pcma += 1;
                }
                relay_port.get_or_insert(from);
                if agent_audio.send_to(&buf[..n], from).is_ok() {
                    echoed += 1;
                }
            }
            Err(_) if got > 0 && quiet_since.elapsed() > Duration::from_secs(1) => break,
            Err(_) => {}
        }
    }
    // The relay's view while the call lasts: both sides latched, counts equal
    // to what crossed this socket.
    let status = media(&s);
    let relays = status["relays"].as_array().unwrap().clone();
    assert_eq!(relays.len(), 1, "{status}");
    let r = &relays[0];
    assert_eq!(
        r["agent_port"].as_u64(),
        relay_port.map(|a| a.port() as u64),
        "{r}"
    );
    assert!(got >= 200, "the pcap's 236 packets arrive (got {got})");
    assert_eq!(pcma, got, "every packet is RTP/PCMA");
    assert_eq!(r["from_caller"].as_u64(), Some(got as u64), "{r}");
    assert_eq!(r["from_agent"].as_u64(), Some(echoed as u64), "{r}");
    assert!(
        r["caller_peer"].is_string() && r["agent_peer"].is_string(),
        "{r}"
    );

    let (caller_ok, phone_ok) =
        tokio::task::spawn_blocking(move || (finished(caller), finished(phone)))
            .await
            .unwrap();
    assert!(caller_ok && phone_ok);
    let rec = &s.records(1)[0];
    assert_eq!(rec["disposition"], "answered", "{rec}");
    let after = media(&s);
    assert_eq!(after["ports_in_use"], 0, "{after}");
    assert_eq!(after["relays"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_sends_no_rtp_is_hung_up_after_the_timeout() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center_with(dir.path(), crm.addr, "", "[media]\nrtp_timeout_secs = 2\n");
    let phone = phone_with(&s, "1001", "agent_answer.xml", &[]);
    // This caller never sends RTP and waits for the host's BYE.
    let caller = spawn_caller(&s, "caller_wait_bye.xml", &["-s", "95566"]);
    let started = Instant::now();
    let (caller_ok, phone_ok) =
        tokio::task::spawn_blocking(move || (finished(caller), finished(phone)))
            .await
            .unwrap();
    assert!(caller_ok, "the caller got the host's BYE");
    assert!(phone_ok, "the agent's phone got the host's BYE");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let rec = &s.records(1)[0];
    assert_eq!(rec["disposition"], "failed", "{rec}");
    assert!(
        rec["cause"].as_str().unwrap().contains("RTP timeout"),
        "{rec}"
    );
    assert_eq!(media(&s)["ports_in_use"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_is_released_after_a_thousand_calls() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    // 40 even ports = 20 relays at most: a leak would run the pool dry.
    let s = desk::center_with(
        dir.path(),
        crm.addr,
        "",
        "[media]\nrtp_ports = [30000, 30079]\n",
    );
    assert_eq!(media(&s)["ports_total"], 40);
    let phone = phone_with(&s, "1001", "agent_answer.xml", &["-m", "1000"]);
    let ok = tokio::task::spawn_blocking({
        let target = target(&s, &[]);
        move || {
            sipp_cmd(
                "caller_uac.xml",
                target,
                free_port(),
                &[
                    "-s", "95566", "-d", "0", "-m", "1000", "-l", "1", "-r", "200",
                ],
            )
            .status()
            .unwrap()
            .success()
        }
    })
    .await
    .unwrap();
    assert!(ok, "1,000 calls completed");
    let phone_ok = tokio::task::spawn_blocking(move || finished(phone))
        .await
        .unwrap();
    assert!(phone_ok);
    let recs = s.records(1000);
    assert_eq!(recs.len(), 1000);
    assert!(recs.iter().all(|r| r["disposition"] == "answered"));
    let m = media(&s);
    assert_eq!(m["ports_in_use"], 0, "{m}");
}
