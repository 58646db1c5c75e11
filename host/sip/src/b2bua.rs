//! Back-to-back user agent, the transaction user of the SIP endpoint: an
//! INVITE from a trunk becomes an ACD call; the ACD's commands become the
//! agent leg (INVITE, CANCEL, BYE) and the caller's answers (180, 200 with the
//! agent's SDP, errors, BYE). Retransmissions and ACKs of errors belong to
//! the transaction layer; this module only keeps dialogs. SDP is passed
//! through until the media relay takes over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use super::dialog::Dialog;
use super::digest::{Authenticator, Verdict};
use super::endpoint::{CallHandler, Screen, SipEndpoint};
use super::flow::Peer;
use super::registrar::Registrar;
use super::transaction::{TxKey, cancel_for, status_code};
use super::wire::{
    RawMessage, addr_uri, param, response, response_head, uri_socket_addr, uri_user, with_body,
};
use ctihost_acd::{CallControl, CallEvent, Command, MediaCommand, OfferFailure};
use ctihost_ground::clock::now_ms;
use ctihost_media::EventSink;

/// Where the calls' events go: the driver of the call-center core. A new
/// call may be refused at its door (it is behind); every other event is
/// always taken, so no hang-up is lost.
pub trait CallSink: Send + Sync {
    /// A new call's `Arrived`; false: refused, the caller is turned away.
    fn arrive(&self, event: CallEvent) -> bool;
    fn send(&self, event: CallEvent);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    Calling,
    Ringing,
    Answered,
    Cancelling,
}

struct AgentLeg {
    agent: String,
    /// Our INVITE, for the CANCEL that must copy it and the dialog.
    invite: RawMessage,
    /// Set by the phone's 2xx: tags, CSeq, its Contact and route set.
    dialog: Option<Dialog>,
    peer: Peer,
    state: LegState,
    sdp: Vec<u8>,
    content_type: Option<String>,
    /// Offered SRTP only: a plain answer ends the leg.
    srtp: bool,
}

struct Call {
    invite: RawMessage,
    key: TxKey,
    peer: Peer,
    to_tag: String,
    /// Our side of the caller's dialog: the BYE and re-INVITE we send
    /// follow its route set (a record-routing proxy stays on the path).
    dialog: Dialog,
    ringing_sent: bool,
    answered: bool,
    /// The call's RTP relay (None: media passes end to end).
    relay: Option<ctihost_media::Relay>,
    /// The SDP offered to agents' phones (the caller's, or rewritten for the relay).
    offer: Vec<u8>,
    /// The host's own answer to the caller (with the relay): sent when the
    /// host answers (IVR, music) and again to the caller's re-INVITEs.
    answer: Vec<u8>,
}

/// How INVITEs are recognised as coming from a trunk.
pub struct Trunks {
    /// Trunk name by source address.
    pub by_address: Vec<(String, Vec<IpAddr>)>,
    /// Trunk name by digest user name, for trunks that authenticate instead.
    pub by_user: HashMap<String, String>,
    pub auth: Authenticator,
    /// What an INVITE from a source that is no trunk gets.
    pub unknown_sources: UnknownSources,
    /// Trunks whose calls must be SRTP: a plain offer gets 488.
    pub srtp_required: std::collections::HashSet<String>,
    /// Trunks whose INVITEs must come over TLS: others get 403.
    pub tls_required: std::collections::HashSet<String>,
    /// Trunks known by their TLS client certificate (verified against the
    /// configured client CA): trunk name, the DNS name the certificate
    /// must be valid for.
    pub by_certificate: Vec<(String, String)>,
}

/// What an INVITE from an address that is no trunk gets (with no digest
/// trunk configured): one stateless 403, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownSources {
    /// One 403, sent once, never retransmitted.
    #[default]
    Refuse,
    /// No answer at all (the source cannot even tell a host is there).
    Ignore,
}

pub struct B2bua {
    registrar: Arc<Registrar>,
    /// Where the calls' events go: the driver of the call-center core.
    center: Arc<dyn CallSink>,
    trunks: Trunks,
    /// Agent id by SIP user.
    agents: HashMap<String, String>,
    /// Caller legs by their Call-ID (the ACD's call id).
    calls: Mutex<HashMap<String, Call>>,
    /// Agent leg Call-ID -> (caller's Call-ID, leg).
    legs: Mutex<HashMap<String, (String, AgentLeg)>>,
    media: Option<Arc<ctihost_media::Media>>,
    /// SIP users whose phones are offered SRTP only (a plain answer ends
    /// the offer).
    srtp_phones: std::collections::HashSet<String>,
    /// TLS connections whose client certificate names a trunk: the trunk.
    certified: Mutex<HashMap<std::net::SocketAddr, String>>,
}

fn token() -> String {
    ctihost_ground::random::hex_token::<8>()
}

const NO_DIALOG: (u16, &str) = (481, "Call/Transaction Does Not Exist");

impl B2bua {
    /// Screen an INVITE before the transaction layer: one that opens no
    /// call of a trunk costs the host one small stateless answer at most (no
    /// 100 Trying, no retransmissions), so a forged source cannot use the
    /// host as an amplifier.
    pub fn screen_invite(&self, msg: &RawMessage, peer: Peer) -> Screen {
        let in_dialog = msg.header("To").and_then(|t| param(t, "tag")).is_some();
        let t = &self.trunks;
        if in_dialog
            || t.by_address
                .iter()
                .any(|(_, ips)| ips.contains(&peer.addr.ip()))
            || self.certified_trunk(peer).is_some()
        {
            return Screen::Pass;
        }
        let now_secs = now_ms() / 1000;
        if !t.by_user.is_empty() {
            if t.auth
                .has_fresh_nonce(msg.header("Proxy-Authorization"), now_secs)
            {
                return Screen::Pass;
            }
            let extra: Vec<(&str, String)> = t
                .auth
                .challenges(now_secs, false)
                .into_iter()
                .map(|c| ("Proxy-Authenticate", c))
                .collect();
            return Screen::Answer(response(
                msg,
                407,
                "Proxy Authentication Required",
                Some(&token()),
                &extra,
            ));
        }
        ctihost_ground::log_limit::warn_every_second(
            "invite-not-a-trunk",
            &format!(
                "INVITE from an address that is no trunk refused (last from {})",
                peer.addr
            ),
        );
        match t.unknown_sources {
            UnknownSources::Ignore => Screen::Drop,
            UnknownSources::Refuse => Screen::Answer(response(
                msg,
                403,
                "Forbidden - not a trunk",
                Some(&token()),
                &[],
            )),
        }
    }

