//! RFC 4475, the SIP torture test messages, against the real binary over
//! UDP: every one of the RFC's 49 messages (in `tests/rfc4475/`, one file
//! each, CRLF as on the wire) gets the answer the RFC names for an element
//! that is a user agent server (the host is a B2BUA and registrar), and the
//! host goes on answering.
//!
//! Where the RFC leaves a choice ("acceptable to reject ... a liberal
//! element may ignore"), the host's choice is the one written here. The
//! binary second part of `mpart01` is not the RFC's DER blob (which cannot
//! be transcribed from the text) but bytes of the same nature: NULs, CR,
//! LF and every octet value, framed by its Content-Length.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use support::{Crm, desk};

/// What the RFC asks of a UAS for one message.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This final answer (a provisional one before it is allowed).
    Final(u16),
    /// Taken as a call: the first answer is 100 Trying.
    Call,
    /// No answer (responses matching no transaction, noise).
    Nothing,
}

use Expect::*;

const CASES: &[(&str, Expect, &str)] = &[
    // 3.1.1 valid messages
    (
        "wsinv",
        Final(481),
        "short tortuous INVITE (its To has a tag: no such dialog)",
    ),
    (
        "intmeth",
        Final(501),
        "unknown method of unusual characters",
    ),
    ("esc01", Call, "% escapes in URIs"),
    (
        "escnull",
        Final(401),
        "escaped NULs: a REGISTER, challenged",
    ),
    ("esc02", Final(501), "RE%47IST%45R is not REGISTER"),
    ("lwsdisp", Final(200), "no LWS between display name and <"),
    (
        "longreq",
        Call,
        "long values, 34 Vias, a top Via without branch",
    ),
    (
        "dblreq",
        Final(401),
        "REGISTER answered, the INVITE after it ignored",
    ),
    ("semiuri", Final(200), "semicolons in the user part"),
    ("transports", Final(200), "unknown transports in Via"),
    ("mpart01", Final(501), "multipart MESSAGE with binary body"),
    (
        "unreason",
        Nothing,
        "response with an unusual reason phrase",
    ),
    ("noreason", Nothing, "response without a reason phrase"),
    // 3.1.2 invalid messages
    (
        "badinv01",
        Final(400),
        "extraneous separators in Via and Contact",
    ),
    ("clerr", Final(400), "Content-Length beyond the datagram"),
    ("ncl", Final(400), "negative Content-Length"),
    ("scalar02", Final(400), "CSeq beyond 2**32-1"),
    ("scalarlg", Nothing, "response with overlarge scalars"),
    ("quotbal", Final(400), "unterminated quoted string"),
    ("ltgtruri", Final(400), "Request-URI in <>"),
    ("lwsruri", Final(400), "LWS inside the Request-URI"),
    ("lwsstart", Call, "extra SP in the request line (ignored)"),
    (
        "trws",
        Final(200),
        "SP at the end of the request line (ignored)",
    ),
    ("escruri", Final(400), "escaped headers in the Request-URI"),
    ("baddate", Call, "non-GMT Date (not used, ignored)"),
    ("regbadct", Final(400), "Contact with headers but no <>"),
    ("badaspec", Final(400), "spaces inside <> of To"),
    ("baddn", Final(400), "unquoted display names with commas"),
    ("badvers", Final(505), "SIP/7.0"),
    ("mismatch01", Final(400), "CSeq method differs"),
    ("mismatch02", Final(501), "unknown method, CSeq differs"),
    ("bigcode", Nothing, "response code beyond 699"),
    // 3.2 transaction layer
    ("badbranch", Final(200), "branch of only the magic cookie"),
    // 3.3 application layer
    (
        "insuf",
        Final(400),
        "missing To, From, Call-ID, Max-Forwards",
    ),
    ("unkscm", Final(416), "unknown Request-URI scheme"),
    (
        "novelsc",
        Final(416),
        "Request-URI scheme never served here",
    ),
    ("unksm2", Final(400), "REGISTER whose To is no SIP URI"),
    ("bext01", Final(420), "Require of unknown extensions"),
    (
        "inv2543",
        Call,
        "RFC 2543 INVITE: no branch, tag or Max-Forwards",
    ),
    ("bcast", Nothing, "response with a broadcast Via"),
    ("regaut01", Final(401), "unknown authorization scheme"),
    (
        "cparam01",
        Final(401),
        "Contact header parameter without value",
    ),
    (
        "cparam02",
        Final(401),
        "Contact URI parameter without value",
    ),
    (
        "regescrt",
        Final(401),
        "escaped headers in a bracketed Contact",
    ),
    ("sdp01", Final(406), "Accept without SDP"),
    ("invut", Final(415), "body of an unknown type"),
    ("mcl01", Final(400), "two Content-Lengths"),
    (
        "multi01",
        Final(400),
        "two CSeq, Call-ID, From, To, Max-Forwards",
    ),
    ("zeromf", Final(200), "Max-Forwards 0 at the endpoint"),
];

