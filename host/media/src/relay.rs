//! One relay per call: a UDP port facing the caller and one facing the agent.
//! Until an agent answers, the relay is the caller's only peer: it plays
//! prompts and music, detects RFC 4733 keys and collects an IVR step's
//! digits. Once bridged, what arrives on one side goes out of the other to
//! the latched peer. Both ways it feeds the recorder. One task per call owns
//! the sockets and all of this state, so nothing here takes a lock per packet.
//! Each side may be SRTP on its own ([`crate::srtp`]): packets are decrypted
//! as they arrive and encrypted as they leave, so everything between (the
//! recorder, the DTMF detector, the player) sees plain RTP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::g711::Law;
use super::player::Player;
use super::ports::PortPool;
use super::prompts::{Prompt, Prompts};
use super::recorder::{FRAME, Recorder, RecordingEntry, RecordingPlan};
use super::rtp::{self, DtmfDetector, Stream};
use super::sdp::{AudioProfile, SdpError};
use super::srtp::{LegCrypto, SdesKey, SrtpError};
use ctihost_acd::CallEvent;
use ctihost_acd::IvrStep;
use ctihost_ground::clock::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no free RTP port in the configured range ({0} in use)")]
    NoPorts(usize),
    #[error("cannot bind an RTP port: {0}")]
    Bind(std::io::Error),
    /// The caller's offer cannot be answered (an SRTP offer with no suite
    /// the host takes): a 488, not a 503.
    #[error(transparent)]
    Offer(#[from] SdpError),
    #[error(transparent)]
    Srtp(#[from] SrtpError),
}

/// One side of a relay: where its packets go, and what was seen.
#[derive(Default)]
struct Side {
    /// From the side's SDP, then the source of its packets (latched).
    peer: Mutex<Option<SocketAddr>>,
    latched: AtomicBool,
    /// Packets received from this side.
    packets: AtomicU64,
    /// Packets from an address other than the latched one (dropped).
    stray: AtomicU64,
    last_ms: AtomicU64,
}

impl Side {
    fn peer(&self) -> Option<SocketAddr> {
        *self.peer.lock()
    }

    /// Accept a packet from `src`: the first one latches the side to it.
    fn accept(&self, src: SocketAddr) -> bool {
        if !self.latched.swap(true, Ordering::AcqRel) {
            *self.peer.lock() = Some(src);
        } else if self.peer() != Some(src) {
            self.stray.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.last_ms.store(now_ms(), Ordering::Relaxed);
        true
    }

    /// A new peer from signalling (an answer, a new agent): latch again.
    fn latch_anew(&self, addr: Option<SocketAddr>) {
        *self.peer.lock() = addr;
        self.latched.store(false, Ordering::Release);
    }
}

struct Shared {
    call_id: String,
    caller: Side,
    agent: Side,
    caller_port: u16,
    agent_port: u16,
    /// Since when the caller must keep sending (0: not yet connected).
    armed_ms: AtomicU64,
    /// Packets the host itself sent to the caller (prompts, music).
    played: AtomicU64,
    recording: AtomicBool,
    /// Each side's SRTP is on.
    caller_srtp: AtomicBool,
    agent_srtp: AtomicBool,
    /// SRTP packets refused (bad tag, replay, not RTP), both sides.
    srtp_refused: AtomicU64,
}

/// What the admin API shows of a relay.
#[derive(Debug, Clone, Serialize)]
pub struct RelayStatus {
    pub call_id: String,
    pub caller_port: u16,
    pub agent_port: u16,
    pub caller_peer: Option<SocketAddr>,
    pub agent_peer: Option<SocketAddr>,
    /// Packets received from the caller (sent on to the agent when known).
    pub from_caller: u64,
    pub from_agent: u64,
    pub stray: u64,
    /// Packets of prompts and music the host sent the caller.
    pub played: u64,
    pub recording: bool,
    /// SRTP on the caller's leg, on the agent's leg.
    pub caller_srtp: bool,
    pub agent_srtp: bool,
    /// SRTP packets refused: a wrong tag, a replay, or no RTP.
    pub srtp_refused: u64,
}

impl Shared {
    fn status(&self) -> RelayStatus {
        RelayStatus {
            call_id: self.call_id.clone(),
            caller_port: self.caller_port,
            agent_port: self.agent_port,
            caller_peer: self.caller.peer(),
            agent_peer: self.agent.peer(),
            from_caller: self.caller.packets.load(Ordering::Relaxed),
            from_agent: self.agent.packets.load(Ordering::Relaxed),
            stray: self.caller.stray.load(Ordering::Relaxed)
                + self.agent.stray.load(Ordering::Relaxed),
            played: self.played.load(Ordering::Relaxed),
            recording: self.recording.load(Ordering::Relaxed),
            caller_srtp: self.caller_srtp.load(Ordering::Relaxed),
            agent_srtp: self.agent_srtp.load(Ordering::Relaxed),
            srtp_refused: self.srtp_refused.load(Ordering::Relaxed),
        }
    }
}

/// Where finished recordings' index entries go (the store).
pub type RecordingSink = Arc<dyn Fn(RecordingEntry) + Send + Sync>;
/// Where a relay reports to the call center (digits, RTP timeout).
pub type EventSink = Arc<dyn Fn(CallEvent) + Send + Sync>;

/// Settings of the media layer beyond the port range.
#[derive(Clone)]
pub struct MediaSettings {
    pub address: IpAddr,
    pub rtp_timeout: Duration,
    pub prompts: Prompts,
    /// Where recordings are written (None: recording is off).
    pub recording_dir: Option<PathBuf>,
    /// The bank's master keys: recordings are sealed with the current one
    /// (None: written as plain WAV).
    pub recording_keys: Option<Arc<crate::sealed::KeyRing>>,
    pub recordings: Option<RecordingSink>,
}

/// The media layer: the port pool and the live relays.
pub struct Media {
    pool: Arc<PortPool>,
    settings: Arc<MediaSettings>,
    live: Arc<Mutex<HashMap<String, Arc<Shared>>>>,
    finishing: Arc<AtomicUsize>,
    /// Calls refused for want of ports, and when that was last logged.
    refused: AtomicU64,
    refused_logged_ms: AtomicU64,
}

/// What a call's relay is told to do (the ACD's media commands).
pub enum Control {
    /// The host answered the caller: from now on RTP must flow.
    Answered,
    /// Play a prompt and collect digits; the result is reported as
    /// [`CallEvent::DigitsCollected`].
    Ivr {
        step: IvrStep,
        prompt: Option<Arc<Prompt>>,
    },
    /// The call waits in a queue: loop this music (None: silence).
    Hold {
        music: Option<Arc<Prompt>>,
    },
    /// Play these prompts now, then go back to the music.
    Announce(Vec<Arc<Prompt>>),
    /// An agent's phone answered: relay between the two sides from now on.
    Bridge,
    Record(RecordingPlan),
    Pause(bool),
    /// A digit the caller sent by SIP INFO.
    Dtmf(char),
    /// The caller's SDP arrived late (in its ACK, after a late offer).
    CallerProfile(AudioProfile),
    /// The agent's leg from now on: SRTP with these keys, or plain.
    AgentCrypto(Option<LegCrypto>),
}

/// A call's relay; dropping it ends the relay (the recording is finished and
/// indexed, then the ports go back to the pool).
pub struct Relay {
    shared: Arc<Shared>,
    address: IpAddr,
    control: mpsc::UnboundedSender<Control>,
    /// The host's SDES key towards the caller, when the caller's leg is SRTP.
    caller_key: Option<SdesKey>,
    /// The host's SDES key towards agents' phones (offered to those that
    /// must get SRTP).
    agent_key: SdesKey,
}

/// Gives a relay's ports back and forgets it once its task is over (also
/// when the task is dropped with the runtime).
struct Release {
    shared: Arc<Shared>,
    pool: Arc<PortPool>,
    live: Arc<Mutex<HashMap<String, Arc<Shared>>>>,
    /// Recordings being closed and indexed.
    finishing: Arc<AtomicUsize>,
}

/// Counts one recording being finished, until dropped.
struct Finishing(Arc<AtomicUsize>);

impl Finishing {
    fn start(n: Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::AcqRel);
        Self(n)
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        self.pool.give(self.shared.caller_port);
        self.pool.give(self.shared.agent_port);
        self.live.lock().remove(&self.shared.call_id);
    }
}

impl Media {
    pub fn new(first_port: u16, last_port: u16, settings: MediaSettings) -> Self {
        let pool = PortPool::new(first_port, last_port);
        let offset = ctihost_ground::random::bytes::<4>()
            .map(u32::from_le_bytes)
            .unwrap_or(0);
        pool.rotate(offset as usize);
        Self {
            pool: Arc::new(pool),
            settings: Arc::new(settings),
            live: Arc::new(Mutex::new(HashMap::new())),
            finishing: Arc::new(AtomicUsize::new(0)),
            refused: AtomicU64::new(0),
            refused_logged_ms: AtomicU64::new(0),
        }
    }

    pub fn prompts(&self) -> &Prompts {
        &self.settings.prompts
    }

    pub fn recording_enabled(&self) -> bool {
        self.settings.recording_dir.is_some()
    }

    /// Count a call refused for want of a relay; true when it should be
    /// logged (once a second at most: an overload must not flood the log).
    pub fn refused(&self) -> bool {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let last = self.refused_logged_ms.load(Ordering::Relaxed);
        now >= last + 1000
            && self
                .refused_logged_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Calls refused so far for want of relay ports.
    pub fn refused_calls(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn bind(&self) -> Result<(u16, std::net::UdpSocket), MediaError> {
        // A port of the range may be taken by another program: try a few.
        for _ in 0..16 {
            let Some(port) = self.pool.take() else {
                return Err(MediaError::NoPorts(self.pool.in_use()));
            };
            match std::net::UdpSocket::bind(SocketAddr::new(self.settings.address, port)) {
                Ok(s) => {
                    s.set_nonblocking(true).map_err(MediaError::Bind)?;
                    return Ok((port, s));
                }
                Err(e) => {
                    tracing::warn!(port, error = %e, "RTP port busy; trying another");
                    self.pool.give(port);
                }
            }
        }
        Err(MediaError::NoPorts(self.pool.in_use()))
    }

    /// Open a relay for a call whose caller offered `caller_sdp`; what it
    /// has to say goes to `events`.
    pub fn open(
        &self,
        call_id: &str,
        caller_sdp: &[u8],
        events: EventSink,
    ) -> Result<Relay, MediaError> {
        // SRTP on the caller's leg when its offer asks for it, with a key
        // of the host's own under the offer's tag and suite.
        let caller_keys = match super::sdp::sdes(caller_sdp)? {
            Some(theirs) => {
                let ours = SdesKey::generate(theirs.tag, theirs.suite)?;
                let crypto = LegCrypto::new(&theirs, &ours)?;
                Some((ours, crypto))
            }
            None => None,
        };
        let agent_key = SdesKey::generate(1, super::srtp::Suite::AesCm128HmacSha1_80)?;
        let (caller_port, caller_sock) = self.bind()?;
        let (agent_port, agent_sock) = match self.bind() {
            Ok(b) => b,
            Err(e) => {
                self.pool.give(caller_port);
                return Err(e);
            }
        };
        let (caller_sock, agent_sock) = match (
            UdpSocket::from_std(caller_sock),
            UdpSocket::from_std(agent_sock),
        ) {
            (Ok(c), Ok(a)) => (c, a),
            (Err(e), _) | (_, Err(e)) => {
                self.pool.give(caller_port);
                self.pool.give(agent_port);
                return Err(MediaError::Bind(e));
            }
        };
        let shared = Arc::new(Shared {
            call_id: call_id.to_owned(),
            caller: Side::default(),
            agent: Side::default(),
            caller_port,
            agent_port,
            armed_ms: AtomicU64::new(0),
            played: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            caller_srtp: AtomicBool::new(caller_keys.is_some()),
            agent_srtp: AtomicBool::new(false),
            srtp_refused: AtomicU64::new(0),
        });
        shared
            .caller
            .latch_anew(super::sdp::audio_target(caller_sdp));
        self.live.lock().insert(call_id.to_owned(), shared.clone());
        let (control, rx) = mpsc::unbounded_channel();
        let release = Release {
            shared: shared.clone(),
            pool: self.pool.clone(),
            live: self.live.clone(),
            finishing: self.finishing.clone(),
        };
        let (caller_key, caller_crypto) = match caller_keys {
            Some((k, c)) => (Some(k), Some(c)),
            None => (None, None),
        };
        let mut session = Session::new(
            shared.clone(),
            self.settings.clone(),
            super::sdp::audio_profile(caller_sdp),
            events,
        );
        session.caller_crypto = caller_crypto;
        tokio::spawn(session.run(caller_sock, agent_sock, rx, release));
        Ok(Relay {
            shared,
            address: self.settings.address,
            control,
            caller_key,
            agent_key,
        })
    }

    pub fn status(&self) -> Vec<RelayStatus> {
        let mut v: Vec<RelayStatus> = self.live.lock().values().map(|s| s.status()).collect();
        v.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        v
    }

    pub fn ports_in_use(&self) -> usize {
        self.pool.in_use()
    }

    /// Relays still running, and recordings still being indexed.
    pub fn live_relays(&self) -> usize {
        self.live.lock().len() + self.finishing.load(Ordering::Acquire)
    }

    pub fn ports_total(&self) -> usize {
        self.pool.total()
    }
}

impl Relay {
    /// The host's address the caller sends to (goes in the caller's SDP).
    pub fn caller_facing(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.shared.caller_port)
    }

    /// The host's address the agent's phone sends to.
    pub fn agent_facing(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.shared.agent_port)
    }

    /// Where the caller said it receives audio (its SDP; a re-INVITE may move it).
    pub fn caller_expects(&self, addr: Option<SocketAddr>) {
        self.shared.caller.latch_anew(addr);
    }

    /// Where the agent's phone said it receives audio (its SDP); a new agent
    /// after a transfer is latched afresh.
    pub fn agent_expects(&self, addr: Option<SocketAddr>) {
        self.shared.agent.latch_anew(addr);
    }

    /// SDP for the caller made as its leg is: SRTP with the host's key
    /// when the caller offered SRTP, plain otherwise.
    pub fn caller_sdp(&self, sdp: &[u8]) -> Vec<u8> {
        super::sdp::with_sdes(sdp, self.caller_key.as_ref())
    }

    /// Whether the caller's leg is SRTP.
    pub fn caller_srtp(&self) -> bool {
        self.caller_key.is_some()
    }

    /// SDP for an agent's phone: an SRTP offer with the host's key when
    /// `srtp`, plain otherwise.
    pub fn agent_offer(&self, sdp: &[u8], srtp: bool) -> Vec<u8> {
        super::sdp::with_sdes(sdp, srtp.then_some(&self.agent_key))
    }

    /// SDP for the agent's phone as its leg is now (answering its re-INVITE).
    pub fn agent_sdp(&self, sdp: &[u8]) -> Vec<u8> {
        let srtp = self.shared.agent_srtp.load(Ordering::Acquire);
        super::sdp::with_sdes(sdp, srtp.then_some(&self.agent_key))
    }

    /// The agent's phone answered with `sdp` an offer that was SRTP
    /// (`offered_srtp`) or plain: its leg is SRTP with the key it gave, or
    /// plain. A plain offer answered with keys stays plain: the phone was
    /// never given the host's key. Ok(true) when SRTP.
    pub fn agent_answered(&self, sdp: &[u8], offered_srtp: bool) -> Result<bool, MediaError> {
        let theirs = if offered_srtp {
            super::sdp::sdes(sdp)?
        } else {
            None
        };
        let crypto = match theirs {
            Some(theirs) => {
                // Our key under the tag and suite of the phone's answer
                // (RFC 4568 5.1.2; both suites take the same key sizes).
                let mut ours = self.agent_key.clone();
                ours.tag = theirs.tag;
                ours.suite = theirs.suite;
                Some(LegCrypto::new(&theirs, &ours)?)
            }
            None => None,
        };
        let srtp = crypto.is_some();
        self.shared.agent_srtp.store(srtp, Ordering::Release);
        self.control(Control::AgentCrypto(crypto));
        Ok(srtp)
    }

    pub fn control(&self, c: Control) {
        // The task only ends when this handle is dropped.
        let _ = self.control.send(c);
    }

    pub fn status(&self) -> RelayStatus {
        self.shared.status()
    }
}

/// An IVR step's digit collection.
struct Collect {
    step: IvrStep,
    digits: String,
    /// When the step ends without another digit (None while the prompt plays).
    deadline_ms: Option<u64>,
}

/// The relay task's state.
struct Session {
    shared: Arc<Shared>,
    settings: Arc<MediaSettings>,
    profile: AudioProfile,
    events: EventSink,
    bridged: bool,
    player: Player,
    out: Stream,
    collect: Option<Collect>,
    dtmf: DtmfDetector,
    recorder: Option<Recorder>,
    caller_crypto: Option<LegCrypto>,
    agent_crypto: Option<LegCrypto>,
}

impl Session {
    fn new(
        shared: Arc<Shared>,
        settings: Arc<MediaSettings>,
        profile: AudioProfile,
        events: EventSink,
    ) -> Self {
        Self {
            shared,
            settings,
            profile,
            events,
            bridged: false,
            player: Player::default(),
            out: Stream::new(),
            collect: None,
            dtmf: DtmfDetector::default(),
            recorder: None,
            caller_crypto: None,
            agent_crypto: None,
        }
    }

    fn call_id(&self) -> &str {
        &self.shared.call_id
    }

    /// Frames are produced only while something plays, collects or records.
    fn needs_frames(&self) -> bool {
        self.recorder.is_some() || self.collect.is_some() || (!self.bridged && self.player.active())
    }

    async fn run(
        mut self,
        caller: UdpSocket,
        agent: UdpSocket,
        mut control: mpsc::UnboundedReceiver<Control>,
        release: Release,
    ) {
        let mut from_caller = vec![0u8; 2048];
        let mut from_agent = vec![0u8; 2048];
        let mut packet = Vec::with_capacity(200);
        let mut frames = tokio::time::interval(Duration::from_millis(20));
        frames.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut slow = tokio::time::interval(Duration::from_millis(500));
        let timeout_ms = self.settings.rtp_timeout.as_millis() as u64;
        loop {
            tokio::select! {
                r = caller.recv_from(&mut from_caller) => {
                    // An SRTP packet is checked before it may latch the side.
                    if let Ok((n, src)) = r
                        && let Some(plain) = open(&mut self.caller_crypto, &from_caller[..n], &self.shared)
                        && self.shared.caller.accept(src)
                    {
                        self.caller_packet(&plain);
                        if self.bridged && let Some(to) = self.shared.agent.peer()
                            && let Some(out) = seal(&mut self.agent_crypto, &plain)
                        {
                            let _ = agent.send_to(&out, to).await;
                        }
                    }
                }
                r = agent.recv_from(&mut from_agent) => {
                    if let Ok((n, src)) = r
                        && let Some(plain) = open(&mut self.agent_crypto, &from_agent[..n], &self.shared)
                        && self.shared.agent.accept(src)
                        && self.bridged
                    {
                        self.heard(&plain);
                        if let Some(to) = self.shared.caller.peer()
                            && let Some(out) = seal(&mut self.caller_crypto, &plain)
                        {
                            let _ = caller.send_to(&out, to).await;
                        }
                    }
                }
                c = control.recv() => match c {
                    Some(c) => self.apply(c),
                    None => break,
                },
                _ = frames.tick(), if self.needs_frames() => {
                    if let Some(to) = self.frame(&mut packet)
                        && let Some(out) = seal(&mut self.caller_crypto, &packet)
                    {
                        let _ = caller.send_to(&out, to).await;
                    }
                }
                _ = slow.tick() => {
                    let armed = self.shared.armed_ms.load(Ordering::Acquire);
                    if armed == 0 {
                        continue;
                    }
                    let last = self.shared.caller.last_ms.load(Ordering::Relaxed).max(armed);
                    if now_ms().saturating_sub(last) >= timeout_ms {
                        tracing::warn!(call_id = self.call_id(), timeout_secs = self.settings.rtp_timeout.as_secs(), "no RTP from the caller");
                        (self.events)(CallEvent::CallFailed {
                            call_id: self.shared.call_id.clone(),
                            reason: "no RTP from the caller (RTP timeout)".into(),
                        });
                        // Keep recording until the call is torn down.
                        self.shared.armed_ms.store(0, Ordering::Release);
                    }
                }
            }
        }
        // The ports go back now; the recording is closed, hashed and
        // indexed on a blocking thread, counted until it is (a stop waits
        // for `live_relays` to reach 0: then every recording is indexed).
        self.finish_recording(&release.finishing);
    }

    fn apply(&mut self, c: Control) {
        match c {
            Control::Answered => self.arm(),
            Control::Ivr { step, prompt } => {
                self.arm();
                self.bridged = false;
                self.player.stop_prompts();
                match prompt {
                    Some(p) => self.player.queue(p),
                    None => tracing::warn!(
                        call_id = self.call_id(),
                        prompt = step.prompt,
                        "prompt not found; collecting digits without it"
                    ),
                }
                if let Some(r) = &mut self.recorder {
                    r.set_sensitive(step.sensitive);
                }
                self.collect = Some(Collect {
                    step,
                    digits: String::new(),
                    deadline_ms: None,
                });
            }
            Control::Hold { music } => {
                self.arm();
                // A transferred call is back in a queue: the host is the
                // caller's peer again until the next agent answers.
                self.bridged = false;
                self.player.set_music(music);
            }
            Control::Announce(prompts) => {
                for p in prompts {
                    self.player.queue(p);
                }
            }
            Control::Bridge => {
                self.arm();
                self.bridged = true;
                self.player.clear();
                self.collect = None;
                if let Some(r) = &mut self.recorder {
                    r.set_sensitive(false);
                }
            }
            Control::Record(plan) => self.start_recording(plan),
            Control::Pause(p) => {
                if let Some(r) = &mut self.recorder {
                    r.set_paused(p);
                }
            }
            Control::Dtmf(d) => self.digit(d),
            Control::CallerProfile(p) => self.profile = p,
            Control::AgentCrypto(c) => self.agent_crypto = c,
        }
    }

    fn arm(&self) {
        let _ =
            self.shared
                .armed_ms
                .compare_exchange(0, now_ms(), Ordering::AcqRel, Ordering::Acquire);
    }

    fn start_recording(&mut self, plan: RecordingPlan) {
        let Some(dir) = &self.settings.recording_dir else {
            return;
        };
        if self.recorder.is_some() {
            return;
        }
        let keys = self.settings.recording_keys.clone();
        match Recorder::create(dir, &self.shared.call_id, now_ms(), plan, keys) {
            Ok(mut r) => {
                tracing::info!(call_id = self.call_id(), file = %r.path().display(), "recording");
                if self.collect.as_ref().is_some_and(|c| c.step.sensitive) {
                    r.set_sensitive(true);
                }
                // Indexed as it starts: a crash leaves no unindexed file.
                if let Some(sink) = self.settings.recordings.clone() {
                    let entry = r.started_entry();
                    tokio::task::spawn_blocking(move || sink(entry));
                }
                self.shared.recording.store(true, Ordering::Relaxed);
                self.recorder = Some(r);
            }
            Err(e) => {
                tracing::error!(call_id = self.call_id(), error = %e, "cannot start the recording")
            }
        }
    }

    fn caller_packet(&mut self, buf: &[u8]) {
        let Some(p) = rtp::parse(buf) else { return };
        if Some(p.payload_type) == self.profile.dtmf_payload_type {
            if let Some(ev) = rtp::telephone_event(p.payload)
                && let Some(d) = self.dtmf.feed(p.timestamp, ev)
            {
                self.digit(d);
            }
            return;
        }
        if let (Some(r), Some(law)) = (&mut self.recorder, Law::from_payload_type(p.payload_type)) {
            r.caller_audio(p.payload.iter().map(|&b| law.decode(b)));
        }
    }

    fn heard(&mut self, buf: &[u8]) {
        let Some(p) = rtp::parse(buf) else { return };
        if let (Some(r), Some(law)) = (&mut self.recorder, Law::from_payload_type(p.payload_type)) {
            r.heard_audio(p.payload.iter().map(|&b| law.decode(b)));
        }
    }

    /// A key the caller pressed (RFC 4733 or SIP INFO).
    fn digit(&mut self, d: char) {
        let Some(c) = &mut self.collect else {
            (self.events)(CallEvent::Dtmf {
                call_id: self.shared.call_id.clone(),
                digit: d,
            });
            return;
        };
        // Barge-in: the prompt stops at the first key.
        self.player.stop_prompts();
        let terminator = c.step.terminator.as_deref().and_then(|t| t.chars().next());
        // A prompt-only step (no digits wanted) ends at the first key.
        if Some(d) == terminator || c.step.max_digits == 0 {
            return self.end_step();
        }
        c.digits.push(d);
        if c.digits.chars().count() >= c.step.max_digits as usize {
            return self.end_step();
        }
        c.deadline_ms = Some(now_ms() + c.step.inter_digit_timeout_ms as u64);
    }

    fn end_step(&mut self) {
        let Some(c) = self.collect.take() else { return };
        if let Some(r) = &mut self.recorder {
            r.set_sensitive(false);
        }
        (self.events)(CallEvent::DigitsCollected {
            call_id: self.shared.call_id.clone(),
            step: c.step.name,
            digits: c.digits,
        });
    }

    /// The next 20 ms: the player's frame to the caller (returned as the
    /// packet and where it goes), the step's timers, the recorder's frame.
    fn frame(&mut self, packet: &mut Vec<u8>) -> Option<SocketAddr> {
        let mut to = None;
        if !self.bridged {
            let mut pcm = [0i16; FRAME];
            if self.player.next_frame(&mut pcm) {
                let law = self.profile.law;
                let mut payload = [0u8; FRAME];
                for (b, &s) in payload.iter_mut().zip(&pcm) {
                    *b = law.encode(s);
                }
                self.out.packet(law.payload_type(), &payload, packet);
                if let Some(r) = &mut self.recorder {
                    r.heard_audio(pcm.iter().copied());
                }
                to = self.shared.caller.peer();
                if to.is_some() {
                    self.shared.played.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                self.out.mark();
            }
        }
        let prompting = self.player.prompting();
        if let Some(c) = &mut self.collect
            && !prompting
        {
            let now = now_ms();
            if c.step.max_digits == 0 {
                self.end_step();
            } else {
                let deadline = *c
                    .deadline_ms
                    .get_or_insert(now + c.step.inter_digit_timeout_ms as u64);
                if now >= deadline {
                    self.end_step();
                }
            }
        }
        if let Some(r) = &mut self.recorder
            && let Err(e) = r.tick()
        {
            tracing::error!(call_id = self.shared.call_id, error = %e, "recording stopped");
            self.recorder = None;
            self.shared.recording.store(false, Ordering::Relaxed);
        }
        to
    }

    fn finish_recording(&mut self, finishing: &Arc<AtomicUsize>) {
        let Some(r) = self.recorder.take() else {
            return;
        };
        let pending = Finishing::start(finishing.clone());
        let sink = self.settings.recordings.clone();
        let call_id = self.shared.call_id.clone();
        // Closing and hashing a long recording is blocking file work.
        tokio::task::spawn_blocking(move || {
            let _pending = pending;
            match r.finish() {
                Ok(entry) => {
                    tracing::info!(call_id, file = %entry.file.display(), duration_ms = entry.duration_ms, "recording finished");
                    if let Some(sink) = sink {
                        sink(entry);
                    }
                }
                Err(e) => tracing::error!(call_id, error = %e, "cannot finish the recording"),
            }
        });
    }
}

/// What arrived on a side, as plain RTP: decrypted when the side is SRTP
/// (None, and counted, when it does not authenticate).
fn open<'a>(
    crypto: &mut Option<LegCrypto>,
    packet: &'a [u8],
    shared: &Shared,
) -> Option<std::borrow::Cow<'a, [u8]>> {
    match crypto {
        None => Some(std::borrow::Cow::Borrowed(packet)),
        Some(c) => match c.unprotect(packet) {
            Ok(p) => Some(std::borrow::Cow::Owned(p)),
            Err(e) => {
                shared.srtp_refused.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(call_id = shared.call_id, error = %e, "SRTP packet refused");
                None
            }
        },
    }
}

/// What goes out to a side: encrypted when the side is SRTP.
fn seal<'a>(crypto: &mut Option<LegCrypto>, plain: &'a [u8]) -> Option<std::borrow::Cow<'a, [u8]>> {
    match crypto {
        None => Some(std::borrow::Cow::Borrowed(plain)),
        Some(c) => c.protect(plain).ok().map(std::borrow::Cow::Owned),
    }
}