    /// What the trunks' digest check refused (metrics).
    /// Caller legs and agent legs still open (a stop waits for none).
    pub fn live_legs(&self) -> usize {
        self.calls.lock().len() + self.legs.lock().len()
    }

    pub fn trunk_auth_figures(&self) -> super::digest::AuthFigures {
        self.trunks.auth.figures()
    }

    pub fn new(
        registrar: Arc<Registrar>,
        center: Arc<dyn CallSink>,
        trunks: Trunks,
        agents: HashMap<String, String>,
        media: Option<Arc<ctihost_media::Media>>,
    ) -> Self {
        Self {
            registrar,
            center,
            trunks,
            agents,
            calls: Mutex::new(HashMap::new()),
            legs: Mutex::new(HashMap::new()),
            media,
            srtp_phones: Default::default(),
            certified: Mutex::new(HashMap::new()),
        }
    }

    /// The trunk whose name `der` (a client certificate already verified
    /// against the client CA) is valid for.
    fn trunk_of_certificate(&self, der: &[u8]) -> Option<String> {
        let cert = tokio_rustls::rustls::pki_types::CertificateDer::from(der);
        let cert = webpki::EndEntityCert::try_from(&cert).ok()?;
        self.trunks.by_certificate.iter().find_map(|(trunk, name)| {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(name.as_str()).ok()?;
            cert.verify_is_valid_for_subject_name(&name)
                .is_ok()
                .then(|| trunk.clone())
        })
    }

    /// The trunk a TLS peer proved to be with its certificate.
    fn certified_trunk(&self, peer: Peer) -> Option<String> {
        if peer.transport != super::flow::Transport::Tls {
            return None;
        }
        self.certified.lock().get(&peer.addr).cloned()
    }

    /// Phones (SIP users) offered SRTP only.
    pub fn with_srtp_phones(mut self, users: std::collections::HashSet<String>) -> Self {
        self.srtp_phones = users;
        self
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

    /// This callback's work, with the endpoint that called it.
    fn turn<'a>(&'a self, ep: &'a Arc<SipEndpoint>) -> Turn<'a> {
        Turn { b2bua: self, ep }
    }

    /// Carry out one of the core's commands on this endpoint.
    pub fn execute(&self, ep: &Arc<SipEndpoint>, cmd: Command) {
        self.turn(ep).execute(cmd);
    }
}

impl CallHandler for B2bua {
    fn screen_invite(&self, msg: &RawMessage, peer: Peer) -> Screen {
        B2bua::screen_invite(self, msg, peer)
    }

    fn tls_client_certificate(&self, peer: std::net::SocketAddr, der: &[u8]) {
        match self.trunk_of_certificate(der) {
            Some(trunk) => {
                tracing::info!(%peer, trunk, "TLS client certificate names a trunk");
                self.certified.lock().insert(peer, trunk);
            }
            None => tracing::debug!(%peer, "TLS client certificate names no trunk"),
        }
    }

    fn connection_closed(&self, peer: std::net::SocketAddr) {
        self.certified.lock().remove(&peer);
    }

    fn on_request(&self, ep: &Arc<SipEndpoint>, key: TxKey, msg: &RawMessage, peer: Peer) {
        self.turn(ep).on_request(key, msg, peer);
    }

    fn on_ack(&self, ep: &Arc<SipEndpoint>, msg: &RawMessage) {
        self.turn(ep).on_ack(msg);
    }

    fn on_response(&self, ep: &Arc<SipEndpoint>, key: &TxKey, msg: &RawMessage) {
        self.turn(ep).on_response(key, msg);
    }

    fn on_timeout(&self, ep: &Arc<SipEndpoint>, key: &TxKey, call_id: &str) {
        self.turn(ep).on_timeout(key, call_id);
    }

    fn on_unacknowledged(&self, ep: &Arc<SipEndpoint>, call_id: &str) {
        self.turn(ep).on_unacknowledged(call_id);
    }

    fn registration_changed(&self, sip_user: &str) {
        B2bua::registration_changed(self, sip_user);
    }

    fn live_legs(&self) -> usize {
        B2bua::live_legs(self)
    }

    fn auth_figures(&self) -> super::digest::AuthFigures {
        self.trunk_auth_figures()
    }
}

/// One callback's work: the B2BUA and the endpoint that called it. The
/// endpoint passes itself into each callback (as ezk's layers are handed
/// theirs), so the B2BUA keeps no pointer back to it.
struct Turn<'a> {
    b2bua: &'a B2bua,
    ep: &'a Arc<SipEndpoint>,
}

