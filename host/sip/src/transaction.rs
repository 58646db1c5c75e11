//! RFC 3261 section 17 transactions, sans-IO: the four state machines
//! (INVITE and non-INVITE, client and server) with timers A-K, plus the
//! RFC 6026 "Accepted" states that retransmit a 2xx until its ACK arrives
//! (UAS side) and absorb 2xx retransmissions by repeating our ACK (UAC side).
//!
//! The layer owns no socket and no clock: it is fed messages and the current
//! time, and returns [`Output`]s (bytes to send, events for the transaction
//! user). A driver on tokio sleeps until [`TransactionLayer::next_deadline`].
//! That keeps every timer path testable without a network.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::flow::Peer;
use super::wire::{RawMessage, param};

/// RFC 3261 timer base values, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate.
    pub t1: u64,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses.
    pub t2: u64,
    /// Longest time a message stays in the network.
    pub t4: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: 500,
            t2: 4_000,
            t4: 5_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

/// Identifies a transaction (RFC 3261 17.1.3 and 17.2.3): the top Via branch,
/// the method (ACK counts as INVITE) and, for servers, the Via sent-by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxKey {
    pub branch: String,
    pub method: String,
    server: bool,
}

impl TxKey {
    /// The same branch with another method: the INVITE a CANCEL names.
    pub fn for_method(&self, method: &str) -> TxKey {
        TxKey {
            method: method.to_owned(),
            ..self.clone()
        }
    }