fn message(name: &str) -> Vec<u8> {
    std::fs::read(
        support::root()
            .join("tests/rfc4475")
            .join(format!("{name}.sip")),
    )
    .unwrap()
}

fn probe(host: SocketAddr, me: SocketAddr, id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:probe@{host} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{id}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag={id}\r\nTo: <sip:probe@{host}>\r\nCall-ID: {id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Send `bytes`, then an OPTIONS probe from the same socket; everything
/// the host sends back before the probe's answer (the host handles one
/// socket's datagrams in order) is the message's answer.
fn answers(host: SocketAddr, bytes: &[u8], probe_id: &str) -> Vec<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = sock.local_addr().unwrap();
    sock.send_to(bytes, host).unwrap();
    sock.send_to(&probe(host, me, probe_id), host).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no answer to the probe after {got:?}: {e}"));
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let is_probe = text
            .lines()
            .any(|l| l.strip_prefix("Call-ID:").map(str::trim) == Some(probe_id));
        if is_probe {
            assert!(text.starts_with("SIP/2.0 200"), "probe: {text}");
            return got;
        }
        got.push(text);
    }
}

fn code(resp: &str) -> u16 {
    resp.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rfc_4475_message_gets_the_answer_the_rfc_names() {
    assert_eq!(CASES.len(), 49, "RFC 4475 has 49 messages");
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The loopback is a trunk: INVITEs from this test are calls.
    let s = desk::center(dir.path(), crm.addr, "");
    let host = s.sip_udp.unwrap();
    let mut wrong = Vec::new();
    for (i, (name, expect, what)) in CASES.iter().enumerate() {
        let got = answers(host, &message(name), &format!("probe{i}"));
        let ok = match expect {
            Nothing => got.is_empty(),
            Call => got.first().is_some_and(|r| code(r) == 100),
            Final(want) => {
                let finals: Vec<u16> = got.iter().map(|r| code(r)).filter(|c| *c >= 200).collect();
                finals == [*want] && got.iter().all(|r| code(r) >= 200 || code(r) == 100)
            }
        };
        if !ok {
            wrong.push(format!(
                "{name} ({what}): expected {expect:?}, got {:?}",
                got.iter()
                    .map(|r| r.lines().next().unwrap_or("").to_owned())
                    .collect::<Vec<_>>()
            ));
        }
        // Where the answer carries what the RFC asks for, check it.
        match *name {
            "bext01" => assert!(
                got.iter()
                    .any(|r| r
                        .contains("Unsupported: nothingSupportsThis, nothingSupportsThisEither")),
                "{got:?}"
            ),
            "invut" => assert!(
                got.iter().any(|r| r.contains("Accept: application/sdp")),
                "{got:?}"
            ),
            "intmeth" | "esc02" | "mismatch02" => {
                assert!(got.iter().any(|r| r.contains("Allow: ")), "{got:?}")
            }
            _ => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of 49:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Nothing echoed the network's words into a reason phrase.
    let log = s.log.lock().unwrap().join("\n");
    assert!(!log.contains("panicked"), "{log}");
}

/// The parser takes unknown URI schemes in To and From (RFC 4475 3.3.3's
/// point); only a registrar refuses them, as the address of record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_schemes_in_to_and_from_are_read_outside_register() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let host = s.sip_udp.unwrap();
    let options = String::from_utf8(message("unksm2"))
        .unwrap()
        .replace("REGISTER sip:example.com", "OPTIONS sip:example.com")
        .replace("CSeq: 234902 REGISTER", "CSeq: 234902 OPTIONS");
    let got = answers(host, options.as_bytes(), "probe-unksm2");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("SIP/2.0 200"), "{got:?}");
}
