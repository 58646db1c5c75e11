//! The SIP endpoint: checks each message, runs it through the transaction
//! layer and hands what comes out to the registrar or the B2BUA. It owns the
//! sockets' send side and the tokio task that drives the transaction timers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::sync::mpsc::{Sender, channel, error::TrySendError};

use super::flow::{Peer, Transport};
use super::metrics::SipMetrics;
use super::registrar::{Presence, Registrar};
use super::transaction::{Output, Side, Timers, TransactionLayer, TxKey};
use super::wire::{KNOWN_METHODS, RawMessage, WireError, addr_uri, param, response, uri_user};
use ctihost_ground::clock::now_ms;

/// What an initial INVITE gets before any transaction exists.
pub enum Screen {
    /// From a trunk, or with a fresh nonce of ours: a transaction handles it.
    Pass,
    /// One stateless answer (a refusal or a challenge), never retransmitted.
    Answer(Vec<u8>),
    /// Nothing at all.
    Drop,
}

/// What the endpoint hands calls to (the B2BUA). Every callback is given
/// the endpoint, as ezk's layers are, so the handler needs no pointer back
/// to it and the endpoint is whole from its construction.
pub trait CallHandler: Send + Sync {
    /// An initial INVITE, before any transaction exists for it.
    fn screen_invite(&self, msg: &RawMessage, peer: Peer) -> Screen;
    /// A new INVITE, BYE, CANCEL or INFO, in its server transaction.
    fn on_request(&self, ep: &Arc<SipEndpoint>, key: TxKey, msg: &RawMessage, peer: Peer);
    /// The ACK of one of our 2xx answers.
    fn on_ack(&self, ep: &Arc<SipEndpoint>, msg: &RawMessage);
    /// An answer in one of our client transactions.
    fn on_response(&self, ep: &Arc<SipEndpoint>, key: &TxKey, msg: &RawMessage);
    /// One of our requests got no answer at all (timer B or F).
    fn on_timeout(&self, ep: &Arc<SipEndpoint>, key: &TxKey, call_id: &str);
    /// Our 2xx was never acknowledged (timer H).
    fn on_unacknowledged(&self, ep: &Arc<SipEndpoint>, call_id: &str);
    /// A phone signed on or off.
    fn registration_changed(&self, sip_user: &str);
    /// Call legs still open (a stop waits for none).
    fn live_legs(&self) -> usize;
    /// What the handler's own digest checks (trunks') refused.
    fn auth_figures(&self) -> super::digest::AuthFigures;
    /// A TLS connection from `peer` presented this verified client
    /// certificate (DER): a trunk may be known by it.
    fn tls_client_certificate(&self, _peer: SocketAddr, _der: &[u8]) {}
    /// A TCP or TLS connection is gone: forget what was known of it.
    fn connection_closed(&self, _peer: SocketAddr) {}
}

pub struct SipEndpoint {
    pub registrar: Arc<Registrar>,
    /// Calls go here; without one (a registrar-only endpoint) they get 501.
    calls: Option<Arc<dyn CallHandler>>,
    max_bytes: usize,
    layer: Mutex<TransactionLayer>,
    udp: Vec<(Arc<UdpSocket>, SocketAddr)>,
    tcp_local: Option<SocketAddr>,
    tls_local: Option<SocketAddr>,
    /// Opens TLS connections we start (to a trunk that takes TLS); none:
    /// TLS peers are reached only over the connections they opened.
    tls_client: Option<tokio_rustls::TlsConnector>,
    /// Open TCP and TLS connections by remote address: which of the two,
    /// and the writer task's queue.
    tcp: Mutex<HashMap<SocketAddr, Connection>>,
    /// Wakes the timer task when a transaction may have armed an earlier timer.
    wake: Notify,
    metrics: Arc<dyn SipMetrics>,
    /// While draining: the Retry-After (seconds) of the 503 new calls get;
    /// 0 when not draining.
    draining: AtomicU32,
    /// Requests per source per second (trunks exempt).
    rate: super::source_rate::SourceRate,
}