    pub fn side(&self) -> Side {
        if self.server {
            Side::Server
        } else {
            Side::Client
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    /// A 2xx went by (RFC 6026).
    Accepted,
    Completed,
    Confirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE client retransmit.
    A,
    /// INVITE client timeout.
    B,
    /// INVITE client wait for response retransmissions.
    D,
    /// Non-INVITE client retransmit.
    E,
    /// Non-INVITE client timeout.
    F,
    /// INVITE server response retransmit (also the 2xx in Accepted).
    G,
    /// INVITE server wait for ACK.
    H,
    /// INVITE server wait for ACK retransmissions.
    I,
    /// Non-INVITE server wait for request retransmissions.
    J,
    /// Non-INVITE client wait for response retransmissions.
    K,
    /// INVITE server linger in Accepted (RFC 6026).
    L,
    /// INVITE client linger in Accepted (RFC 6026).
    M,
}

/// What the layer asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Send {
        peer: Peer,
        bytes: Vec<u8>,
    },
    /// A new request for the transaction user, with its server transaction.
    Request {
        key: TxKey,
        msg: RawMessage,
        peer: Peer,
    },
    /// An ACK outside any transaction (the ACK of a 2xx), for the dialog.
    Ack {
        msg: RawMessage,
        peer: Peer,
    },
    /// A response of one of our client transactions.
    Response {
        key: TxKey,
        msg: RawMessage,
    },
    /// Timer B, F or H: no answer (client) or no ACK for an error (server).
    Timeout {
        key: TxKey,
        call_id: String,
    },
    /// A 2xx we sent was never acknowledged (RFC 3261 13.3.1.4: end the session).
    Unacknowledged {
        key: TxKey,
        call_id: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxError {
    #[error("no such transaction")]
    Unknown,
    #[error("the message has no status code")]
    NotAResponse,
    #[error("not a request that opens a transaction")]
    NotARequest,
    #[error("too many transactions in progress")]
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

struct Tx {
    kind: Kind,
    state: State,
    peer: Peer,
    request: RawMessage,
    /// Client: the request; server: the last response.
    last_sent: Vec<u8>,
    /// Client INVITE: the ACK to repeat for a retransmitted final response.
    ack: Option<Vec<u8>>,
    acked: bool,
    interval: u64,
    timers: Vec<(Timer, u64)>,
}

type TimerHeap = BinaryHeap<Reverse<(u64, TxKey, Timer)>>;

/// Transactions alive at most; beyond it new requests get a stateless 503.
const DEFAULT_CAPACITY: usize = 200_000;

pub struct TransactionLayer {
    timers: Timers,
    txs: HashMap<TxKey, Tx>,
    heap: TimerHeap,
    /// Server INVITE transactions in Accepted, by Call-ID, with their CSeq
    /// number: the ACK of a 2xx has its own branch and is matched by dialog
    /// instead, and a BYE in the dialog stops the 2xx too.
    accepted: HashMap<String, Vec<(u32, TxKey)>>,
    capacity: usize,
}

pub fn status_code(msg: &RawMessage) -> Option<u16> {
    if msg.is_request() {
        return None;
    }
    msg.start.split_whitespace().nth(1)?.parse().ok()
}

fn cseq(msg: &RawMessage) -> Option<(u32, &str)> {
    let mut it = msg.header("CSeq")?.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?))
}

/// The branch, or for pre-RFC 3261 peers a stand-in built from the dialog.
fn branch_of(msg: &RawMessage) -> String {
    match msg.branch() {
        Some(b) if b.starts_with("z9hG4bK") => b,
        _ => format!(
            "{}|{}|{}",
            msg.header("Call-ID").unwrap_or(""),
            cseq(msg).map(|c| c.0).unwrap_or(0),
            msg.header("From")
                .and_then(|f| param(f, "tag"))
                .unwrap_or("")
        ),
    }
}

fn sent_by(msg: &RawMessage) -> &str {
    msg.sent_by().unwrap_or("")
}

/// The key of the server transaction a request belongs to.
pub fn server_key(msg: &RawMessage) -> TxKey {
    let method = match msg.method() {
        Some("ACK") => "INVITE",
        Some(m) => m,
        None => "",
    };
    TxKey {
        branch: format!("{}|{}", branch_of(msg), sent_by(msg)),
        method: method.to_owned(),
        server: true,
    }
}

/// The key of the client transaction a request of ours, or a response to it, belongs to.
pub fn client_key(msg: &RawMessage) -> TxKey {
    let method = cseq(msg).map(|c| c.1).unwrap_or("");
    TxKey {
        branch: branch_of(msg),
        method: if method == "ACK" { "INVITE" } else { method }.to_owned(),
        server: false,
    }
}

/// The lines a request built from `req` copies: its top Via, From, Call-ID
/// and, for ACK and CANCEL, its Route set (RFC 3261 9.1 and 17.1.1.3).
fn same_transaction_request(req: &RawMessage, method: &str, to: &str) -> Vec<u8> {
    let mut s = format!("{method} {} SIP/2.0\r\n", req.uri().unwrap_or(""));
    if let Some(v) = req.header("Via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    for r in req.all("Route") {
        s.push_str(&format!("Route: {r}\r\n"));
    }
    s.push_str("Max-Forwards: 70\r\n");
    s.push_str(&format!("From: {}\r\n", req.header("From").unwrap_or("")));
    s.push_str(&format!("To: {to}\r\n"));
    s.push_str(&format!(
        "Call-ID: {}\r\n",
        req.header("Call-ID").unwrap_or("")
    ));
    s.push_str(&format!(
        "CSeq: {} {method}\r\n",
        cseq(req).map(|c| c.0).unwrap_or(1)
    ));
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}

/// The ACK of a non-2xx final response (RFC 3261 17.1.1.3).
pub fn ack_for_error(invite: &RawMessage, resp: &RawMessage) -> Vec<u8> {
    same_transaction_request(invite, "ACK", resp.header("To").unwrap_or(""))
}

/// A CANCEL for a pending INVITE (RFC 3261 9.1).
pub fn cancel_for(invite: &RawMessage) -> Vec<u8> {
    same_transaction_request(invite, "CANCEL", invite.header("To").unwrap_or(""))
}

impl TransactionLayer {
    pub fn new(timers: Timers) -> Self {
        Self {
            timers,
            txs: HashMap::new(),
            heap: BinaryHeap::new(),
            accepted: HashMap::new(),
            capacity: DEFAULT_CAPACITY,
        }
    }

    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Our requests still waiting for a final answer (a stop waits for its BYEs).
    pub fn awaiting_answers(&self) -> usize {
        self.txs
            .iter()
            .filter(|(k, t)| {
                k.side() == Side::Client
                    && matches!(t.state, State::Calling | State::Trying | State::Proceeding)
            })
            .count()
    }

    pub fn state(&self, key: &TxKey) -> Option<State> {
        self.txs.get(key).map(|t| t.state)
    }

    /// The original request of a transaction (the INVITE a CANCEL names, say).
    pub fn request(&self, key: &TxKey) -> Option<&RawMessage> {
        self.txs.get(key).map(|t| &t.request)
    }

