use std::net::SocketAddr;

use super::*;
use crate::wire::response;

const T: Timers = Timers {
    t1: 500,
    t2: 4_000,
    t4: 5_000,
};

fn udp() -> Peer {
    Peer::udp(SocketAddr::from(([127, 0, 0, 1], 5070)), 0)
}

fn tcp() -> Peer {
    Peer::tcp(SocketAddr::from(([127, 0, 0, 1], 5070)))
}

fn request(method: &str, branch: &str, cseq: u32) -> RawMessage {
    let text = format!(
        "{method} sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    );
    RawMessage::parse(text.as_bytes()).unwrap()
}

fn reply(req: &RawMessage, code: u16) -> Vec<u8> {
    response(req, code, "X", Some("t1"), &[])
}

fn sends(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { bytes, .. } => Some(
                String::from_utf8_lossy(bytes)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            ),
            _ => None,
        })
        .collect()
}

/// Run the timers from `from` to `to` in 10 ms steps; the times at which something was sent.
fn send_times(l: &mut TransactionLayer, from: u64, to: u64) -> (Vec<u64>, Vec<Output>) {
    let (mut times, mut events) = (Vec::new(), Vec::new());
    let mut now = from;
    while now <= to {
        for o in l.poll_timers(now) {
            match o {
                Output::Send { .. } => times.push(now),
                other => events.push(other),
            }
        }
        now += 10;
    }
    (times, events)
}

#[test]
fn non_invite_server_absorbs_retransmissions_and_repeats_its_answer_until_timer_j() {
    let mut l = TransactionLayer::new(T);
    let req = request("OPTIONS", "z9hG4bK-o1", 1);
    let out = l.receive_request(req.clone(), udp(), 0);
    let key = match &out[..] {
        [Output::Request { key, .. }] => key.clone(),
        other => panic!("expected the request for the TU, got {other:?}"),
    };
    // Trying: a retransmission is absorbed silently.
    assert!(l.receive_request(req.clone(), udp(), 100).is_empty());
    let out = l.respond(&key, reply(&req, 200), 200).unwrap();
    assert_eq!(sends(&out), ["SIP/2.0 200 X"]);
    // Completed: a retransmission gets the same answer and the TU hears nothing.
    let again = l.receive_request(req.clone(), udp(), 5_000);
    assert_eq!(sends(&again), ["SIP/2.0 200 X"]);
    assert!(again.iter().all(|o| matches!(o, Output::Send { .. })));
    // Timer J = 64*T1 later the transaction is gone.
    l.poll_timers(200 + 64 * 500 - 10);
    assert_eq!(l.state(&key), Some(State::Completed));
    l.poll_timers(200 + 64 * 500);
    assert_eq!(l.state(&key), None);
}

#[test]
fn non_invite_server_over_tcp_ends_with_its_final_answer() {
    let mut l = TransactionLayer::new(T);
    let req = request("REGISTER", "z9hG4bK-r1", 1);
    let out = l.receive_request(req.clone(), tcp(), 0);
    let Some(Output::Request { key, .. }) = out.first() else {
        panic!("no request")
    };
    let key = key.clone();
    l.respond(&key, reply(&req, 200), 10).unwrap();
    assert!(l.is_empty(), "Timer J is zero on a reliable transport");
}

#[test]
fn invite_server_sends_trying_at_once_and_repeats_an_error_on_timer_g_until_the_ack() {
    let mut l = TransactionLayer::new(T);
    let inv = request("INVITE", "z9hG4bK-i1", 1);
    let out = l.receive_request(inv.clone(), udp(), 0);
    assert_eq!(sends(&out), ["SIP/2.0 100 Trying"]);
    let Some(Output::Request { key, .. }) = out.last() else {
        panic!("no request")
    };
    let key = key.clone();
    // A retransmitted INVITE gets the provisional again.
    assert_eq!(
        sends(&l.receive_request(inv.clone(), udp(), 300)),
        ["SIP/2.0 100 Trying"]
    );
    l.respond(&key, reply(&inv, 486), 1_000).unwrap();
    assert_eq!(l.state(&key), Some(State::Completed));
    // Timer G: T1, 2T1, 4T1, then capped at T2.
    let (times, _) = send_times(&mut l, 1_000, 13_000);
    assert_eq!(times, [1_500, 2_500, 4_500, 8_500, 12_500]);
    // The ACK (same branch) confirms it: no more retransmissions, and the TU is not bothered.
    let ack = request("ACK", "z9hG4bK-i1", 1);
    assert!(l.receive_request(ack.clone(), udp(), 13_000).is_empty());
    assert_eq!(l.state(&key), Some(State::Confirmed));
    let (times, events) = send_times(&mut l, 13_000, 17_990);
    assert!(times.is_empty() && events.is_empty());
    // Timer I = T4 absorbs ACK retransmissions, then ends it.
    assert!(l.receive_request(ack, udp(), 14_000).is_empty());
    l.poll_timers(18_000);
    assert_eq!(l.state(&key), None);
}