/// An open TCP or TLS connection: which of the two, and its writer's queue.
type Connection = (Transport, Sender<Vec<u8>>);

impl SipEndpoint {
    pub fn new(
        registrar: Arc<Registrar>,
        max_bytes: usize,
        udp: Vec<(Arc<UdpSocket>, SocketAddr)>,
        tcp_local: Option<SocketAddr>,
        metrics: Arc<dyn SipMetrics>,
        calls: Option<Arc<dyn CallHandler>>,
    ) -> Self {
        Self {
            registrar,
            calls,
            max_bytes,
            layer: Mutex::new(TransactionLayer::new(Timers::default())),
            udp,
            tcp_local,
            tls_local: None,
            tls_client: None,
            tcp: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            metrics,
            draining: AtomicU32::new(0),
            rate: super::source_rate::SourceRate::new(0, Vec::new()),
        }
    }

    /// SIP over TLS: our listening address (for Via and Contact) and the
    /// client side for connections we open.
    pub fn with_tls(
        mut self,
        local: Option<SocketAddr>,
        client: Option<tokio_rustls::TlsConnector>,
    ) -> Self {
        self.tls_local = local;
        self.tls_client = client;
        self
    }

    /// At most `per_second` requests a second from one address (0: no
    /// limit); `exempt` (the trunks) are never limited.
    pub fn with_request_limit(mut self, per_second: u32, exempt: Vec<std::net::IpAddr>) -> Self {
        self.rate = super::source_rate::SourceRate::new(per_second, exempt);
        self
    }

    /// Digest refusals of phones and trunks together: replays of a nonce
    /// count, and attempts refused unchecked for too many failures.
    pub fn auth_figures(&self) -> super::digest::AuthFigures {
        let mut f = self.registrar.auth_figures();
        if let Some(b) = &self.calls {
            let t = b.auth_figures();
            f.replays += t.replays;
            f.throttled += t.throttled;
            f.failing_sources += t.failing_sources;
        }
        f
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Our address as the peer sees it on that transport (for Via and Contact).
    pub fn local_for(&self, peer: Peer) -> Option<SocketAddr> {
        let udp = self.udp.get(peer.listener as usize).map(|(_, a)| *a);
        match peer.transport {
            Transport::Udp => udp,
            Transport::Tcp => self.tcp_local.or(udp),
            Transport::Tls => self.tls_local.or(self.tcp_local).or(udp),
        }
    }

    /// A bound refused something (counted in /metrics).
    pub fn bound_hit(&self, bound: &'static str) {
        self.metrics.bound_hit(bound);
    }

    /// Connections open now, and those from one address.
    pub fn connections(&self, from: Option<std::net::IpAddr>) -> usize {
        let conns = self.tcp.lock();
        match from {
            Some(ip) => conns.keys().filter(|a| a.ip() == ip).count(),
            None => conns.len(),
        }
    }

    pub fn connection_opened(&self, peer: SocketAddr, transport: Transport, tx: Sender<Vec<u8>>) {
        self.tcp.lock().insert(peer, (transport, tx));
    }

    pub fn has_connection(&self, peer: SocketAddr) -> bool {
        self.tcp.lock().contains_key(&peer)
    }

    pub fn connection_closed(&self, peer: SocketAddr) {
        self.tcp.lock().remove(&peer);
        if let Some(b) = &self.calls {
            b.connection_closed(peer);
        }
    }

    /// The verified client certificate a TLS peer presented.
    pub fn tls_client_certificate(&self, peer: SocketAddr, der: &[u8]) {
        if let Some(b) = &self.calls {
            b.tls_client_certificate(peer, der);
        }
    }

    /// Put bytes on the wire; over TCP, on the open connection or a new one.
    pub fn send(self: &Arc<Self>, peer: Peer, bytes: Vec<u8>) {
        let first = bytes.split(|b| *b == b'\r').next().unwrap_or_default();
        self.metrics.sip_message("out", first);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let first = String::from_utf8_lossy(first);
            tracing::debug!(to = %peer.addr, transport = ?peer.transport, message = %first, "SIP out");
        }
        match peer.transport {
            Transport::Udp => {
                let Some((socket, _)) = self.udp.get(peer.listener as usize) else {
                    tracing::warn!(to = %peer.addr, "no UDP socket to send on");
                    return;
                };
                if let Err(e) = socket.try_send_to(&bytes, peer.addr) {
                    tracing::warn!(to = %peer.addr, error = %e, "SIP UDP send failed");
                }
            }
            Transport::Tcp | Transport::Tls => {
                let mut conns = self.tcp.lock();
                let bytes = match conns.get(&peer.addr) {
                    Some((t, q)) if *t == peer.transport => match q.try_send(bytes) {
                        Ok(()) => return,
                        // A peer that does not read what it asked for: its
                        // queue is full, the connection is dropped (the
                        // reader sees its sender gone and closes).
                        Err(TrySendError::Full(_)) => {
                            conns.remove(&peer.addr);
                            self.metrics.bound_hit("tcp-output-queue");
                            ctihost_ground::log_limit::warn_every_second(
                                "tcp-output-queue-full",
                                &format!(
                                    "SIP {} peer {} does not read its answers; connection closed",
                                    peer.transport.via_token(),
                                    peer.addr
                                ),
                            );
                            return;
                        }
                        Err(TrySendError::Closed(b)) => b, // just closed: open a new one
                    },
                    // Never over the other transport's connection: a TLS
                    // message must not leave in clear.
                    Some(_) | None => bytes,
                };
                let tls = match peer.transport {
                    Transport::Tls => {
                        let Some(connector) = self.tls_client.clone() else {
                            self.metrics.bound_hit("tls-no-connection");
                            ctihost_ground::log_limit::warn_every_second(
                                "tls-no-connection",
                                &format!(
                                    "SIP TLS peer {} has no open connection and this host opens none ([sip] tls_ca unset); message dropped",
                                    peer.addr
                                ),
                            );
                            return;
                        };
                        let name = tokio_rustls::rustls::pki_types::ServerName::IpAddress(
                            peer.addr.ip().into(),
                        );
                        Some((connector, name))
                    }
                    _ => None,
                };
                let (tx, rx) = channel(super::transport::OUTPUT_QUEUE);
                let _ = tx.try_send(bytes);
                conns.insert(peer.addr, (peer.transport, tx));
                tokio::spawn(super::transport::connect(self.clone(), peer, rx, tls));
            }
        }
    }