    /// The earliest armed timer (possibly one already cancelled: waking early is harmless).
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    fn arm(&mut self, key: &TxKey, timer: Timer, at: u64) {
        if let Some(tx) = self.txs.get_mut(key) {
            arm(&mut self.heap, tx, key, timer, at);
        }
    }

    fn remove(&mut self, key: &TxKey) -> Option<Tx> {
        let tx = self.txs.remove(key)?;
        if tx.kind == Kind::InviteServer
            && let (Some(cid), Some((n, _))) = (tx.request.header("Call-ID"), cseq(&tx.request))
            && let Some(v) = self.accepted.get_mut(cid)
        {
            v.retain(|(m, k)| !(*m == n && k == key));
            if v.is_empty() {
                self.accepted.remove(cid);
            }
        }
        Some(tx)
    }

    /// Enter a linger state for `wait` ms, or end at once on a reliable transport (wait 0).
    fn linger(&mut self, key: &TxKey, timer: Timer, wait: u64, now: u64) {
        if wait == 0 {
            self.remove(key);
        } else {
            self.arm(key, timer, now + wait);
        }
    }

    /// A request from the network.
    pub fn receive_request(&mut self, msg: RawMessage, peer: Peer, now: u64) -> Vec<Output> {
        let key = server_key(&msg);
        let is_ack = msg.method() == Some("ACK");
        let t = self.timers;
        if let Some(tx) = self.txs.get_mut(&key) {
            if is_ack {
                return match (tx.kind, tx.state) {
                    (Kind::InviteServer, State::Completed) => {
                        tx.state = State::Confirmed;
                        disarm(tx, &[Timer::G, Timer::H]);
                        let wait = if peer.reliable() { 0 } else { t.t4 };
                        self.linger(&key, Timer::I, wait, now);
                        vec![]
                    }
                    // Some phones reuse the INVITE's branch for the ACK of a 2xx.
                    (Kind::InviteServer, State::Accepted) => {
                        tx.acked = true;
                        disarm(tx, &[Timer::G]);
                        vec![Output::Ack { msg, peer }]
                    }
                    _ => vec![],
                };
            }
            // A retransmitted request: repeat our last response, if any.
            return match tx.state {
                State::Proceeding | State::Completed | State::Accepted
                    if !tx.last_sent.is_empty() =>
                {
                    vec![Output::Send {
                        peer,
                        bytes: tx.last_sent.clone(),
                    }]
                }
                _ => vec![],
            };
        }
        if is_ack {
            let invite = msg
                .header("Call-ID")
                .zip(cseq(&msg))
                .and_then(|(c, (n, _))| self.accepted.get(c)?.iter().find(|(m, _)| *m == n));
            if let Some((_, k)) = invite
                && let Some(tx) = self.txs.get_mut(k)
            {
                tx.acked = true;
                disarm(tx, &[Timer::G]);
            }
            return vec![Output::Ack { msg, peer }];
        }
        if msg.method() == Some("BYE") {
            // A BYE in the dialog says the 2xx arrived (its ACK was lost or
            // is late): repeating the 2xx until timer L would only answer a
            // call that is ending.
            if let Some(invites) = msg.header("Call-ID").and_then(|c| self.accepted.get(c)) {
                for (_, k) in invites {
                    if let Some(tx) = self.txs.get_mut(k) {
                        tx.acked = true;
                        disarm(tx, &[Timer::G]);
                    }
                }
            }
        }
        if self.txs.len() >= self.capacity {
            return vec![Output::Send {
                peer,
                bytes: super::wire::response(
                    &msg,
                    503,
                    "Service Unavailable",
                    None,
                    &[("Retry-After", "5".into())],
                ),
            }];
        }
        let invite = msg.method() == Some("INVITE");
        let mut out = Vec::new();
        let mut last_sent = Vec::new();
        if invite {
            // 17.2.1: answer at once so the caller stops retransmitting.
            last_sent = super::wire::response(&msg, 100, "Trying", None, &[]);
            out.push(Output::Send {
                peer,
                bytes: last_sent.clone(),
            });
        }
        self.txs.insert(
            key.clone(),
            Tx {
                kind: if invite {
                    Kind::InviteServer
                } else {
                    Kind::NonInviteServer
                },
                state: if invite {
                    State::Proceeding
                } else {
                    State::Trying
                },
                peer,
                request: msg.clone(),
                last_sent,
                ack: None,
                acked: false,
                interval: t.t1,
                timers: Vec::new(),
            },
        );
        out.push(Output::Request { key, msg, peer });
        out
    }