#[test]
fn invite_server_without_ack_times_out_on_timer_h() {
    let mut l = TransactionLayer::new(T);
    let inv = request("INVITE", "z9hG4bK-i2", 1);
    let Some(Output::Request { key, .. }) = l.receive_request(inv.clone(), udp(), 0).pop() else {
        panic!("no request")
    };
    l.respond(&key, reply(&inv, 480), 0).unwrap();
    let (_, events) = send_times(&mut l, 0, 32_000);
    assert_eq!(
        events,
        [Output::Timeout {
            key: key.clone(),
            call_id: "c1".into()
        }]
    );
    assert_eq!(l.state(&key), None);
}

#[test]
fn invite_server_repeats_a_2xx_until_the_ack_and_never_after() {
    let mut l = TransactionLayer::new(T);
    let inv = request("INVITE", "z9hG4bK-i3", 1);
    let Some(Output::Request { key, .. }) = l.receive_request(inv.clone(), tcp(), 0).pop() else {
        panic!("no request")
    };
    l.respond(&key, reply(&inv, 180), 10).unwrap();
    l.respond(&key, reply(&inv, 200), 20).unwrap();
    assert_eq!(l.state(&key), Some(State::Accepted));
    // Repeated even over TCP (13.3.1.4): 520, 1520, 3520.
    let (times, _) = send_times(&mut l, 20, 4_000);
    assert_eq!(times, [520, 1_520, 3_520]);
    // A retransmitted INVITE gets the 2xx, not the 180.
    assert_eq!(
        sends(&l.receive_request(inv.clone(), tcp(), 4_000)),
        ["SIP/2.0 200 X"]
    );
    // The ACK of a 2xx has its own branch; it reaches the TU and stops the 2xx.
    let ack = request("ACK", "z9hG4bK-other", 1);
    let out = l.receive_request(ack, tcp(), 4_100);
    assert!(matches!(&out[..], [Output::Ack { .. }]));
    let (times, events) = send_times(&mut l, 4_100, 40_000);
    assert!(times.is_empty(), "2xx sent after its ACK at {times:?}");
    assert!(events.is_empty(), "acknowledged: no Unacknowledged event");
    assert_eq!(l.state(&key), None, "Timer L ended it");
}

#[test]
fn a_bye_before_the_ack_stops_the_2xx() {
    let mut l = TransactionLayer::new(T);
    let inv = request("INVITE", "z9hG4bK-i5", 1);
    let Some(Output::Request { key, .. }) = l.receive_request(inv.clone(), udp(), 0).pop() else {
        panic!("no request")
    };
    l.respond(&key, reply(&inv, 200), 0).unwrap();
    let (times, _) = send_times(&mut l, 0, 2_000);
    assert_eq!(times, [500, 1_500]);
    // Another dialog's BYE changes nothing.
    let mut other = request("BYE", "z9hG4bK-b0", 2).to_bytes();
    other = String::from_utf8(other)
        .unwrap()
        .replace("Call-ID: c1", "Call-ID: c2")
        .into_bytes();
    l.receive_request(RawMessage::parse(&other).unwrap(), udp(), 2_000);
    let (times, _) = send_times(&mut l, 2_000, 4_000);
    assert_eq!(times, [3_500], "still repeated for its own dialog");
    // The caller's BYE, its ACK lost: the 2xx got there.
    let bye = request("BYE", "z9hG4bK-b1", 2);
    let out = l.receive_request(bye, udp(), 4_000);
    assert!(
        matches!(out.last(), Some(Output::Request { .. })),
        "the BYE reaches the TU"
    );
    let (times, events) = send_times(&mut l, 4_000, 40_000);
    let twos: Vec<u64> = times;
    assert!(
        twos.is_empty(),
        "no 2xx after the BYE (the BYE's own answer is the TU's): {twos:?}"
    );
    assert!(events.is_empty(), "not reported unacknowledged: {events:?}");
    assert_eq!(l.state(&key), None, "Timer L ended it");
}

