//! SRTP's cost in the relay: `cargo bench -p ctihost --bench srtp`.
//!
//! The relay's per-packet work on a call whose two legs are both SRTP is
//! the plain relay's (parse, forward) plus one decryption (the sending
//! leg's key) and one encryption (the receiving leg's key). This measures
//! that added work in process, on the relay's own code
//! (`ctihost::media::srtp::LegCrypto`), against the plain path's copy in
//! the same run: 160-byte G.711 packets, 50 a second each way per call.
//! Medians of `RUNS` runs of `PACKETS` packets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use ctihost::media::srtp::{LegCrypto, SdesKey, Suite};

const PACKETS: usize = 200_000;
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
        // The plain relay: the packet as received is what is sent on.
        let t = Instant::now();
        let mut bytes = 0usize;
        for p in &plain {
            let out = std::hint::black_box(std::borrow::Cow::Borrowed(&p[..]));
            bytes += out.len();
        }
        std::hint::black_box(bytes);
        plain_ns.push(t.elapsed().as_nanos() as f64 / PACKETS as f64);

        // What the caller's phone sends (encrypted outside the timing),
        // then the relay's work: decrypt with the caller's key, encrypt
        // with the host's key towards the agent.
        let mut caller_phone = LegCrypto::new(&host_caller_key, &caller_key).unwrap();
        let sent: Vec<Vec<u8>> = plain
            .iter()
            .map(|p| caller_phone.protect(p).unwrap())
            .collect();
        let mut caller_leg = LegCrypto::new(&caller_key, &host_caller_key).unwrap();
        let mut agent_leg = LegCrypto::new(&agent_key, &host_agent_key).unwrap();
        let t = Instant::now();
        let mut bytes = 0usize;
        for p in &sent {
            let clear = caller_leg.unprotect(p).unwrap();
            let out = agent_leg.protect(&clear).unwrap();
            bytes += out.len();
        }
        std::hint::black_box(bytes);
        srtp_ns.push(t.elapsed().as_nanos() as f64 / PACKETS as f64);
    }
    let (plain, srtp) = (median(plain_ns), median(srtp_ns));
    // A call: 50 packets a second each way.
    let per_call_ms = |ns: f64| ns * 100.0 / 1e6;
    println!();
    println!(
        "SRTP in the relay, 160-byte G.711 packets, median of {RUNS} runs of {PACKETS} packets:"
    );
    println!(
        "  plain forward (baseline)         {plain:>8.1} ns/packet  {:>7.4} ms CPU per call-second",
        per_call_ms(plain)
    );
    println!(
        "  SRTP both legs (decrypt+encrypt) {srtp:>8.1} ns/packet  {:>7.4} ms CPU per call-second  (+{:.1} ns, x{:.0} the plain path's copy)",
        per_call_ms(srtp),
        srtp - plain,
        srtp / plain.max(0.1)
    );
}