    /// The transaction user answers a server transaction.
    pub fn respond(
        &mut self,
        key: &TxKey,
        bytes: Vec<u8>,
        now: u64,
    ) -> Result<Vec<Output>, TxError> {
        let code = RawMessage::parse_head(&bytes)
            .ok()
            .as_ref()
            .and_then(status_code)
            .ok_or(TxError::NotAResponse)?;
        let t = self.timers;
        let tx = self.txs.get_mut(key).ok_or(TxError::Unknown)?;
        let heap = &mut self.heap;
        let out = vec![Output::Send {
            peer: tx.peer,
            bytes: bytes.clone(),
        }];
        match (tx.kind, tx.state) {
            (Kind::InviteServer, State::Proceeding) => {
                tx.last_sent = bytes;
                match code {
                    100..=199 => {}
                    200..=299 => {
                        tx.state = State::Accepted;
                        tx.interval = t.t1;
                        if let (Some(cid), Some((n, _))) =
                            (tx.request.header("Call-ID"), cseq(&tx.request))
                        {
                            self.accepted
                                .entry(cid.to_owned())
                                .or_default()
                                .push((n, key.clone()));
                        }
                        // 13.3.1.4: the 2xx is repeated over any transport until the ACK.
                        arm(heap, tx, key, Timer::G, now + t.t1);
                        arm(heap, tx, key, Timer::L, now + 64 * t.t1);
                    }
                    _ => {
                        tx.state = State::Completed;
                        tx.interval = t.t1;
                        if !tx.peer.reliable() {
                            arm(heap, tx, key, Timer::G, now + t.t1);
                        }
                        arm(heap, tx, key, Timer::H, now + 64 * t.t1);
                    }
                }
                Ok(out)
            }
            (Kind::InviteServer, State::Accepted) if (200..300).contains(&code) => {
                tx.last_sent = bytes;
                Ok(out)
            }
            (Kind::NonInviteServer, State::Trying | State::Proceeding) => {
                tx.last_sent = bytes;
                if code < 200 {
                    tx.state = State::Proceeding;
                } else {
                    tx.state = State::Completed;
                    let wait = if tx.peer.reliable() { 0 } else { 64 * t.t1 };
                    self.linger(key, Timer::J, wait, now);
                }
                Ok(out)
            }
            // Too late: the transaction already has its final answer.
            _ => Ok(vec![]),
        }
    }

