//! Back-to-back user agent (UDP): an INVITE from a trunk becomes an ACD call;
//! the ACD's commands become the agent leg (INVITE, CANCEL, BYE) and the
//! caller's answers (180, 200 with the agent's SDP, errors, BYE). SDP is
//! passed through until the media relay takes over.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

use super::registrar::Registrar;
use super::wire::{RawMessage, addr_uri, param, response, uri_user};
use crate::acd::{CallEvent, Command, OfferFailure};
use crate::center::CenterHandle;
use crate::clock::now_ms;

/// RFC 3261 timers.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const TIMER_B: Duration = Duration::from_secs(32);

#[derive(Debug, Clone, PartialEq, Eq)]
enum LegState {
    Calling,
    Ringing,
    Answered,
    Cancelling,
}

struct AgentLeg {
    agent: String,
    call_id: String,
    branch: String,
    from_tag: String,
    to_tag: Option<String>,
    request_uri: String,
    /// Where the agent's phone answers (the Contact of its 200, else the request URI).
    target: String,
    dest: SocketAddr,
    state: LegState,
    sdp: Vec<u8>,
    content_type: Option<String>,
    retransmit: Option<AbortHandle>,
}

struct Call {
    invite: RawMessage,
    src: SocketAddr,
    to_tag: String,
    ringing_sent: bool,
    /// The final response sent, for INVITE retransmissions.
    final_sent: Option<Vec<u8>>,
    retransmit: Option<AbortHandle>,
    cseq: u32,
    /// Set once a final error was sent: kept this long for the caller's ACK
    /// and retransmissions (Timer H), then forgotten.
    forget_at_ms: Option<u64>,
}

/// An ACK we sent, its destination, and when to forget it.
type SentAck = (Vec<u8>, SocketAddr, u64);

pub struct B2bua {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    registrar: Arc<Registrar>,
    center: CenterHandle,
    /// Trunk name by source address.
    trunks: Vec<(String, Vec<IpAddr>)>,
    /// Agent id by SIP user.
    agents: HashMap<String, String>,
    calls: Mutex<HashMap<String, Call>>,
    /// Agent leg Call-ID -> (caller's Call-ID, leg).
    legs: Mutex<HashMap<String, (String, AgentLeg)>>,
    /// Our BYE and CANCEL requests awaiting a response, by Via branch (Timer E).
    pending: Mutex<HashMap<String, AbortHandle>>,
    /// ACKs of answered agent legs, to answer 2xx retransmissions even after
    /// the leg ended: leg Call-ID -> (ACK, destination, forget after).
    acks: Mutex<HashMap<String, SentAck>>,
}

fn token() -> String {
    crate::random::hex_token::<8>()
}

impl B2bua {
    pub fn new(
        socket: Arc<UdpSocket>,
        local: SocketAddr,
        registrar: Arc<Registrar>,
        center: CenterHandle,
        trunks: Vec<(String, Vec<IpAddr>)>,
        agents: HashMap<String, String>,
    ) -> Self {
        Self {
            socket,
            local,
            registrar,
            center,
            trunks,
            agents,
            calls: Mutex::new(HashMap::new()),
            legs: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            acks: Mutex::new(HashMap::new()),
        }
    }

    fn send(&self, bytes: &[u8], to: SocketAddr) {
        let first = bytes
            .split(|b| *b == b'\r')
            .next()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        tracing::debug!(%to, message = %first, "SIP out");
        if let Err(e) = self.socket.try_send_to(bytes, to) {
            tracing::warn!(%to, error = %e, "SIP send failed");
        }
    }

    /// Send now and again with RFC 3261 backoff until aborted or Timer B.
    fn send_retransmitting(
        &self,
        bytes: Vec<u8>,
        to: SocketAddr,
        on_timeout: Option<CallEvent>,
    ) -> AbortHandle {
        self.send(&bytes, to);
        let socket = self.socket.clone();
        let center = self.center.clone();
        tokio::spawn(async move {
            let (mut wait, mut spent) = (T1, Duration::ZERO);
            while spent < TIMER_B {
                tokio::time::sleep(wait).await;
                spent += wait;
                let _ = socket.send_to(&bytes, to).await;
                wait = (wait * 2).min(T2);
            }
            if let Some(e) = on_timeout {
                center.send(e);
            }
        })
        .abort_handle()
    }

