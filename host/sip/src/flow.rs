//! Where a SIP message goes or came from: the transport, the remote address
//! and, for UDP, which of our listening sockets carries it (so an answer
//! leaves from the port the request reached).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    /// TCP with TLS (RFC 3261 section 26.2; `transport=tls` in URIs).
    Tls,
}

impl Transport {
    /// The Via token (RFC 3261 section 18).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// Index of the UDP listener (0 for TCP).
    pub listener: u8,
}

impl Peer {
    pub fn udp(addr: SocketAddr, listener: u8) -> Self {
        Self {
            transport: Transport::Udp,
            addr,
            listener,
        }
    }

    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Tcp,
            addr,
            listener: 0,
        }
    }

    pub fn tls(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Tls,
            addr,
            listener: 0,
        }
    }

    /// A connection-oriented flow: TCP, or TCP under TLS.
    pub fn connected(addr: SocketAddr, transport: Transport) -> Self {
        Self {
            transport,
            addr,
            listener: 0,
        }
    }

    /// Reliable transports need no retransmissions and no linger timers.
    pub fn reliable(&self) -> bool {
        self.transport != Transport::Udp
    }
}
