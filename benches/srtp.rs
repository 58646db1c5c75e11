//! SRTP's cost in the relay: `cargo bench -p ctihost --bench srtp`.
//!
//! The relay's per-packet work on a call whose two legs are both SRTP is
//! the plain relay's (receive from one leg's socket, send out of the
//! other's) plus one decryption (the sending leg's key) and one encryption
//! (the receiving leg's key), with the relay's own code
//! (`ctihost::media::srtp::LegCrypto`). Both are timed in the same run over
//! loopback UDP, only the relay's part of each packet's trip: 160-byte
//! G.711 packets, 50 a second each way make a call. Medians of `RUNS` runs
//! of `PACKETS` packets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use ctihost::media::srtp::{LegCrypto, SdesKey, Suite};

const PACKETS: usize = 50_000;
const RUNS: usize = 7;

fn packets() -> Vec<Vec<u8>> {
    let mut s = ctihost::media::rtp::Stream::new();
    let payload: Vec<u8> = (0..160u32).map(|i| (i * 7 % 251) as u8).collect();
    (0..PACKETS)
        .map(|_| {
            let mut out = Vec::new();
            s.packet(8, &payload, &mut out);
            out
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The relay's work on one packet, as its task does it: receive from one
/// leg's socket, (decrypt, encrypt), send out of the other's. Nanoseconds
/// per packet spent in that work alone (the harness's own send and
/// receive are outside the timing).
fn relay_ns(input: &[Vec<u8>], mut crypto: Option<(&mut LegCrypto, &mut LegCrypto)>) -> f64 {
    use std::net::UdpSocket;
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let caller_side = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent_side = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to_relay = caller_side.local_addr().unwrap();
    let to_agent = agent.local_addr().unwrap();
    let mut buf = [0u8; 2048];
    let mut sink = [0u8; 2048];
    let mut spent = std::time::Duration::ZERO;
    for p in input {
        caller.send_to(p, to_relay).unwrap();
        let t = Instant::now();
        let (n, _) = caller_side.recv_from(&mut buf).unwrap();
        match &mut crypto {
            None => {
                agent_side.send_to(&buf[..n], to_agent).unwrap();
            }
            Some((from, to)) => {
                let clear = from.unprotect(&buf[..n]).unwrap();
                let out = to.protect(&clear).unwrap();
                agent_side.send_to(&out, to_agent).unwrap();
            }
        }
        spent += t.elapsed();
        agent.recv_from(&mut sink).unwrap();
    }
    spent.as_nanos() as f64 / input.len() as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let plain = packets();
    let key = |tag| SdesKey::generate(tag, Suite::AesCm128HmacSha1_80).unwrap();
    let (caller_key, host_caller_key, agent_key, host_agent_key) = (key(1), key(1), key(1), key(1));
    let mut plain_ns = Vec::new();
    let mut srtp_ns = Vec::new();
    for _ in 0..RUNS {
        plain_ns.push(relay_ns(&plain, None));
        // What the caller's phone sends, encrypted before the timing.
        let mut caller_phone = LegCrypto::new(&host_caller_key, &caller_key).unwrap();
        let sent: Vec<Vec<u8>> = plain
            .iter()
            .map(|p| caller_phone.protect(p).unwrap())
            .collect();
        let mut caller_leg = LegCrypto::new(&caller_key, &host_caller_key).unwrap();
        let mut agent_leg = LegCrypto::new(&agent_key, &host_agent_key).unwrap();
        srtp_ns.push(relay_ns(&sent, Some((&mut caller_leg, &mut agent_leg))));
    }
    let (plain, srtp) = (median(plain_ns), median(srtp_ns));
    // A call: 50 packets a second each way.
    let per_call_ms = |ns: f64| ns * 100.0 / 1e6;
    println!();
    println!(
        "The relay's work per packet (receive, forward), 160-byte G.711, loopback UDP, median of {RUNS} runs of {PACKETS}:"
    );
    println!(
        "  plain both legs (baseline)      {plain:>8.0} ns/packet  {:>6.3} ms CPU per call-second",
        per_call_ms(plain)
    );
    println!(
        "  SRTP both legs (decrypt, encrypt) {srtp:>6.0} ns/packet  {:>6.3} ms CPU per call-second  (x{:.2} the plain relay's)",
        per_call_ms(srtp),
        srtp / plain
    );
}