    /// Send a non-INVITE request of ours, retransmitted until a response (Timer E/F).
    fn send_request(&self, bytes: Vec<u8>, to: SocketAddr) {
        let branch = RawMessage::parse_head(&bytes)
            .ok()
            .and_then(|m| m.branch().map(str::to_owned));
        let handle = self.send_retransmitting(bytes, to, None);
        if let Some(b) = branch {
            self.pending.lock().insert(b, handle);
        }
    }

    /// Called when a REGISTER succeeded or expired: phones that register log their agent in.
    pub fn registration_changed(&self, sip_user: &str) {
        let Some(agent) = self.agents.get(sip_user) else {
            return;
        };
        let live = !self.registrar.lookup(sip_user, now_ms()).is_empty();
        self.center.send(if live {
            CallEvent::AgentLogin {
                agent: agent.clone(),
            }
        } else {
            CallEvent::AgentLogout {
                agent: agent.clone(),
            }
        });
    }

    /// A request that belongs to calls (INVITE, BYE, CANCEL, ACK); returns an immediate answer.
    pub fn on_request(&self, msg: &RawMessage, src: SocketAddr) -> Option<Vec<u8>> {
        let call_id = msg.header("Call-ID")?.to_owned();
        match msg.method()? {
            "INVITE" => self.on_invite(msg, src, call_id),
            "ACK" => {
                if let Some(c) = self.calls.lock().get_mut(&call_id)
                    && let Some(r) = c.retransmit.take()
                {
                    r.abort();
                }
                None
            }
            "BYE" => {
                if let Some(mut c) = self.calls.lock().remove(&call_id) {
                    if let Some(r) = c.retransmit.take() {
                        r.abort(); // the 200 to the caller, if its ACK never came
                    }
                    self.center.send(CallEvent::CallerHungUp { call_id });
                    return Some(response(msg, 200, "OK", None, &[]));
                }
                let leg = self.legs.lock().remove(&call_id);
                match leg {
                    Some((caller, _)) => {
                        self.center.send(CallEvent::AgentHungUp { call_id: caller });
                        Some(response(msg, 200, "OK", None, &[]))
                    }
                    None => Some(response(
                        msg,
                        481,
                        "Call/Transaction Does Not Exist",
                        None,
                        &[],
                    )),
                }
            }
            "CANCEL" => {
                let mut calls = self.calls.lock();
                let Some(c) = calls.get_mut(&call_id) else {
                    return Some(response(
                        msg,
                        481,
                        "Call/Transaction Does Not Exist",
                        None,
                        &[],
                    ));
                };
                let ok = response(msg, 200, "OK", None, &[]);
                if c.final_sent.is_some() {
                    return Some(ok); // a retransmitted CANCEL
                }
                // 200 for the CANCEL first, then 487 for the INVITE (RFC 3261 9.2).
                self.send(&ok, src);
                let terminated =
                    response(&c.invite, 487, "Request Terminated", Some(&c.to_tag), &[]);
                c.retransmit = Some(self.send_retransmitting(terminated.clone(), c.src, None));
                c.final_sent = Some(terminated);
                c.forget_at_ms = Some(now_ms() + TIMER_B.as_millis() as u64);
                self.center.send(CallEvent::CallerHungUp {
                    call_id: call_id.clone(),
                });
                None
            }
            _ => None,
        }
    }

    fn on_invite(&self, msg: &RawMessage, src: SocketAddr, call_id: String) -> Option<Vec<u8>> {
        let now = now_ms();
        self.calls
            .lock()
            .retain(|_, c| c.forget_at_ms.is_none_or(|t| t > now));
        if let Some(c) = self.calls.lock().get(&call_id) {
            // A retransmission: repeat where we are.
            return Some(
                c.final_sent
                    .clone()
                    .unwrap_or_else(|| response(msg, 100, "Trying", None, &[])),
            );
        }
        if msg.header("To").and_then(|t| param(t, "tag")).is_some() {
            return Some(response(
                msg,
                488,
                "Not Acceptable Here - re-INVITE not supported yet",
                None,
                &[],
            ));
        }
        let Some(trunk) = self
            .trunks
            .iter()
            .find(|(_, ips)| ips.contains(&src.ip()))
            .map(|(n, _)| n.clone())
        else {
            tracing::warn!(%src, "INVITE from an address that is no trunk");
            return Some(response(
                msg,
                403,
                "Forbidden - not a trunk",
                Some(&token()),
                &[],
            ));
        };
        let caller = msg
            .header("From")
            .map(addr_uri)
            .and_then(uri_user)
            .unwrap_or("anonymous")
            .to_owned();
        let dialed = msg.uri().and_then(uri_user).unwrap_or("").to_owned();
        self.calls.lock().insert(
            call_id.clone(),
            Call {
                invite: msg.clone(),
                src,
                to_tag: token(),
                ringing_sent: false,
                final_sent: None,
                retransmit: None,
                cseq: 0,
                forget_at_ms: None,
            },
        );
        tracing::info!(call_id, caller, dialed, trunk, "call arrived");
        self.center.send(CallEvent::Arrived {
            call_id,
            caller,
            dialed,
            trunk,
            attributes: vec![],
        });
        Some(response(msg, 100, "Trying", None, &[]))
    }

