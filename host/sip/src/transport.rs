//! UDP, TCP and TLS transports on tokio. A TCP or TLS connection, accepted
//! or opened by us, has one writer task fed by a channel, so any part of the
//! host can send on it without holding the socket. TLS is rustls (ring):
//! the handshake runs in the connection's own task, bounded in time, so a
//! slow or silent client never holds the accept loop.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::{Receiver, channel};

use super::endpoint::SipEndpoint;
use super::flow::{Peer, Transport};
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

/// A TLS handshake not done in this long is given up (the connection
/// counts against the limits meanwhile).
pub const TLS_HANDSHAKE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accept SIP over TCP, or over TLS with `tls`.
pub async fn serve_tcp(
    listener: TcpListener,
    ep: Arc<SipEndpoint>,
    limits: TcpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: ctihost_ground::shutdown::Shutdown,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    let mut backoff = std::time::Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.recv() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                // SIP sends several small messages in a row (100, 180, 200;
                // ACK then BYE): with Nagle each waits for the peer's
                // delayed ACK, some 40 ms a message.
                let _ = stream.set_nodelay(true);
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
                ep.connection_opened(peer, transport, tx);
                let ep = ep.clone();
                match &tls {
                    None => {
                        tokio::spawn(connection(stream, Peer::tcp(peer), ep, rx, limits.idle));
                    }
                    Some(acceptor) => {
                        let accept = acceptor.accept(stream);
                        tokio::spawn(async move {
                            match tokio::time::timeout(TLS_HANDSHAKE_LIMIT, accept).await {
                                Ok(Ok(s)) => {
                                    if let Some(cert) =
                                        s.get_ref().1.peer_certificates().and_then(|c| c.first())
                                    {
                                        ep.tls_client_certificate(peer, cert.as_ref());
                                    }
                                    connection(s, Peer::tls(peer), ep, rx, limits.idle).await
                                }
                                Ok(Err(e)) => {
                                    ep.bound_hit("tls-handshake-failed");
                                    ctihost_ground::log_limit::warn_every_second(
                                        "tls-handshake-failed",
                                        &format!("SIP TLS handshake with {peer} failed: {e}"),
                                    );
                                    ep.connection_closed(peer);
                                }
                                Err(_) => {
                                    ep.bound_hit("tls-handshake-timeout");
                                    ctihost_ground::log_limit::warn_every_second(
                                        "tls-handshake-timeout",
                                        &format!(
                                            "SIP TLS handshake with {peer} not done in {} s; closed",
                                            TLS_HANDSHAKE_LIMIT.as_secs()
                                        ),
                                    );
                                    ep.connection_closed(peer);
                                }
                            }
                        });
                    }
                }
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

/// Open a connection for requests to a peer we have none with: TCP, or
/// TLS with `tls` (the client configuration and the name to check).
pub async fn connect(
    ep: Arc<SipEndpoint>,
    peer: Peer,
    rx: Receiver<Vec<u8>>,
    tls: Option<(
        tokio_rustls::TlsConnector,
        tokio_rustls::rustls::pki_types::ServerName<'static>,
    )>,
) {
    let idle = std::time::Duration::from_secs(3600);
    let stream = match TcpStream::connect(peer.addr).await {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            s
        }
        Err(e) => {
            tracing::warn!(peer = %peer.addr, error = %e, "SIP TCP connect failed");
            ep.connection_closed(peer.addr);
            return;
        }
    };
    match tls {
        None => connection(stream, peer, ep, rx, idle).await,
        Some((connector, name)) => {
            match tokio::time::timeout(TLS_HANDSHAKE_LIMIT, connector.connect(name, stream)).await {
                Ok(Ok(s)) => connection(s, peer, ep, rx, idle).await,
                Ok(Err(e)) => {
                    tracing::warn!(peer = %peer.addr, error = %e, "SIP TLS connect failed");
                    ep.bound_hit("tls-handshake-failed");
                    ep.connection_closed(peer.addr);
                }
                Err(_) => {
                    tracing::warn!(peer = %peer.addr, "SIP TLS handshake timed out");
                    ep.bound_hit("tls-handshake-timeout");
                    ep.connection_closed(peer.addr);
                }
            }
        }
    }
}

async fn connection<S>(
    stream: S,
    flow: Peer,
    ep: Arc<SipEndpoint>,
    mut rx: Receiver<Vec<u8>>,
    idle: std::time::Duration,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let peer = flow.addr;
    let (mut reader, mut writer) = tokio::io::split(stream);
    // Ends when the endpoint forgets the connection and the queue is drained.
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
            // TLS buffers a record until flushed.
            if writer.flush().await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
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
                    ep.receive(&msg, flow);
                }
                Frame::TooLarge { head } => {
                    // Answer 513 from the head if there is one, then drop the connection:
                    // the rest of the stream cannot be framed reliably.
                    if let Some(h) = head
                        && let Ok(m) = RawMessage::parse_head(&buf[..h])
                    {
                        ep.send(flow, response(&m, 513, "Message Too Large", None, &[]));
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