    /// The transaction user sends a request (not an ACK) in a new client transaction.
    pub fn send_request(
        &mut self,
        bytes: Vec<u8>,
        peer: Peer,
        now: u64,
    ) -> Result<(TxKey, Vec<Output>), TxError> {
        let msg = RawMessage::parse(&bytes).map_err(|_| TxError::NotARequest)?;
        if !msg.is_request() || msg.method() == Some("ACK") {
            return Err(TxError::NotARequest);
        }
        if self.txs.len() >= self.capacity {
            return Err(TxError::Full);
        }
        let key = client_key(&msg);
        let invite = msg.method() == Some("INVITE");
        let t = self.timers;
        let mut tx = Tx {
            kind: if invite {
                Kind::InviteClient
            } else {
                Kind::NonInviteClient
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            peer,
            request: msg,
            last_sent: bytes.clone(),
            ack: None,
            acked: false,
            interval: t.t1,
            timers: Vec::new(),
        };
        let (retransmit, timeout) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        if !peer.reliable() {
            arm(&mut self.heap, &mut tx, &key, retransmit, now + t.t1);
        }
        arm(&mut self.heap, &mut tx, &key, timeout, now + 64 * t.t1);
        self.txs.insert(key.clone(), tx);
        Ok((key, vec![Output::Send { peer, bytes }]))
    }

    /// The transaction user acknowledges a 2xx of its INVITE; the ACK is
    /// repeated for every retransmission of that 2xx while the transaction lingers.
    pub fn ack_2xx(&mut self, key: &TxKey, ack: Vec<u8>, peer: Peer) -> Vec<Output> {
        if let Some(tx) = self.txs.get_mut(key) {
            tx.ack = Some(ack.clone());
            tx.peer = peer;
        }
        vec![Output::Send { peer, bytes: ack }]
    }

    /// A response from the network.
    pub fn receive_response(&mut self, msg: RawMessage, now: u64) -> Vec<Output> {
        let Some(code) = status_code(&msg) else {
            return vec![];
        };
        let key = client_key(&msg);
        let t = self.timers;
        let Some(tx) = self.txs.get_mut(&key) else {
            tracing::debug!(code, branch = %key.branch, "response matches no transaction");
            return vec![];
        };
        let heap = &mut self.heap;
        let peer = tx.peer;
        let repeat_ack = |tx: &Tx| match &tx.ack {
            Some(ack) => vec![Output::Send {
                peer,
                bytes: ack.clone(),
            }],
            None => vec![],
        };
        match (tx.kind, tx.state) {
            (Kind::InviteClient, State::Calling | State::Proceeding) => match code {
                100..=199 => {
                    tx.state = State::Proceeding;
                    disarm(tx, &[Timer::A]);
                    vec![Output::Response { key, msg }]
                }
                200..=299 => {
                    tx.state = State::Accepted;
                    disarm(tx, &[Timer::A, Timer::B]);
                    arm(heap, tx, &key, Timer::M, now + 64 * t.t1);
                    vec![Output::Response { key, msg }]
                }
                _ => {
                    tx.state = State::Completed;
                    let ack = ack_for_error(&tx.request, &msg);
                    tx.ack = Some(ack.clone());
                    disarm(tx, &[Timer::A, Timer::B]);
                    let wait = if peer.reliable() { 0 } else { 32_000 };
                    self.linger(&key, Timer::D, wait, now);
                    vec![
                        Output::Send { peer, bytes: ack },
                        Output::Response { key, msg },
                    ]
                }
            },
            (Kind::InviteClient, State::Accepted) if (200..300).contains(&code) => repeat_ack(tx),
            (Kind::InviteClient, State::Completed) if code >= 300 => repeat_ack(tx),
            (Kind::NonInviteClient, State::Trying | State::Proceeding) => {
                if code < 200 {
                    tx.state = State::Proceeding;
                } else {
                    tx.state = State::Completed;
                    disarm(tx, &[Timer::E, Timer::F]);
                    let wait = if peer.reliable() { 0 } else { t.t4 };
                    self.linger(&key, Timer::K, wait, now);
                }
                vec![Output::Response { key, msg }]
            }
            _ => vec![],
        }
    }

    /// Fire every timer due at `now`.
    pub fn poll_timers(&mut self, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(Reverse((at, _, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key, timer))) = self.heap.pop() else {
                break;
            };
            let armed = self
                .txs
                .get(&key)
                .is_some_and(|tx| tx.timers.contains(&(timer, at)));
            if armed {
                self.fire(&key, timer, now, &mut out);
            }
        }
        out
    }

    fn fire(&mut self, key: &TxKey, timer: Timer, now: u64, out: &mut Vec<Output>) {
        let t = self.timers;
        let Some(tx) = self.txs.get_mut(key) else {
            return;
        };
        tx.timers.retain(|(x, _)| *x != timer);
        let call_id = tx.request.header("Call-ID").unwrap_or("").to_owned();
        match timer {
            Timer::A | Timer::E | Timer::G => {
                out.push(Output::Send {
                    peer: tx.peer,
                    bytes: tx.last_sent.clone(),
                });
                tx.interval = match (timer, tx.state) {
                    (Timer::A, _) => tx.interval * 2,
                    (Timer::E, State::Proceeding) => t.t2,
                    _ => (tx.interval * 2).min(t.t2),
                };
                let at = now + tx.interval;
                self.arm(key, timer, at);
            }
            Timer::B | Timer::F | Timer::H => {
                self.remove(key);
                out.push(Output::Timeout {
                    key: key.clone(),
                    call_id,
                });
            }
            Timer::L => {
                if let Some(tx) = self.remove(key)
                    && !tx.acked
                {
                    out.push(Output::Unacknowledged {
                        key: key.clone(),
                        call_id,
                    });
                }
            }
            Timer::D | Timer::I | Timer::J | Timer::K | Timer::M => {
                self.remove(key);
            }
        }
    }
}

fn arm(heap: &mut TimerHeap, tx: &mut Tx, key: &TxKey, timer: Timer, at: u64) {
    tx.timers.retain(|(t, _)| *t != timer);
    tx.timers.push((timer, at));
    heap.push(Reverse((at, key.clone(), timer)));
}

fn disarm(tx: &mut Tx, timers: &[Timer]) {
    tx.timers.retain(|(t, _)| !timers.contains(t));
}

#[cfg(test)]
mod tests;