    /// A response from an agent's phone.
    pub fn on_response(&self, msg: &RawMessage) {
        let Some(call_id) = msg.header("Call-ID") else {
            return;
        };
        let code: u16 = msg
            .start
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let is_invite = msg.header("CSeq").is_some_and(|c| c.ends_with("INVITE"));
        if !is_invite {
            // A response to our BYE or CANCEL ends its retransmissions.
            if code >= 200
                && let Some(h) = msg.branch().and_then(|b| self.pending.lock().remove(b))
            {
                h.abort();
            }
            return;
        }
        let mut legs = self.legs.lock();
        let Some((caller, leg)) = legs.get_mut(call_id) else {
            // A 2xx retransmitted after the leg ended (our ACK was lost): ACK it again.
            if (200..300).contains(&code)
                && let Some((ack, dest, _)) = self.acks.lock().get(call_id)
            {
                self.send(ack, *dest);
            }
            return;
        };
        if code >= 100
            && let Some(r) = leg.retransmit.take()
        {
            r.abort();
        }
        let to_tag = msg
            .header("To")
            .and_then(|t| param(t, "tag"))
            .map(str::to_owned);
        match code {
            180 | 183 if leg.state == LegState::Calling => {
                leg.state = LegState::Ringing;
                let mut calls = self.calls.lock();
                if let Some(c) = calls.get_mut(caller.as_str())
                    && !c.ringing_sent
                {
                    c.ringing_sent = true;
                    let ringing = response(&c.invite, 180, "Ringing", Some(&c.to_tag), &[]);
                    self.send(&ringing, c.src);
                }
            }
            200..=299 => {
                leg.to_tag = to_tag;
                if let Some(contact) = msg.header("Contact") {
                    leg.target = addr_uri(contact).to_owned();
                }
                leg.sdp = msg.body.clone();
                leg.content_type = msg.header("Content-Type").map(str::to_owned);
                let ack = self.leg_request(leg, "ACK", 1, true);
                self.send(&ack, leg.dest);
                {
                    let now = now_ms();
                    let mut acks = self.acks.lock();
                    acks.retain(|_, (_, _, until)| *until > now);
                    acks.insert(
                        call_id.to_owned(),
                        (ack, leg.dest, now + TIMER_B.as_millis() as u64),
                    );
                }
                if leg.state == LegState::Cancelling {
                    // Answered after we gave up on it: end it at once.
                    let bye = self.leg_request(leg, "BYE", 2, true);
                    self.send_request(bye, leg.dest);
                    let id = call_id.to_owned();
                    legs.remove(&id);
                    return;
                }
                leg.state = LegState::Answered;
                self.center.send(CallEvent::AgentAnswered {
                    call_id: caller.clone(),
                    agent: leg.agent.clone(),
                });
            }
            300..=699 => {
                leg.to_tag = to_tag;
                // The ACK of a non-2xx final answer belongs to the INVITE transaction (same branch).
                let ack = self.leg_request(leg, "ACK", 1, false);
                self.send(&ack, leg.dest);
                let cancelled = leg.state == LegState::Cancelling;
                let (caller, agent) = (caller.clone(), leg.agent.clone());
                legs.remove(call_id);
                if !cancelled {
                    let failure = match code {
                        486 | 600 => OfferFailure::Busy,
                        480 | 408 | 404 => OfferFailure::Unavailable,
                        603 => OfferFailure::Declined,
                        _ => OfferFailure::Failed,
                    };
                    self.center.send(CallEvent::OfferFailed {
                        call_id: caller,
                        agent,
                        failure,
                    });
                }
            }
            _ => {}
        }
    }