#[test]
fn an_unacknowledged_2xx_is_reported_after_timer_l() {
    let mut l = TransactionLayer::new(T);
    let inv = request("INVITE", "z9hG4bK-i4", 1);
    let Some(Output::Request { key, .. }) = l.receive_request(inv.clone(), udp(), 0).pop() else {
        panic!("no request")
    };
    l.respond(&key, reply(&inv, 200), 0).unwrap();
    let (times, events) = send_times(&mut l, 0, 32_000);
    assert_eq!(
        times,
        [
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    assert_eq!(
        events,
        [Output::Unacknowledged {
            key,
            call_id: "c1".into()
        }]
    );
}

#[test]
fn invite_client_backs_off_on_timer_a_and_times_out_on_timer_b() {
    let mut l = TransactionLayer::new(T);
    let inv = request("INVITE", "z9hG4bK-c1", 1);
    let (key, out) = l.send_request(inv.to_bytes(), udp(), 0).unwrap();
    assert_eq!(sends(&out), ["INVITE sip:1001@127.0.0.1 SIP/2.0"]);
    let (times, events) = send_times(&mut l, 0, 32_000);
    // Timer A doubles without a cap: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    assert_eq!(times, [500, 1_500, 3_500, 7_500, 15_500, 31_500]);
    assert_eq!(
        events,
        [Output::Timeout {
            key,
            call_id: "c1".into()
        }]
    );
    assert!(l.is_empty());
}

#[test]
fn invite_client_acks_an_error_itself_and_absorbs_its_retransmissions() {
    let mut l = TransactionLayer::new(T);
    let inv = request("INVITE", "z9hG4bK-c2", 7);
    let (key, _) = l.send_request(inv.to_bytes(), udp(), 0).unwrap();
    let ringing = RawMessage::parse(&reply(&inv, 180)).unwrap();
    let out = l.receive_response(ringing, 100);
    assert!(matches!(&out[..], [Output::Response { .. }]));
    // Timer A stopped with the provisional answer.
    let (times, _) = send_times(&mut l, 100, 5_000);
    assert!(times.is_empty());
    let busy = RawMessage::parse(&reply(&inv, 486)).unwrap();
    let out = l.receive_response(busy.clone(), 5_000);
    assert_eq!(out.len(), 2, "ACK sent and the response passed up: {out:?}");
    let Output::Send { bytes, .. } = &out[0] else {
        panic!("first output is the ACK")
    };
    let ack = RawMessage::parse(bytes).unwrap();
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(
        ack.branch(),
        Some("z9hG4bK-c2".to_owned()),
        "same branch as the INVITE"
    );
    assert_eq!(ack.header("CSeq"), Some("7 ACK"));
    assert_eq!(param(ack.header("To").unwrap(), "tag"), Some("t1"));
    // The 486 again (our ACK was lost): ACK again, TU not told twice.
    assert_eq!(
        sends(&l.receive_response(busy, 6_000)),
        ["ACK sip:1001@127.0.0.1 SIP/2.0"]
    );
    l.poll_timers(5_000 + 32_000);
    assert_eq!(l.state(&key), None, "Timer D ended it");
}

#[test]
fn invite_client_repeats_the_tus_ack_for_a_retransmitted_2xx() {
    let mut l = TransactionLayer::new(T);
    let inv = request("INVITE", "z9hG4bK-c3", 1);
    let (key, _) = l.send_request(inv.to_bytes(), udp(), 0).unwrap();
    let ok = RawMessage::parse(&reply(&inv, 200)).unwrap();
    assert!(matches!(
        &l.receive_response(ok.clone(), 50)[..],
        [Output::Response { .. }]
    ));
    let ack = request("ACK", "z9hG4bK-new", 1).to_bytes();
    l.ack_2xx(&key, ack, udp());
    assert_eq!(
        sends(&l.receive_response(ok, 600)),
        ["ACK sip:1001@127.0.0.1 SIP/2.0"]
    );
    let (times, events) = send_times(&mut l, 600, 33_000);
    assert!(times.is_empty() && events.is_empty());
    assert_eq!(l.state(&key), None, "Timer M ended it");
}

#[test]
fn non_invite_client_caps_timer_e_at_t2_and_lingers_on_timer_k() {
    let mut l = TransactionLayer::new(T);
    let bye = request("BYE", "z9hG4bK-b1", 2);
    let (key, _) = l.send_request(bye.to_bytes(), udp(), 0).unwrap();
    let (times, _) = send_times(&mut l, 0, 16_000);
    assert_eq!(times, [500, 1_500, 3_500, 7_500, 11_500, 15_500]);
    let ok = RawMessage::parse(&reply(&bye, 200)).unwrap();
    assert!(matches!(
        &l.receive_response(ok.clone(), 16_000)[..],
        [Output::Response { .. }]
    ));
    // A retransmitted final answer is absorbed.
    assert!(l.receive_response(ok, 16_100).is_empty());
    let (times, _) = send_times(&mut l, 16_000, 30_000);
    assert!(times.is_empty());
    assert_eq!(l.state(&key), None, "Timer K (T4) ended it");
}

#[test]
fn non_invite_client_retransmits_at_t2_once_proceeding_and_times_out_on_f() {
    let mut l = TransactionLayer::new(T);
    let bye = request("BYE", "z9hG4bK-b2", 2);
    let (key, _) = l.send_request(bye.to_bytes(), udp(), 0).unwrap();
    let trying = RawMessage::parse(&reply(&bye, 100)).unwrap();
    l.receive_response(trying, 100);
    let (times, events) = send_times(&mut l, 100, 32_000);
    assert_eq!(times[0], 500, "the armed E still fires");
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 4_000),
        "then every T2: {times:?}"
    );
    assert_eq!(
        events,
        [Output::Timeout {
            key,
            call_id: "c1".into()
        }]
    );
}

