//! UDP and TCP transports on tokio. A TCP connection, accepted or opened by
//! us, has one writer task fed by a channel, so any part of the host can send
//! on it without holding the socket.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::{Receiver, channel};

use super::endpoint::SipEndpoint;
use super::flow::Peer;
use super::wire::{Frame, RawMessage, frame, response};

/// Bind a SIP UDP socket with `buffer_bytes` of kernel buffer each way. The
/// default (about 200 KiB) holds a few milliseconds of a busy trunk: a burst
/// while the host's threads are busy overflows it, and a dropped 200 OK that
/// the phone does not retransmit leaves a call ringing until its timeout.
pub fn bind_udp(addr: SocketAddr, buffer_bytes: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_recv_buffer_size(buffer_bytes)?;
    s.set_send_buffer_size(buffer_bytes)?;
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    // Linux reports twice what it grants, capped by net.core.rmem_max.
    let granted = s.recv_buffer_size()? / 2;
    if granted < buffer_bytes {
        tracing::warn!(
            %addr,
            wanted = buffer_bytes,
            granted,
            "SIP UDP receive buffer capped by the kernel; raise net.core.rmem_max (sysctl) to get the configured size"
        );
    }
    UdpSocket::from_std(s.into())
}

pub async fn serve_udp(
    socket: Arc<UdpSocket>,
    listener: u8,
    ep: Arc<SipEndpoint>,
    mut shutdown: ctihost_ground::shutdown::Shutdown,
) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            () = shutdown.recv() => return,
        };
        match received {
            Ok((n, src)) => ep.receive(&buf[..n], Peer::udp(src, listener)),
            Err(e) => tracing::warn!(error = %e, "SIP UDP receive failed"),
        }
    }
}

/// Messages queued for one TCP peer: a peer that does not read its answers
/// (pipelined requests, never a read) is dropped when this fills.
pub const OUTPUT_QUEUE: usize = 256;

/// What the network may hold open over TCP.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Connections at once (accepted and our own), over every source.
    pub max_connections: usize,
    /// Connections at once from one address.
    pub max_per_source: usize,
    /// A connection that sends nothing for this long is closed (a phone's
    /// keep-alives, CRLF, count).
    pub idle: std::time::Duration,
}

pub async fn serve_tcp(
    listener: TcpListener,
    ep: Arc<SipEndpoint>,
    limits: TcpLimits,
    mut shutdown: ctihost_ground::shutdown::Shutdown,
) {
    let mut backoff = std::time::Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.recv() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = std::time::Duration::from_millis(10);
                let refused = if ep.connections(None) >= limits.max_connections {
                    Some("tcp-connections")
                } else if ep.connections(Some(peer.ip())) >= limits.max_per_source {
                    Some("tcp-connections-per-source")
                } else {
                    None
                };
                if let Some(bound) = refused {
                    // Closed at once: the descriptor goes back before the
                    // next accept, and media keeps its own.
                    drop(stream);
                    ep.bound_hit(bound);
                    ctihost_ground::log_limit::warn_every_second(
                        bound,
                        &format!(
                            "SIP TCP connection from {peer} refused: {bound} at its limit ({limits:?})"
                        ),
                    );
                    continue;
                }
                let (tx, rx) = channel(OUTPUT_QUEUE);
                ep.connection_opened(peer, tx);
                tokio::spawn(connection(stream, peer, ep.clone(), rx, limits.idle));
            }
            Err(e) => {
                // Out of descriptors (EMFILE) and the like: retrying at once
                // spins a core and floods the log. Back off, log once a second.
                ctihost_ground::log_limit::warn_every_second(
                    "tcp-accept-failed",
                    &format!(
                        "SIP TCP accept failed: {e}; retrying in {} ms",
                        backoff.as_millis()
                    ),
                );
                ep.bound_hit("tcp-accept-failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// Open a connection for requests to a peer we have none with.
pub async fn connect(ep: Arc<SipEndpoint>, peer: SocketAddr, rx: Receiver<Vec<u8>>) {
    match TcpStream::connect(peer).await {
        Ok(stream) => connection(stream, peer, ep, rx, std::time::Duration::from_secs(3600)).await,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "SIP TCP connect failed");
            ep.connection_closed(peer);
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    ep: Arc<SipEndpoint>,
    mut rx: Receiver<Vec<u8>>,
    idle: std::time::Duration,
) {
    let (mut reader, mut writer) = stream.into_split();
    // Ends when the endpoint forgets the connection and the queue is drained.
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let max_bytes = ep.max_bytes();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    'read: loop {
        loop {
            match frame(&buf, max_bytes) {
                Frame::Incomplete => break,
                Frame::KeepAlive(n) => {
                    buf.drain(..n);
                }
                Frame::Message(n) => {
                    let msg: Vec<u8> = buf.drain(..n).collect();
                    ep.receive(&msg, Peer::tcp(peer));
                }
                Frame::TooLarge { head } => {
                    // Answer 513 from the head if there is one, then drop the connection:
                    // the rest of the stream cannot be framed reliably.
                    if let Some(h) = head
                        && let Ok(m) = RawMessage::parse_head(&buf[..h])
                    {
                        ep.send(
                            Peer::tcp(peer),
                            response(&m, 513, "Message Too Large", None, &[]),
                        );
                    }
                    break 'read;
                }
                Frame::Invalid => break 'read,
            }
        }
        match tokio::time::timeout(idle, reader.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {
                ep.bound_hit("tcp-idle");
                tracing::debug!(%peer, idle_secs = idle.as_secs(), "idle SIP TCP connection closed");
                break;
            }
        }
        // Dropped by the endpoint (its output queue was full): stop reading.
        if !ep.has_connection(peer) {
            break;
        }
    }
    ep.connection_closed(peer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The socket gets the configured buffer, or all the kernel allows.
    #[tokio::test]
    async fn udp_sockets_get_the_configured_buffer() {
        let want = 2 << 20;
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(want);
        let sock = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), want).unwrap();
        let granted = socket2::SockRef::from(&sock).recv_buffer_size().unwrap() / 2;
        assert!(
            granted >= want.min(cap),
            "granted {granted}, wanted {want}, cap {cap}"
        );
        assert!(sock.local_addr().unwrap().port() != 0);
    }
}
