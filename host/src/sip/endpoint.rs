//! The SIP endpoint: checks each request, absorbs retransmissions of
//! non-INVITE requests (RFC 3261 17.2.2), and hands it to the registrar or
//! answers it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::b2bua::B2bua;
use super::registrar::{Registrar, Transport};
use super::wire::{KNOWN_METHODS, RawMessage, addr_uri, response, uri_user};

/// A server transaction: top Via branch and method.
type TxKey = (String, String);
/// The final response sent, and when to forget it (Timer J).
type Answered = (Vec<u8>, u64);

/// Answers remembered at most; beyond it a flood of fresh branches is answered
/// but not remembered, so memory stays bounded.
const MAX_REMEMBERED: usize = 100_000;

/// Timer J for unreliable transports: 64 * T1.
const TIMER_J_MS: u64 = 32_000;

pub struct SipEndpoint {
    pub registrar: Arc<Registrar>,
    b2bua: OnceLock<Arc<B2bua>>,
    max_bytes: usize,
    answered: Mutex<HashMap<TxKey, Answered>>,
}

impl SipEndpoint {
    pub fn new(registrar: Arc<Registrar>, max_bytes: usize) -> Self {
        Self {
            registrar,
            b2bua: OnceLock::new(),
            max_bytes,
            answered: Mutex::new(HashMap::new()),
        }
    }

    /// Calls (INVITE, BYE, CANCEL) are handled once the B2BUA is attached.
    pub fn attach_b2bua(&self, b: Arc<B2bua>) {
        let _ = self.b2bua.set(b);
    }

    /// One message from the network; returns the response to send back, if any.
    pub fn handle(
        &self,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
        now_ms: u64,
    ) -> Option<Vec<u8>> {
        let msg = match RawMessage::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%source, error = %e, "unparseable SIP message dropped");
                return None;
            }
        };
        if !msg.is_request() {
            if let Some(b) = self.b2bua.get() {
                b.on_response(&msg);
            }
            return None;
        }
        if bytes.len() > self.max_bytes {
            return Some(response(&msg, 513, "Message Too Large", None, &[]));
        }
        let method = msg.method().unwrap_or("").to_owned();
        let missing = ["Via", "From", "To", "Call-ID", "CSeq"]
            .into_iter()
            .find(|h| msg.header(h).is_none());
        if let Some(h) = missing {
            return (method != "ACK")
                .then(|| response(&msg, 400, &format!("Bad Request - missing {h}"), None, &[]));
        }
        let cseq_ok = msg.header("CSeq").map(|c| {
            let mut it = c.split_whitespace();
            it.next().is_some_and(|n| n.parse::<u32>().is_ok())
                && it.next() == Some(method.as_str())
        });
        if cseq_ok != Some(true) && KNOWN_METHODS.contains(&method.as_str()) {
            return (method != "ACK")
                .then(|| response(&msg, 400, "Bad Request - bad CSeq", None, &[]));
        }
        if !KNOWN_METHODS.contains(&method.as_str()) {
            return Some(response(
                &msg,
                501,
                "Not Implemented",
                None,
                &[("Allow", ALLOW.into())],
            ));
        }
        if method == "ACK" {
            if let Some(b) = self.b2bua.get() {
                b.on_request(&msg, source);
            }
            return None;
        }
        let key = (msg.branch().unwrap_or("").to_owned(), method.clone());
        {
            let mut answered = self.answered.lock();
            answered.retain(|_, (_, until)| *until > now_ms);
            if let Some((resp, _)) = answered.get(&key) {
                return Some(resp.clone()); // a retransmission: same answer, no new work
            }
        }
        // rsip is the message model: a request it cannot read is refused here.
        if let Err(e) = rsip::Request::try_from(msg.to_bytes().as_slice()) {
            let reason = format!(
                "Bad Request - {}",
                e.to_string()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(60)
                    .collect::<String>()
            );
            return Some(response(&msg, 400, &reason, None, &[]));
        }
        let resp = match method.as_str() {
            "REGISTER" => {
                let r = self.registrar.handle(&msg, source, transport, now_ms);
                if r.starts_with(b"SIP/2.0 200")
                    && let (Some(b), Some(user)) = (
                        self.b2bua.get(),
                        msg.header("To").map(addr_uri).and_then(uri_user),
                    )
                {
                    b.registration_changed(user);
                }
                r
            }
            "INVITE" | "BYE" | "CANCEL"
                if self.b2bua.get().is_some() && transport == Transport::Udp =>
            {
                self.b2bua.get().and_then(|b| b.on_request(&msg, source))?
            }
            "OPTIONS" => response(
                &msg,
                200,
                "OK",
                Some("o1"),
                &[
                    ("Allow", ALLOW.into()),
                    ("Accept", "application/sdp".into()),
                ],
            ),
            // Calls over TCP and the remaining methods come later.
            _ => response(
                &msg,
                501,
                "Not Implemented",
                None,
                &[("Allow", ALLOW.into())],
            ),
        };
        if method != "INVITE" && !key.0.is_empty() {
            let ttl = if transport == Transport::Udp {
                TIMER_J_MS
            } else {
                0
            };
            let mut answered = self.answered.lock();
            if ttl > 0 && answered.len() < MAX_REMEMBERED {
                answered.insert(key, (resp.clone(), now_ms + ttl));
            }
        }
        Some(resp)
    }
}

const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, REGISTER, OPTIONS";