#[test]
fn no_retransmissions_over_tcp() {
    let mut l = TransactionLayer::new(T);
    l.send_request(request("BYE", "z9hG4bK-b3", 2).to_bytes(), tcp(), 0)
        .unwrap();
    l.send_request(request("INVITE", "z9hG4bK-c4", 1).to_bytes(), tcp(), 0)
        .unwrap();
    let (times, events) = send_times(&mut l, 0, 32_000);
    assert!(times.is_empty());
    assert_eq!(events.len(), 2, "Timers B and F still fire: {events:?}");
}

#[test]
fn cancel_is_its_own_transaction_and_names_its_invite() {
    let mut l = TransactionLayer::new(T);
    let inv = request("INVITE", "z9hG4bK-i5", 1);
    let Some(Output::Request { key, .. }) = l.receive_request(inv.clone(), udp(), 0).pop() else {
        panic!("no request")
    };
    let cancel = RawMessage::parse(&cancel_for(&inv)).unwrap();
    assert_eq!(cancel.header("CSeq"), Some("1 CANCEL"));
    let out = l.receive_request(cancel.clone(), udp(), 10);
    let Some(Output::Request { key: ckey, .. }) = out.last() else {
        panic!("CANCEL reaches the TU: {out:?}")
    };
    assert_ne!(ckey, &key);
    let invite_key = TxKey {
        method: "INVITE".into(),
        ..ckey.clone()
    };
    assert_eq!(invite_key, key, "same branch: the CANCEL finds its INVITE");
    assert_eq!(l.request(&invite_key), Some(&inv));
}

#[test]
fn a_full_layer_answers_503_and_remembers_nothing() {
    let mut l = TransactionLayer::new(T).with_capacity(1);
    l.receive_request(request("OPTIONS", "z9hG4bK-1", 1), udp(), 0);
    let out = l.receive_request(request("OPTIONS", "z9hG4bK-2", 1), udp(), 0);
    assert_eq!(sends(&out), ["SIP/2.0 503 Service Unavailable"]);
    assert_eq!(l.len(), 1);
}

#[test]
fn responding_to_an_unknown_or_with_a_request_is_an_error() {
    let mut l = TransactionLayer::new(T);
    let req = request("OPTIONS", "z9hG4bK-1", 1);
    let key = server_key(&req);
    assert_eq!(l.respond(&key, reply(&req, 200), 0), Err(TxError::Unknown));
    l.receive_request(req.clone(), udp(), 0);
    assert_eq!(
        l.respond(&key, req.to_bytes(), 0),
        Err(TxError::NotAResponse)
    );
}