impl Turn<'_> {
    fn respond(&self, key: &TxKey, bytes: Vec<u8>) {
        self.ep.respond(key, bytes);
    }

    /// Our sent-by and Contact host:port, and the Via transport token, towards a peer.
    fn local(&self, peer: Peer) -> (String, &'static str) {
        let addr = self
            .ep
            .local_for(peer)
            .map(|a| a.to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        (addr, peer.transport.via_token())
    }

    fn contact(&self, peer: Peer) -> String {
        let (local, t) = self.local(peer);
        match peer.transport {
            super::flow::Transport::Udp => format!("<sip:ctihost@{local}>"),
            super::flow::Transport::Tcp | super::flow::Transport::Tls => {
                format!("<sip:ctihost@{local};transport={}>", t.to_ascii_lowercase())
            }
        }
    }

    /// A new INVITE, BYE or CANCEL, in its server transaction.
    fn on_request(&self, key: TxKey, msg: &RawMessage, peer: Peer) {
        let Some(call_id) = msg.header("Call-ID").map(str::to_owned) else {
            return;
        };
        match msg.method() {
            Some("INVITE") => self.on_invite(key, msg, peer, call_id),
            Some("BYE") => self.on_bye(key, msg, call_id),
            Some("CANCEL") => self.on_cancel(key, msg, call_id),
            Some("INFO") => self.on_info(key, msg, call_id),
            _ => {}
        }
    }

    fn on_bye(&self, key: TxKey, msg: &RawMessage, call_id: String) {
        let call = self.b2bua.calls.lock().remove(&call_id);
        if let Some(c) = call {
            self.respond(&key, response(msg, 200, "OK", None, &[]));
            if !c.answered {
                // A BYE before the answer ends the INVITE too.
                self.respond(
                    &c.key,
                    response(&c.invite, 487, "Request Terminated", Some(&c.to_tag), &[]),
                );
            }
            self.b2bua.center.send(CallEvent::CallerHungUp { call_id });
            return;
        }
        let leg = self.b2bua.legs.lock().remove(&call_id);
        match leg {
            Some((caller, _)) => {
                self.respond(&key, response(msg, 200, "OK", None, &[]));
                self.b2bua
                    .center
                    .send(CallEvent::AgentHungUp { call_id: caller });
            }
            None => self.respond(&key, response(msg, NO_DIALOG.0, NO_DIALOG.1, None, &[])),
        }
    }

    fn on_cancel(&self, key: TxKey, msg: &RawMessage, call_id: String) {
        let invite_key = key.for_method("INVITE");
        let mut calls = self.b2bua.calls.lock();
        let Some(c) = calls.get(&call_id).filter(|c| c.key == invite_key) else {
            drop(calls);
            return self.respond(&key, response(msg, NO_DIALOG.0, NO_DIALOG.1, None, &[]));
        };
        // 200 for the CANCEL either way; once answered it changes nothing (RFC 3261 9.2).
        self.respond(&key, response(msg, 200, "OK", None, &[]));
        if c.answered {
            return;
        }
        if let Some(c) = calls.remove(&call_id) {
            drop(calls);
            self.respond(
                &c.key,
                response(&c.invite, 487, "Request Terminated", Some(&c.to_tag), &[]),
            );
            self.b2bua.center.send(CallEvent::CallerHungUp { call_id });
        }
    }

    /// DTMF by SIP INFO (application/dtmf-relay "Signal=5", or
    /// application/dtmf "5"), for phones and trunks without RFC 4733.
    fn on_info(&self, key: TxKey, msg: &RawMessage, call_id: String) {
        let calls = self.b2bua.calls.lock();
        let Some(c) = calls.get(&call_id) else {
            drop(calls);
            return self.respond(&key, response(msg, NO_DIALOG.0, NO_DIALOG.1, None, &[]));
        };
        use super::info_dtmf::InfoBody;
        let info = super::info_dtmf::parse(msg.header("Content-Type"), &msg.body);
        let answer = match (info, &c.relay) {
            (InfoBody::Digit(d), Some(relay)) => {
                relay.control(ctihost_media::Control::Dtmf(d));
                response(msg, 200, "OK", None, &[])
            }
            (InfoBody::Digit(_) | InfoBody::Empty, _) => response(msg, 200, "OK", None, &[]),
            (InfoBody::NoDigit, _) => {
                response(msg, 400, "Bad Request - no key in the DTMF body", None, &[])
            }
            (InfoBody::Unsupported, _) => response(
                msg,
                415,
                "Unsupported Media Type",
                None,
                &[("Accept", "application/dtmf-relay, application/dtmf".into())],
            ),
        };
        drop(calls);
        self.respond(&key, answer);
    }

    /// A caller's re-INVITE (hold, a new address): with the relay the host
    /// answers it itself (the agent's side does not change); without, it is
    /// refused.
    fn on_reinvite(&self, key: TxKey, msg: &RawMessage, call_id: &str) {
        let mut calls = self.b2bua.calls.lock();
        let Some(c) = calls.get_mut(call_id) else {
            drop(calls);
            return self.on_agent_reinvite(key, msg, call_id);
        };
        let ours = msg.header("To").and_then(|t| param(t, "tag")) == Some(c.to_tag.as_str());
        let (Some(relay), true, true) = (&c.relay, c.answered, ours) else {
            drop(calls);
            return self.respond(
                &key,
                response(
                    msg,
                    488,
                    "Not Acceptable Here - re-INVITE needs an answered call with the media relay",
                    None,
                    &[],
                ),
            );
        };
        if !msg.body.is_empty() {
            if ctihost_media::sdp::rewrite(&msg.body, relay.caller_facing()).is_err() {
                drop(calls);
                return self.respond(
                    &key,
                    response(msg, 488, "Not Acceptable Here - no G.711 audio", None, &[]),
                );
            }
            relay.caller_expects(ctihost_media::sdp::audio_target(&msg.body));
        }
        c.dialog.refresh_target(msg);
        let direction = ctihost_media::sdp::answer_direction(&msg.body);
        let body = ctihost_media::sdp::with_direction(&c.answer, direction);
        tracing::info!(call_id, direction, "caller re-INVITE answered by the relay");
        let ok = self.ok_with_sdp(c, &body);
        drop(calls);
        self.respond(&key, ok);
    }

    /// An agent's phone re-INVITEs (hold from the phone, a new address):
    /// with the relay the host answers with its agent-facing SDP and the
    /// relay follows; the caller's side does not change.
    fn on_agent_reinvite(&self, key: TxKey, msg: &RawMessage, leg_id: &str) {
        let refuse =
            |code: u16, reason: &str| self.respond(&key, response(msg, code, reason, None, &[]));
        let caller = self
            .b2bua
            .legs
            .lock()
            .get(leg_id)
            .map(|(c, l)| (c.clone(), l.state, l.peer));
        let Some((caller, LegState::Answered, peer)) = caller else {
            return refuse(NO_DIALOG.0, NO_DIALOG.1);
        };
        let calls = self.b2bua.calls.lock();
        let Some((relay, offer)) = calls
            .get(&caller)
            .and_then(|c| Some((c.relay.as_ref()?, c.offer.clone())))
        else {
            drop(calls);
            return refuse(488, "Not Acceptable Here - re-INVITE needs the media relay");
        };
        if !msg.body.is_empty() {
            if ctihost_media::sdp::rewrite(&msg.body, relay.agent_facing()).is_err() {
                drop(calls);
                return refuse(488, "Not Acceptable Here - no G.711 audio");
            }
            relay.agent_expects(ctihost_media::sdp::audio_target(&msg.body));
        }
        drop(calls);
        let direction = ctihost_media::sdp::answer_direction(&msg.body);
        let body = ctihost_media::sdp::with_direction(&offer, direction);
        let body = match calls_relay_sdp(&self.b2bua.calls, &caller, &body) {
            Some(b) => b,
            None => body,
        };
        tracing::info!(
            call_id = caller,
            direction,
            "agent phone re-INVITE answered by the relay"
        );
        let ok = response_head(msg, 200, "OK", None, &[("Contact", self.contact(peer))]);
        self.respond(&key, with_body(ok, &body, Some("application/sdp")));
    }

    /// A 200 to the caller's INVITE (or re-INVITE) with this SDP.
    fn ok_with_sdp(&self, c: &Call, body: &[u8]) -> Vec<u8> {
        self.ok_with_body(c, body, Some("application/sdp"))
    }

    fn ok_with_body(&self, c: &Call, body: &[u8], ctype: Option<&str>) -> Vec<u8> {
        let contact = self.contact(c.peer);
        let ok = response_head(
            &c.invite,
            200,
            "OK",
            Some(&c.to_tag),
            &[("Contact", contact)],
        );
        with_body(ok, body, ctype)
    }

    fn on_invite(&self, key: TxKey, msg: &RawMessage, peer: Peer, call_id: String) {
        if msg.header("To").and_then(|t| param(t, "tag")).is_some() {
            return self.on_reinvite(key, msg, &call_id);
        }
        if self.b2bua.calls.lock().contains_key(&call_id) {
            // Same Call-ID, new branch: a second INVITE for a call in progress.
            return self.respond(
                &key,
                response(msg, 482, "Loop Detected", Some(&token()), &[]),
            );
        }
        let trunk = match self.trunk_of(msg, peer) {
            Ok(t) => t,
            Err(refusal) => return self.respond(&key, refusal),
        };
        if peer.transport != super::flow::Transport::Tls
            && self.b2bua.trunks.tls_required.contains(&trunk)
        {
            self.counted_warning(
                "trunk-tls-required",
                format!(
                    "INVITE of trunk {trunk} over {} from {} refused: the trunk requires TLS",
                    peer.transport.via_token(),
                    peer.addr
                ),
            );
            return self.respond(
                &key,
                response(
                    msg,
                    403,
                    "Forbidden - this trunk requires TLS",
                    Some(&token()),
                    &[],
                ),
            );
        }
        let caller = msg
            .header("From")
            .map(addr_uri)
            .and_then(uri_user)
            .unwrap_or("anonymous")
            .to_owned();
        let dialed = msg.uri().and_then(uri_user).unwrap_or("").to_owned();
        let (relay, offer, answer) = match self.open_relay(&call_id, msg, &trunk, peer) {
            Ok(parts) => parts,
            Err((code, reason)) => {
                tracing::warn!(call_id, code, reason, "call refused by the media layer");
                return self.respond(&key, response(msg, code, &reason, Some(&token()), &[]));
            }
        };
        let to_tag = token();
        self.b2bua.calls.lock().insert(
            call_id.clone(),
            Call {
                invite: msg.clone(),
                key,
                peer,
                dialog: Dialog::from_request(msg, &to_tag),
                to_tag,
                ringing_sent: false,
                answered: false,
                relay,
                offer,
                answer,
            },
        );
        tracing::info!(call_id, caller, dialed, trunk, transport = ?peer.transport, "call arrived");
        let arrived = CallEvent::Arrived {
            call_id: call_id.clone(),
            caller,
            dialed,
            trunk,
            attributes: vec![],
        };
        if !self.b2bua.center.arrive(arrived) {
            // The call center is behind: turn the caller away before any
            // state of the call lives on (its relay's ports go back).
            if let Some(c) = self.b2bua.calls.lock().remove(&call_id) {
                let busy = response(
                    &c.invite,
                    503,
                    "Service Unavailable",
                    Some(&c.to_tag),
                    &[("Retry-After", "5".to_owned())],
                );
                self.respond(&c.key, busy);
            }
        }
    }

    /// A relay for a new call and the SDP its agents are offered, checking the
    /// caller's offer carries a codec we relay. Err: the SIP status refusing it.
    #[allow(clippy::type_complexity)]
    fn open_relay(
        &self,
        call_id: &str,
        invite: &RawMessage,
        trunk: &str,
        peer: Peer,
    ) -> Result<(Option<ctihost_media::Relay>, Vec<u8>, Vec<u8>), (u16, String)> {
        let srtp_required = self.b2bua.trunks.srtp_required.contains(trunk);
        let Some(media) = &self.b2bua.media else {
            if srtp_required {
                return Err((
                    488,
                    "Not Acceptable Here - SRTP needs the media relay".into(),
                ));
            }
            return Ok((None, invite.body.clone(), Vec::new()));
        };
        let center = self.b2bua.center.clone();
        let events: EventSink = Arc::new(move |e| center.send(e));
        let relay = media.open(call_id, &invite.body, events).map_err(|e| match e {
            ctihost_media::MediaError::Offer(e) => (488, format!("Not Acceptable Here - {e}")),
            e => {
                if media.refused() {
                    tracing::error!(call_id, error = %e, refused_so_far = media.refused_calls(), "calls refused: no relay");
                }
                (503, "Service Unavailable - no media ports".to_owned())
            }
        })?;
        if srtp_required && !relay.caller_srtp() {
            return Err((
                488,
                format!(
                    "Not Acceptable Here - trunk {trunk} requires SRTP (RTP/SAVP with a=crypto)"
                ),
            ));
        }
        if relay.caller_srtp() {
            self.keys_in_clear(peer, call_id);
        }
        if invite.body.is_empty() {
            // A late offer: the host offers in its 200 (or the agent's phone
            // does, through the relay) and the caller answers in its ACK.
            let offer = ctihost_media::sdp::host_offer(relay.agent_facing());
            let answer = ctihost_media::sdp::host_offer(relay.caller_facing());
            return Ok((Some(relay), offer, answer));
        }
        // What agents' phones are offered: the caller's SDP facing the relay
        // (built once; a refused offer drops the relay and frees its ports).
        let offer = ctihost_media::sdp::rewrite(&invite.body, relay.agent_facing())
            .map_err(|e| (488, format!("Not Acceptable Here - {e}")))?;
        let answer = ctihost_media::sdp::rewrite(&invite.body, relay.caller_facing())
            .map_err(|e| (488, format!("Not Acceptable Here - {e}")))?;
        let answer = relay.caller_sdp(&answer);
        Ok((Some(relay), offer, answer))
    }

    /// SDES keys travel in the SDP: over clear SIP anyone on the path reads
    /// them. Said (once a second at most) and counted, not refused: the
    /// peer chose to send its own key that way.
    fn keys_in_clear(&self, peer: Peer, call_id: &str) {
        if peer.transport == super::flow::Transport::Tls {
            return;
        }
        self.counted_warning(
            "srtp-keys-over-clear-sip",
            format!(
                "call {call_id}: SRTP keys (SDES) sent over SIP {} to {}, not TLS: anyone on the path can read them",
                peer.transport.via_token(),
                peer.addr
            ),
        );
    }

    /// Count `bound` in /metrics and warn (once a second at most).
    fn counted_warning(&self, bound: &'static str, message: String) {
        self.ep.bound_hit(bound);
        ctihost_ground::log_limit::warn_every_second(bound, &message);
    }

    /// Which trunk an INVITE comes from: by source address, else by digest
    /// (407 challenge, then Proxy-Authorization). Err: the answer refusing it.
    fn trunk_of(&self, msg: &RawMessage, peer: Peer) -> Result<String, Vec<u8>> {
        let t = &self.b2bua.trunks;
        if let Some((name, _)) = t
            .by_address
            .iter()
            .find(|(_, ips)| ips.contains(&peer.addr.ip()))
        {
            return Ok(name.clone());
        }
        if let Some(trunk) = self.b2bua.certified_trunk(peer) {
            return Ok(trunk);
        }
        let forbidden = |reason: &str| response(msg, 403, reason, Some(&token()), &[]);
        if t.by_user.is_empty() {
            tracing::warn!(source = %peer.addr, "INVITE from an address that is no trunk");
            return Err(forbidden("Forbidden - not a trunk"));
        }
        let now_secs = now_ms() / 1000;
        match t.auth.check(
            msg.header("Proxy-Authorization"),
            "INVITE",
            msg.uri().unwrap_or(""),
            peer.addr.ip(),
            now_secs,
        ) {
            Verdict::Throttled { retry_after_secs } => Err(response(
                msg,
                403,
                "Forbidden - too many failed attempts",
                Some(&token()),
                &[("Retry-After", retry_after_secs.to_string())],
            )),
            Verdict::Authenticated { user } => t
                .by_user
                .get(&user)
                .cloned()
                .ok_or_else(|| forbidden("Forbidden - not a trunk")),
            Verdict::Challenge { stale } => {
                let extra: Vec<(&str, String)> = t
                    .auth
                    .challenges(now_secs, stale)
                    .into_iter()
                    .map(|c| ("Proxy-Authenticate", c))
                    .collect();
                Err(response(
                    msg,
                    407,
                    "Proxy Authentication Required",
                    Some(&token()),
                    &extra,
                ))
            }
            Verdict::Forbidden { user, known } => {
                ctihost_ground::log_limit::warn_every_second(
                    "invite-wrong-trunk-credentials",
                    &format!(
                        "INVITE with wrong trunk credentials (last: user {user:?}, known {known}, from {})",
                        peer.addr
                    ),
                );
                Err(forbidden("Forbidden - wrong trunk credentials"))
            }
        }
    }

    /// The ACK of a 2xx (the transaction layer already stopped repeating the
    /// 2xx). After a late offer it carries the caller's answer.
    fn on_ack(&self, msg: &RawMessage) {
        let call_id = msg.header("Call-ID").unwrap_or("");
        tracing::trace!(call_id, "ACK of 2xx");
        if msg.body.is_empty() {
            return;
        }
        let calls = self.b2bua.calls.lock();
        if let Some(relay) = calls.get(call_id).and_then(|c| c.relay.as_ref()) {
            relay.caller_expects(ctihost_media::sdp::audio_target(&msg.body));
            relay.control(ctihost_media::Control::CallerProfile(
                ctihost_media::sdp::audio_profile(&msg.body),
            ));
        }
    }

    /// Our 2xx to a caller was never acknowledged: the caller is gone.
    fn on_unacknowledged(&self, call_id: &str) {
        tracing::warn!(
            call_id,
            "caller never acknowledged the answer; ending the call"
        );
        if let Some(c) = self.b2bua.calls.lock().remove(call_id) {
            self.bye_caller(c);
            self.b2bua.center.send(CallEvent::CallerHungUp {
                call_id: call_id.to_owned(),
            });
        }
    }

    /// One of our requests got no answer at all (Timer B or F).
    fn on_timeout(&self, key: &TxKey, leg_call_id: &str) {
        if key.method != "INVITE" {
            return;
        }
        let leg = self.b2bua.legs.lock().remove(leg_call_id);
        if let Some((call_id, leg)) = leg
            && leg.state != LegState::Cancelling
        {
            tracing::info!(call_id, agent = leg.agent, "agent phone does not respond");
            self.b2bua.center.send(CallEvent::OfferFailed {
                call_id,
                agent: leg.agent,
                failure: OfferFailure::Unavailable,
            });
        }
    }

    /// A response from an agent's phone, in one of our client transactions.
    fn on_response(&self, key: &TxKey, msg: &RawMessage) {
        let Some(call_id) = msg.header("Call-ID") else {
            return;
        };
        let code = status_code(msg).unwrap_or(0);
        if key.method != "INVITE" {
            return; // BYE and CANCEL answers: the transaction layer is done with them
        }
        if self.b2bua.calls.lock().contains_key(call_id) {
            return self.on_caller_reinvite_response(key, call_id, code);
        }
        let mut legs = self.b2bua.legs.lock();
        let Some((caller, leg)) = legs.get_mut(call_id) else {
            return;
        };
        match code {
            180 | 183 if leg.state == LegState::Calling => {
                leg.state = LegState::Ringing;
                let mut calls = self.b2bua.calls.lock();
                if let Some(c) = calls.get_mut(caller.as_str())
                    && !c.ringing_sent
                {
                    c.ringing_sent = true;
                    let ringing = response(&c.invite, 180, "Ringing", Some(&c.to_tag), &[]);
                    self.respond(&c.key, ringing);
                }
            }
            200..=299 => {
                // A retransmitted 2xx keeps the dialog the first one made.
                let dialog = leg
                    .dialog
                    .get_or_insert_with(|| Dialog::from_response(&leg.invite, msg))
                    .clone();
                leg.sdp = msg.body.clone();
                leg.content_type = msg.header("Content-Type").map(str::to_owned);
                let ack = self.in_dialog(&dialog, leg.peer, "ACK", dialog.cseq(), &[], None);
                let hop = hop(&dialog, leg.peer);
                self.ep.ack_2xx(key, ack, hop);
                if leg.state == LegState::Cancelling {
                    // Answered after we gave up on it: end it at once.
                    let peer = leg.peer;
                    legs.remove(call_id);
                    drop(legs);
                    self.bye_leg(dialog, peer);
                    return;
                }
                if leg.srtp && !matches!(ctihost_media::sdp::sdes(&msg.body), Ok(Some(_))) {
                    // Offered SRTP only and answered plain (or with keys
                    // the host cannot use): the audio would go in clear.
                    tracing::warn!(
                        call_id = caller.as_str(),
                        agent = leg.agent,
                        "agent phone answered an SRTP-only offer without usable SRTP keys; leg ended"
                    );
                    let (peer, caller, agent) = (leg.peer, caller.clone(), leg.agent.clone());
                    legs.remove(call_id);
                    drop(legs);
                    self.bye_leg(dialog, peer);
                    self.b2bua.center.send(CallEvent::OfferFailed {
                        call_id: caller,
                        agent,
                        failure: OfferFailure::Failed,
                    });
                    return;
                }
                leg.state = LegState::Answered;
                self.b2bua.center.send(CallEvent::AgentAnswered {
                    call_id: caller.clone(),
                    agent: leg.agent.clone(),
                });
            }
            300..=699 => {
                // The transaction layer sent the ACK of this error.
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
                    self.b2bua.center.send(CallEvent::OfferFailed {
                        call_id: caller,
                        agent,
                        failure,
                    });
                }
            }
            _ => {}
        }
    }

    fn send_request(&self, bytes: Vec<u8>, peer: Peer) -> Option<TxKey> {
        self.ep.request(bytes, peer)
    }

    /// An in-dialog request of ours (its own branch), as the dialog builds it.
    fn in_dialog(
        &self,
        dialog: &Dialog,
        peer: Peer,
        method: &str,
        cseq: u32,
        headers: &[(&str, String)],
        body: Option<(&[u8], Option<&str>)>,
    ) -> Vec<u8> {
        let (local, t) = self.local(hop(dialog, peer));
        let via = format!("SIP/2.0/{t} {local};branch=z9hG4bK{};rport", token());
        let (body, ctype) = body.unwrap_or((&[], None));
        dialog.request(method, cseq, &via, headers, body, ctype)
    }

    /// End an answered agent leg.
    fn bye_leg(&self, mut dialog: Dialog, peer: Peer) {
        let cseq = dialog.next_cseq();
        let bye = self.in_dialog(&dialog, peer, "BYE", cseq, &[], None);
        self.send_request(bye, hop(&dialog, peer));
    }

    /// Carry out one of the core's commands.
    fn execute(&self, cmd: Command) {
        match cmd {
            Command::Call(c) => self.call_control(c),
            Command::Media(m) => self.media_command(m),
        }
    }

    fn call_control(&self, cmd: CallControl) {
        match cmd {
            CallControl::Offer {
                call_id,
                agent,
                sip_user,
            } => self.offer(call_id, agent, &sip_user),
            CallControl::CancelOffer { call_id, agent } => {
                let mut legs = self.b2bua.legs.lock();
                let Some(key) = find_leg(&legs, &call_id, &agent) else {
                    return;
                };
                let Some((_, leg)) = legs.get_mut(&key) else {
                    return;
                };
                let peer = leg.peer;
                match (&leg.dialog, leg.state) {
                    (Some(dialog), LegState::Answered) => {
                        let dialog = dialog.clone();
                        legs.remove(&key);
                        drop(legs);
                        self.bye_leg(dialog, peer);
                    }
                    _ => {
                        // The leg stays until the phone answers the INVITE
                        // (487, or a 2xx we end).
                        leg.state = LegState::Cancelling;
                        let cancel = cancel_for(&leg.invite);
                        drop(legs);
                        self.send_request(cancel, peer);
                    }
                }
            }
            CallControl::Bridge { call_id, agent } => {
                let sdp = {
                    let legs = self.b2bua.legs.lock();
                    find_leg(&legs, &call_id, &agent)
                        .and_then(|k| legs.get(&k))
                        .map(|(_, l)| (l.sdp.clone(), l.content_type.clone(), l.srtp))
                };
                let (mut body, ctype, offered_srtp) = sdp.unwrap_or_default();
                let answered = {
                    let mut calls = self.b2bua.calls.lock();
                    let Some(c) = calls.get_mut(&call_id) else {
                        return;
                    };
                    if let Some(relay) = &c.relay {
                        // The agent's phone is the relay's other side now; the
                        // caller keeps talking to the host's port.
                        relay.agent_expects(ctihost_media::sdp::audio_target(&body));
                        // Keys first: the bridge must not pass the phone's
                        // SRTP on as if it were plain.
                        if let Err(e) = relay.agent_answered(&body, offered_srtp) {
                            tracing::warn!(call_id, error = %e, "agent's answer has no usable SRTP keys");
                        }
                        relay.control(ctihost_media::Control::Bridge);
                        body = match ctihost_media::sdp::rewrite(&body, relay.caller_facing()) {
                            Ok(b) => relay.caller_sdp(&b),
                            Err(e) => {
                                tracing::warn!(call_id, error = %e, "agent's answer has no usable audio");
                                body
                            }
                        };
                        if c.answered {
                            // Answered by the host (IVR, music) or a transfer:
                            // the caller keeps its media peer, nothing to tell it.
                            return;
                        }
                        c.answer = body.clone();
                    }
                    c.answered
                };
                if answered {
                    return self.reinvite_caller(&call_id, &body, ctype.as_deref());
                }
                let mut calls = self.b2bua.calls.lock();
                let Some(c) = calls.get_mut(&call_id) else {
                    return;
                };
                let bytes = self.ok_with_body(c, &body, ctype.as_deref());
                c.answered = true;
                let key = c.key.clone();
                drop(calls);
                self.respond(&key, bytes);
            }
            CallControl::Reject {
                call_id,
                code,
                reason,
            } => self.final_to_caller(&call_id, code, &reason, &[]),
            CallControl::Forward { call_id, target } => {
                let host = self
                    .b2bua
                    .calls
                    .lock()
                    .get(&call_id)
                    .map(|c| c.peer.addr.ip());
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
            CallControl::HangUpCaller { call_id } => {
                let answered = self.b2bua.calls.lock().get(&call_id).map(|c| c.answered);
                match answered {
                    Some(true) => {
                        if let Some(c) = self.b2bua.calls.lock().remove(&call_id) {
                            self.bye_caller(c);
                        }
                    }
                    Some(false) => match self.ep.draining() {
                        // The host is stopping: the caller may try again elsewhere.
                        Some(retry_after) => self.final_to_caller(
                            &call_id,
                            503,
                            "Service Unavailable - the host is stopping",
                            &[("Retry-After", retry_after.to_string())],
                        ),
                        None => self.final_to_caller(&call_id, 480, "Temporarily Unavailable", &[]),
                    },
                    None => {}
                }
            }
            CallControl::HangUpAgent { call_id, agent } => {
                let leg = {
                    let mut legs = self.b2bua.legs.lock();
                    find_leg(&legs, &call_id, &agent).and_then(|k| legs.remove(&k))
                };
                match leg {
                    Some((
                        _,
                        AgentLeg {
                            dialog: Some(dialog),
                            peer,
                            ..
                        },
                    )) => self.bye_leg(dialog, peer),
                    // Not answered yet: the INVITE is cancelled instead.
                    Some((_, leg)) => {
                        self.send_request(cancel_for(&leg.invite), leg.peer);
                    }
                    None => {}
                }
            }
        }
    }

    /// Media commands reach the call's relay (the B2BUA holds which relay
    /// serves which call).
    fn media_command(&self, cmd: MediaCommand) {
        match cmd {
            MediaCommand::RunIvr { call_id, step } => {
                let prompt = self
                    .b2bua
                    .media
                    .as_ref()
                    .and_then(|m| m.prompts().get(&step.prompt));
                let name = step.name.clone();
                let control = ctihost_media::Control::Ivr { step, prompt };
                if !self.answer_and(&call_id, control) {
                    // No relay for this call (late offer): no digits to collect.
                    self.b2bua.center.send(CallEvent::DigitsCollected {
                        call_id,
                        step: name,
                        digits: String::new(),
                    });
                }
            }
            MediaCommand::Hold { call_id, music } => {
                let music = music.and_then(|m| self.b2bua.media.as_ref()?.prompts().get(&m));
                self.answer_and(&call_id, ctihost_media::Control::Hold { music });
            }
            MediaCommand::Announce {
                call_id,
                position,
                wait_secs,
            } => {
                if let Some(m) = &self.b2bua.media {
                    let prompts = m.prompts().announcement(position, wait_secs);
                    self.media_control(&call_id, ctihost_media::Control::Announce(prompts));
                }
            }
            MediaCommand::Record { call_id, plan } => {
                self.media_control(&call_id, ctihost_media::Control::Record(plan));
            }
            MediaCommand::PauseRecording { call_id, paused } => {
                self.media_control(&call_id, ctihost_media::Control::Pause(paused));
            }
        }
    }

    /// Tell the call's relay; false when the call has none.
    fn media_control(&self, call_id: &str, control: ctihost_media::Control) -> bool {
        let calls = self.b2bua.calls.lock();
        match calls.get(call_id).and_then(|c| c.relay.as_ref()) {
            Some(relay) => {
                relay.control(control);
                true
            }
            None => false,
        }
    }

    /// Answer the caller with the relay's SDP if not yet answered (the host
    /// takes the call: IVR, music), then tell the relay; false without relay.
    fn answer_and(&self, call_id: &str, control: ctihost_media::Control) -> bool {
        let mut calls = self.b2bua.calls.lock();
        let Some(c) = calls.get_mut(call_id) else {
            return false;
        };
        let Some(relay) = &c.relay else {
            return false;
        };
        relay.control(control);
        if c.answered {
            return true;
        }
        relay.control(ctihost_media::Control::Answered);
        c.answered = true;
        let ok = self.ok_with_sdp(c, &c.answer);
        let key = c.key.clone();
        drop(calls);
        tracing::info!(call_id, "caller answered by the host");
        self.respond(&key, ok);
        true
    }

    /// A final answer to a caller that was not answered; the transaction
    /// layer repeats it until the caller's ACK.
    fn final_to_caller(&self, call_id: &str, code: u16, reason: &str, extra: &[(&str, String)]) {
        let Some(c) = self.b2bua.calls.lock().remove(call_id) else {
            return;
        };
        let resp = response(&c.invite, code, reason, Some(&c.to_tag), extra);
        self.respond(&c.key, resp);
    }

    fn bye_caller(&self, mut c: Call) {
        let cseq = c.dialog.next_cseq();
        let bye = self.caller_request(&c, "BYE", cseq, None);
        self.send_request(bye, hop(&c.dialog, c.peer));
    }

    /// An in-dialog request of ours towards the caller (BYE, re-INVITE, ACK).
    fn caller_request(
        &self,
        c: &Call,
        method: &str,
        cseq: u32,
        body: Option<(&[u8], Option<&str>)>,
    ) -> Vec<u8> {
        let contact = [("Contact", self.contact(c.peer))];
        let headers: &[(&str, String)] = if method == "INVITE" { &contact } else { &[] };
        self.in_dialog(&c.dialog, c.peer, method, cseq, headers, body)
    }

    /// The caller was answered before (a transferred call): the new agent's
    /// media reaches it by a re-INVITE carrying the agent's SDP.
    fn reinvite_caller(&self, call_id: &str, body: &[u8], ctype: Option<&str>) {
        let mut calls = self.b2bua.calls.lock();
        let Some(c) = calls.get_mut(call_id) else {
            return;
        };
        let cseq = c.dialog.next_cseq();
        let invite = self.caller_request(c, "INVITE", cseq, Some((body, ctype)));
        let peer = hop(&c.dialog, c.peer);
        drop(calls);
        tracing::info!(call_id, "re-INVITE to the caller for the new agent's media");
        self.send_request(invite, peer);
    }

    /// The answer to our re-INVITE of a caller: ACK a 2xx; an error ends the call.
    fn on_caller_reinvite_response(&self, key: &TxKey, call_id: &str, code: u16) {
        let calls = self.b2bua.calls.lock();
        let Some(c) = calls.get(call_id) else { return };
        match code {
            200..=299 => {
                let ack = self.caller_request(c, "ACK", c.dialog.cseq(), None);
                let peer = hop(&c.dialog, c.peer);
                drop(calls);
                self.ep.ack_2xx(key, ack, peer);
            }
            300..=699 => {
                drop(calls);
                tracing::warn!(
                    call_id,
                    code,
                    "caller refused the re-INVITE; ending the call"
                );
                self.b2bua.center.send(CallEvent::CallFailed {
                    call_id: call_id.to_owned(),
                    reason: format!("caller refused the transfer's re-INVITE with {code}"),
                });
            }
            _ => {}
        }
    }

    fn offer(&self, call_id: String, agent: String, sip_user: &str) {
        let failed = |failure| CallEvent::OfferFailed {
            call_id: call_id.clone(),
            agent: agent.clone(),
            failure,
        };
        let bindings = self.b2bua.registrar.lookup(sip_user, now_ms());
        let Some(b) = bindings.last() else {
            return self.b2bua.center.send(failed(OfferFailure::Unavailable));
        };
        let srtp = self.b2bua.srtp_phones.contains(sip_user);
        let (sdp, ctype, caller) = {
            let calls = self.b2bua.calls.lock();
            let Some(c) = calls.get(&call_id) else { return };
            let offer = match &c.relay {
                Some(relay) if !c.offer.is_empty() => relay.agent_offer(&c.offer, srtp),
                _ => c.offer.clone(),
            };
            (
                offer,
                c.invite
                    .header("Content-Type")
                    .map(str::to_owned)
                    // A late offer: the relay's own SDP.
                    .or_else(|| (!c.offer.is_empty()).then(|| "application/sdp".to_owned())),
                c.invite
                    .header("From")
                    .map(addr_uri)
                    .and_then(uri_user)
                    .unwrap_or("anonymous")
                    .to_owned(),
            )
        };
        let mut peer = b.peer();
        // Over TCP the phone's own connection is best; once it is closed, its Contact.
        if peer.reliable()
            && !self.ep.has_connection(peer.addr)
            && let Some(addr) = uri_socket_addr(&b.contact)
        {
            peer.addr = addr;
        }
        if srtp {
            self.keys_in_clear(peer, &call_id);
        }
        let (local, t) = self.local(peer);
        let leg_id = format!("{call_id}-{agent}-{}", token());
        let from_tag = token();
        let ruri = &b.contact;
        let invite = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{caller}@{local}>;tag={from_tag}\r\nTo: <{ruri}>\r\nCall-ID: {leg_id}\r\nCSeq: 1 INVITE\r\nContact: {contact}\r\n",
            branch = token(),
            contact = self.contact(peer),
        );
        let bytes = with_body(invite, &sdp, ctype.as_deref());
        let Ok(parsed) = RawMessage::parse(&bytes) else {
            return self.b2bua.center.send(failed(OfferFailure::Failed));
        };
        // The leg exists before the INVITE leaves: its answer may come back at once.
        let mut legs = self.b2bua.legs.lock();
        if self.send_request(bytes, peer).is_none() {
            drop(legs);
            return self.b2bua.center.send(failed(OfferFailure::Failed));
        };
        legs.insert(
            leg_id,
            (
                call_id,
                AgentLeg {
                    agent,
                    invite: parsed,
                    dialog: None,
                    peer,
                    state: LegState::Calling,
                    sdp: vec![],
                    content_type: None,
                    srtp,
                },
            ),
        );
    }
}

/// Where a dialog's next request goes: its first route's address, or the
/// peer it was made with (same transport either way).
fn hop(dialog: &Dialog, peer: Peer) -> Peer {
    match dialog.next_hop() {
        Some(addr) => Peer { addr, ..peer },
        None => peer,
    }
}

fn find_leg(
    legs: &HashMap<String, (String, AgentLeg)>,
    call_id: &str,
    agent: &str,
) -> Option<String> {
    legs.iter()
        .find(|(_, (c, l))| c == call_id && l.agent == agent)
        .map(|(k, _)| k.clone())
}

/// `sdp` for an agent's phone as the relay of `call_id` has its leg now
/// (None: no such call or no relay).
fn calls_relay_sdp(
    calls: &Mutex<HashMap<String, Call>>,
    call_id: &str,
    sdp: &[u8],
) -> Option<Vec<u8>> {
    let calls = calls.lock();
    let relay = calls.get(call_id)?.relay.as_ref()?;
    Some(relay.agent_sdp(sdp))
}