    fn dispatch(self: &Arc<Self>, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Send { peer, bytes } => self.send(peer, bytes),
                Output::Request { key, msg, peer } => self.on_request(key, msg, peer),
                Output::Ack { msg, .. } => {
                    if let Some(b) = &self.calls {
                        b.on_ack(self, &msg);
                    }
                }
                Output::Response { key, msg } => {
                    if let Some(b) = &self.calls {
                        b.on_response(self, &key, &msg);
                    }
                }
                Output::Timeout { key, call_id } => {
                    tracing::debug!(call_id, method = %key.method, side = ?key.side(), "SIP transaction timed out");
                    if let Some(b) = &self.calls
                        && key.side() == Side::Client
                    {
                        b.on_timeout(self, &key, &call_id);
                    }
                }
                Output::Unacknowledged { call_id, .. } => {
                    if let Some(b) = &self.calls {
                        b.on_unacknowledged(self, &call_id);
                    }
                }
            }
        }
    }

    /// Answer a server transaction.
    pub fn respond(self: &Arc<Self>, key: &TxKey, bytes: Vec<u8>) {
        let out = self.layer.lock().respond(key, bytes, now_ms());
        match out {
            Ok(out) => self.dispatch(out),
            Err(e) => tracing::debug!(error = %e, method = %key.method, "response not sent"),
        }
        self.wake.notify_one();
    }

    /// Send a request in a new client transaction.
    pub fn request(self: &Arc<Self>, bytes: Vec<u8>, peer: Peer) -> Option<TxKey> {
        let out = self.layer.lock().send_request(bytes, peer, now_ms());
        self.wake.notify_one();
        match out {
            Ok((key, out)) => {
                self.dispatch(out);
                Some(key)
            }
            Err(e) => {
                tracing::warn!(error = %e, to = %peer.addr, "SIP request not sent");
                None
            }
        }
    }

    /// Acknowledge a 2xx of one of our INVITEs.
    pub fn ack_2xx(self: &Arc<Self>, key: &TxKey, ack: Vec<u8>, peer: Peer) {
        let out = self.layer.lock().ack_2xx(key, ack, peer);
        self.dispatch(out);
    }

    /// Drive the transaction timers; runs for the life of the endpoint.
    pub async fn run_timers(self: Arc<Self>, mut shutdown: ctihost_ground::shutdown::Shutdown) {
        loop {
            let next = self.layer.lock().next_deadline();
            let now = now_ms();
            match next {
                Some(at) if at <= now => {}
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(at - now)) => {}
                        _ = self.wake.notified() => continue,
                        () = shutdown.recv() => return,
                    }
                }
                None => {
                    tokio::select! {
                        _ = self.wake.notified() => continue,
                        () = shutdown.recv() => return,
                    }
                }
            }
            let out = self.layer.lock().poll_timers(now_ms());
            self.dispatch(out);
        }
    }

    /// Refuse new calls (and OPTIONS probes, so a load balancer or a
    /// dispatcher takes this host out) with 503 and this Retry-After;
    /// None: take calls again.
    pub fn set_draining(&self, retry_after_secs: Option<u32>) {
        let v = retry_after_secs.map_or(0, |s| s.max(1));
        self.draining.store(v, Ordering::Relaxed);
        self.metrics.set_draining(v > 0);
    }

    pub fn draining(&self) -> Option<u32> {
        match self.draining.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s),
        }
    }

    /// Open call legs of the B2BUA (0 without one).
    pub fn live_legs(&self) -> usize {
        self.calls.as_ref().map_or(0, |b| b.live_legs())
    }

    /// Our requests (BYE, CANCEL, INVITE) still waiting for a final answer.
    pub fn awaiting_answers(&self) -> usize {
        self.layer.lock().awaiting_answers()
    }

    fn refused_draining(&self, msg: &RawMessage, retry_after: u32) -> Vec<u8> {
        self.metrics.drain_refused();
        response(
            msg,
            503,
            "Service Unavailable - draining",
            None,
            &[("Retry-After", retry_after.to_string())],
        )
    }

    /// One message from the network.
    pub fn receive(self: &Arc<Self>, bytes: &[u8], peer: Peer) {
        let msg = match RawMessage::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                // A request whose head reads but whose Content-Length is
                // wrong for the datagram gets 400 (RFC 4475 3.1.2.2, 3.1.2.3);
                // the rest cannot be answered.
                if matches!(e, WireError::ShortBody | WireError::BadContentLength)
                    && let Ok(head) = RawMessage::parse_head(bytes)
                    && head.is_request()
                    && head.method() != Some("ACK")
                    && REQUIRED.iter().all(|h| head.header(h).is_some())
                {
                    let reason = match e {
                        WireError::ShortBody => "Bad Request - body shorter than Content-Length",
                        _ => "Bad Request - bad Content-Length",
                    };
                    return self.send(peer, response(&head, 400, reason, None, &[]));
                }
                tracing::debug!(source = %peer.addr, error = %e, "unparseable SIP message dropped");
                return;
            }
        };
        self.metrics.sip_message("in", msg.start.as_bytes());
        if !msg.is_request() {
            let out = self.layer.lock().receive_response(msg, now_ms());
            self.dispatch(out);
            self.wake.notify_one();
            return;
        }
        if !self.rate.allow(peer.addr.ip(), now_ms()) {
            self.metrics.bound_hit("sip_requests_per_source");
            ctihost_ground::log_limit::warn_every_second(
                "sip_requests_per_source",
                "SIP requests over [sip] max_requests_per_source dropped unanswered",
            );
            return;
        }
        if let Some(resp) = self.refusal(&msg, bytes.len()) {
            // An ACK is never answered: a bad one is just dropped.
            if msg.method() != Some("ACK") {
                self.send(peer, resp);
            }
            return;
        }
        if let Some(retry_after) = self.draining()
            && (msg.method() == Some("OPTIONS")
                || (msg.method() == Some("INVITE")
                    && msg.header("To").and_then(|t| param(t, "tag")).is_none()))
        {
            // Stateless: a retransmission gets the same answer again.
            return self.send(peer, self.refused_draining(&msg, retry_after));
        }
        if msg.method() == Some("INVITE")
            && let Some(b) = &self.calls
        {
            match b.screen_invite(&msg, peer) {
                Screen::Pass => {}
                Screen::Answer(resp) => return self.send(peer, resp),
                Screen::Drop => return,
            }
        }
        let out = self.layer.lock().receive_request(msg, peer, now_ms());
        self.dispatch(out);
        self.wake.notify_one();
    }

    /// A stateless answer for a request that cannot be processed.
    fn refusal(&self, msg: &RawMessage, len: usize) -> Option<Vec<u8>> {
        let method = msg.method().unwrap_or("");
        if len > self.max_bytes {
            return Some(response(msg, 513, "Message Too Large", None, &[]));
        }
        let missing = REQUIRED.into_iter().find(|h| msg.header(h).is_none());
        if let Some(h) = missing {
            return Some(response(
                msg,
                400,
                &format!("Bad Request - missing {h}"),
                None,
                &[],
            ));
        }
        if !KNOWN_METHODS.contains(&method) {
            return Some(not_implemented(msg));
        }
        use super::syntax::Refusal;
        let refusal = super::syntax::check_request(msg).err()?;
        tracing::debug!(method, ?refusal, "request refused by the grammar check");
        Some(match refusal {
            Refusal::BadRequest(what) => {
                response(msg, 400, &format!("Bad Request - {what}"), None, &[])
            }
            Refusal::Version => response(msg, 505, "Version Not Supported", None, &[]),
            Refusal::UnsupportedScheme => response(msg, 416, "Unsupported URI Scheme", None, &[]),
            Refusal::BadExtension(tags) => response(
                msg,
                420,
                "Bad Extension",
                None,
                &[("Unsupported", tags.join(", "))],
            ),
            Refusal::NotAcceptable => response(
                msg,
                406,
                "Not Acceptable - answers carry application/sdp",
                None,
                &[],
            ),
            Refusal::UnsupportedMediaType => response(
                msg,
                415,
                "Unsupported Media Type",
                None,
                &[("Accept", "application/sdp".into())],
            ),
        })
    }

    fn on_request(self: &Arc<Self>, key: TxKey, msg: RawMessage, peer: Peer) {
        let method = msg.method().unwrap_or("").to_owned();
        let calls = self.calls.as_ref();
        match method.as_str() {
            "REGISTER" => {
                let r = self.registrar.handle(&msg, peer, now_ms());
                self.respond(&key, r.response);
                if r.presence != Presence::Unchanged
                    && let (Some(b), Some(user)) =
                        (calls, msg.header("To").map(addr_uri).and_then(uri_user))
                {
                    b.registration_changed(user);
                }
            }
            "OPTIONS" => self.respond(
                &key,
                response(
                    &msg,
                    200,
                    "OK",
                    Some("o1"),
                    &[
                        ("Allow", ALLOW.into()),
                        ("Accept", "application/sdp".into()),
                    ],
                ),
            ),
            "INVITE" | "BYE" | "CANCEL" | "INFO" if calls.is_some() => {
                if let Some(b) = calls {
                    b.on_request(self, key, &msg, peer);
                }
            }
            _ => self.respond(&key, not_implemented(&msg)),
        }
    }
}

fn not_implemented(msg: &RawMessage) -> Vec<u8> {
    response(
        msg,
        501,
        "Not Implemented",
        None,
        &[("Allow", ALLOW.into())],
    )
}

/// Headers every request needs before anything else is read (RFC 3261 8.1.1).
const REQUIRED: [&str; 5] = ["Via", "From", "To", "Call-ID", "CSeq"];

pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, INFO, REGISTER, OPTIONS";
