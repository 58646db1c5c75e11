//! One relay per call: a UDP port facing the caller and one facing the agent;
//! what arrives on one goes out of the other to the latched peer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::net::UdpSocket;

use super::ports::PortPool;
use crate::clock::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no free RTP port in the configured range ({0} in use)")]
    NoPorts(usize),
    #[error("cannot bind an RTP port: {0}")]
    Bind(std::io::Error),
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
        }
    }
}

/// The media layer: the port pool and the live relays.
pub struct Media {
    pool: Arc<PortPool>,
    address: IpAddr,
    rtp_timeout: Duration,
    live: Arc<Mutex<HashMap<String, Arc<Shared>>>>,
    /// Calls refused for want of ports, and when that was last logged.
    refused: AtomicU64,
    refused_logged_ms: AtomicU64,
}

/// A call's relay; dropping it stops the relay and frees its ports.
pub struct Relay {
    shared: Arc<Shared>,
    address: IpAddr,
    task: tokio::task::AbortHandle,
    pool: Arc<PortPool>,
    live: Arc<Mutex<HashMap<String, Arc<Shared>>>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        self.pool.give(self.shared.caller_port);
        self.pool.give(self.shared.agent_port);
        self.live.lock().remove(&self.shared.call_id);
    }
}

impl Media {
    pub fn new(address: IpAddr, first_port: u16, last_port: u16, rtp_timeout: Duration) -> Self {
        let pool = PortPool::new(first_port, last_port);
        let offset = crate::random::bytes::<4>()
            .map(u32::from_le_bytes)
            .unwrap_or(0);
        pool.rotate(offset as usize);
        Self {
            pool: Arc::new(pool),
            address,
            rtp_timeout,
            live: Arc::new(Mutex::new(HashMap::new())),
            refused: AtomicU64::new(0),
            refused_logged_ms: AtomicU64::new(0),
        }
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
            match std::net::UdpSocket::bind(SocketAddr::new(self.address, port)) {
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

    /// Open a relay for a call; `on_timeout` is called once if the caller
    /// stops sending RTP for the configured time after [`Relay::arm`].
    pub fn open(
        &self,
        call_id: &str,
        on_timeout: Box<dyn FnOnce() + Send>,
    ) -> Result<Relay, MediaError> {
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
        });
        self.live.lock().insert(call_id.to_owned(), shared.clone());
        let task = tokio::spawn(run(
            shared.clone(),
            caller_sock,
            agent_sock,
            self.rtp_timeout,
            on_timeout,
        ));
        Ok(Relay {
            shared,
            address: self.address,
            task: task.abort_handle(),
            pool: self.pool.clone(),
            live: self.live.clone(),
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

    /// Where the caller said it receives audio (its SDP).
    pub fn caller_expects(&self, addr: Option<SocketAddr>) {
        self.shared.caller.latch_anew(addr);
    }

    /// Where the agent's phone said it receives audio (its SDP); a new agent
    /// after a transfer is latched afresh.
    pub fn agent_expects(&self, addr: Option<SocketAddr>) {
        self.shared.agent.latch_anew(addr);
    }

    /// The call is connected: from now on a caller silent for the RTP
    /// timeout is reported.
    pub fn arm(&self) {
        let _ =
            self.shared
                .armed_ms
                .compare_exchange(0, now_ms(), Ordering::AcqRel, Ordering::Acquire);
    }

    pub fn status(&self) -> RelayStatus {
        self.shared.status()
    }
}

async fn run(
    shared: Arc<Shared>,
    caller: UdpSocket,
    agent: UdpSocket,
    timeout: Duration,
    on_timeout: Box<dyn FnOnce() + Send>,
) {
    let mut from_caller = vec![0u8; 2048];
    let mut from_agent = vec![0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let timeout_ms = timeout.as_millis() as u64;
    loop {
        tokio::select! {
            r = caller.recv_from(&mut from_caller) => {
                if let Ok((n, src)) = r
                    && shared.caller.accept(src)
                    && let Some(to) = shared.agent.peer()
                {
                    let _ = agent.send_to(&from_caller[..n], to).await;
                }
            }
            r = agent.recv_from(&mut from_agent) => {
                if let Ok((n, src)) = r
                    && shared.agent.accept(src)
                    && let Some(to) = shared.caller.peer()
                {
                    let _ = caller.send_to(&from_agent[..n], to).await;
                }
            }
            _ = tick.tick() => {
                let armed = shared.armed_ms.load(Ordering::Acquire);
                if armed == 0 {
                    continue;
                }
                let last = shared.caller.last_ms.load(Ordering::Relaxed).max(armed);
                if now_ms().saturating_sub(last) >= timeout_ms {
                    tracing::warn!(call_id = shared.call_id, timeout_secs = timeout.as_secs(), "no RTP from the caller");
                    on_timeout();
                    return;
                }
            }
        }
    }
}