    /// A request on an agent leg. `in_dialog` (ACK of a 2xx, BYE): a new
    /// transaction sent to the phone's Contact. Otherwise (CANCEL, ACK of an
    /// error): the INVITE's own transaction, to the request URI.
    fn leg_request(&self, leg: &AgentLeg, method: &str, cseq: u32, in_dialog: bool) -> Vec<u8> {
        let (uri, branch) = if in_dialog {
            (leg.target.clone(), format!("z9hG4bK{}", token()))
        } else {
            (leg.request_uri.clone(), leg.branch.clone())
        };
        let to_tag = match &leg.to_tag {
            Some(t) if method != "CANCEL" => format!(";tag={t}"),
            _ => String::new(),
        };
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:ctihost@{local}>;tag={ftag}\r\nTo: <{ruri}>{to_tag}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            local = self.local,
            ftag = leg.from_tag,
            ruri = leg.request_uri,
            cid = leg.call_id,
        )
        .into_bytes()
    }

    /// Carry out one of the ACD's call-control commands.
    pub fn execute(&self, cmd: Command) {
        match cmd {
            Command::Offer {
                call_id,
                agent,
                sip_user,
            } => self.offer(call_id, agent, &sip_user),
            Command::CancelOffer { call_id, agent } => {
                let mut legs = self.legs.lock();
                let key = legs
                    .iter()
                    .find(|(_, (c, l))| *c == call_id && l.agent == agent)
                    .map(|(k, _)| k.clone());
                let Some(key) = key else { return };
                if let Some((_, leg)) = legs.get_mut(&key) {
                    if let Some(r) = leg.retransmit.take() {
                        r.abort();
                    }
                    match leg.state {
                        LegState::Answered => {
                            let bye = self.leg_request(leg, "BYE", 2, true);
                            self.send_request(bye, leg.dest);
                            legs.remove(&key);
                        }
                        _ => {
                            leg.state = LegState::Cancelling;
                            let cancel = self.leg_request(leg, "CANCEL", 1, false);
                            self.send_request(cancel, leg.dest);
                        }
                    }
                }
            }
            Command::Bridge { call_id, agent } => {
                let sdp = self
                    .legs
                    .lock()
                    .values()
                    .find(|(c, l)| *c == call_id && l.agent == agent)
                    .map(|(_, l)| (l.sdp.clone(), l.content_type.clone()));
                let mut calls = self.calls.lock();
                let Some(c) = calls.get_mut(&call_id) else {
                    return;
                };
                let (body, ctype) = sdp.unwrap_or_default();
                let mut ok = String::from_utf8_lossy(&response(
                    &c.invite,
                    200,
                    "OK",
                    Some(&c.to_tag),
                    &[("Contact", format!("<sip:ctihost@{}>", self.local))],
                ))
                .into_owned();
                // response() ends with an empty body; put the agent's SDP in.
                ok = ok.replace("Content-Length: 0\r\n\r\n", "");
                if let Some(t) = ctype {
                    ok.push_str(&format!("Content-Type: {t}\r\n"));
                }
                ok.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                let mut bytes = ok.into_bytes();
                bytes.extend_from_slice(&body);
                c.final_sent = Some(bytes.clone());
                c.retransmit = Some(self.send_retransmitting(bytes, c.src, None));
            }
            Command::Reject {
                call_id,
                code,
                reason,
            } => self.final_to_caller(&call_id, code, &reason, &[]),
            Command::Forward { call_id, target } => {
                let host = self.calls.lock().get(&call_id).map(|c| c.src.ip());
                let contact = if target.starts_with("sip:") {
                    target
                } else {
                    format!(
                        "sip:{target}@{}",
                        host.map(|h| h.to_string()).unwrap_or_default()
                    )
                };
                self.final_to_caller(
                    &call_id,
                    302,
                    "Moved Temporarily",
                    &[("Contact", format!("<{contact}>"))],
                );
            }
            Command::HangUpCaller { call_id } => {
                let answered = self
                    .calls
                    .lock()
                    .get(&call_id)
                    .map(|c| c.final_sent.as_ref().map(|f| f.starts_with(b"SIP/2.0 2")));
                match answered {
                    Some(Some(true)) => {
                        let Some(mut c) = self.calls.lock().remove(&call_id) else {
                            return;
                        };
                        if let Some(r) = c.retransmit.take() {
                            r.abort();
                        }
                        c.cseq += 1;
                        let bye = self.caller_bye(&c);
                        self.send_request(bye, c.src);
                    }
                    // Not answered yet: refuse it, and keep it for the ACK.
                    Some(None) => {
                        self.final_to_caller(&call_id, 480, "Temporarily Unavailable", &[])
                    }
                    _ => {}
                }
            }
            Command::HangUpAgent { call_id, agent } => {
                let mut legs = self.legs.lock();
                let key = legs
                    .iter()
                    .find(|(_, (c, l))| *c == call_id && l.agent == agent)
                    .map(|(k, _)| k.clone());
                if let Some((_, leg)) = key.and_then(|k| legs.remove(&k)) {
                    let bye = self.leg_request(&leg, "BYE", 2, true);
                    self.send_request(bye, leg.dest);
                }
            }
            _ => {}
        }
    }

    fn final_to_caller(&self, call_id: &str, code: u16, reason: &str, extra: &[(&str, String)]) {
        let mut calls = self.calls.lock();
        let Some(c) = calls.get_mut(call_id) else {
            return;
        };
        let resp = response(&c.invite, code, reason, Some(&c.to_tag), extra);
        // Repeated until the caller's ACK (Timer G), forgotten after Timer H.
        c.retransmit = Some(self.send_retransmitting(resp.clone(), c.src, None));
        c.final_sent = Some(resp);
        c.forget_at_ms = Some(now_ms() + TIMER_B.as_millis() as u64);
    }

    fn caller_bye(&self, c: &Call) -> Vec<u8> {
        let target = c
            .invite
            .header("Contact")
            .map(addr_uri)
            .unwrap_or("sip:caller")
            .to_owned();
        let to = c.invite.header("From").unwrap_or("").to_owned();
        let from = format!("{};tag={}", c.invite.header("To").unwrap_or(""), c.to_tag);
        format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{b}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n",
            local = self.local,
            b = token(),
            cid = c.invite.header("Call-ID").unwrap_or(""),
            cseq = c.cseq,
        )
        .into_bytes()
    }

    fn offer(&self, call_id: String, agent: String, sip_user: &str) {
        let bindings = self.registrar.lookup(sip_user, now_ms());
        let Some(b) = bindings.last() else {
            self.center.send(CallEvent::OfferFailed {
                call_id,
                agent,
                failure: OfferFailure::Unavailable,
            });
            return;
        };
        let (sdp, ctype, caller) = {
            let calls = self.calls.lock();
            let Some(c) = calls.get(&call_id) else { return };
            (
                c.invite.body.clone(),
                c.invite.header("Content-Type").map(str::to_owned),
                c.invite
                    .header("From")
                    .map(addr_uri)
                    .and_then(uri_user)
                    .unwrap_or("anonymous")
                    .to_owned(),
            )
        };
        let leg_id = format!("{call_id}-{agent}-{}", token());
        let leg = AgentLeg {
            agent: agent.clone(),
            call_id: leg_id.clone(),
            branch: format!("z9hG4bK{}", token()),
            from_tag: token(),
            to_tag: None,
            request_uri: b.contact.clone(),
            target: b.contact.clone(),
            dest: b.source,
            state: LegState::Calling,
            sdp: vec![],
            content_type: None,
            retransmit: None,
        };
        let mut invite = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:{caller}@{local}>;tag={ftag}\r\nTo: <{ruri}>\r\nCall-ID: {leg_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:ctihost@{local}>\r\n",
            ruri = leg.request_uri,
            local = self.local,
            branch = leg.branch,
            ftag = leg.from_tag,
        );
        if let Some(t) = ctype {
            invite.push_str(&format!("Content-Type: {t}\r\n"));
        }
        invite.push_str(&format!("Content-Length: {}\r\n\r\n", sdp.len()));
        let mut bytes = invite.into_bytes();
        bytes.extend_from_slice(&sdp);
        let timeout = CallEvent::OfferFailed {
            call_id: call_id.clone(),
            agent,
            failure: OfferFailure::Unavailable,
        };
        let dest = leg.dest;
        let mut legs = self.legs.lock();
        legs.insert(leg_id.clone(), (call_id, leg));
        let handle = self.send_retransmitting(bytes, dest, Some(timeout));
        if let Some((_, l)) = legs.get_mut(&leg_id) {
            l.retransmit = Some(handle);
        }
    }
}
