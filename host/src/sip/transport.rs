//! UDP and TCP transports on tokio.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::endpoint::SipEndpoint;
use super::registrar::Transport;
use super::wire::{Frame, RawMessage, frame, response};
use crate::clock::now_ms;

pub async fn serve_udp(socket: Arc<UdpSocket>, ep: Arc<SipEndpoint>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "SIP UDP receive failed");
                continue;
            }
        };
        if let Some(resp) = ep.handle(&buf[..n], src, Transport::Udp, now_ms())
            && let Err(e) = socket.send_to(&resp, src).await
        {
            tracing::warn!(%src, error = %e, "SIP UDP send failed");
        }
    }
}

pub async fn serve_tcp(listener: TcpListener, ep: Arc<SipEndpoint>, max_bytes: usize) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, ep.clone(), max_bytes));
            }
            Err(e) => tracing::warn!(error = %e, "SIP TCP accept failed"),
        }
    }
}

async fn connection(mut stream: TcpStream, ep: Arc<SipEndpoint>, max_bytes: usize) {
    let Ok(peer) = stream.peer_addr() else { return };
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        loop {
            match frame(&buf, max_bytes) {
                Frame::Incomplete => break,
                Frame::KeepAlive(n) => {
                    buf.drain(..n);
                }
                Frame::Message(n) => {
                    let msg: Vec<u8> = buf.drain(..n).collect();
                    if let Some(resp) = ep.handle(&msg, peer, Transport::Tcp, now_ms())
                        && stream.write_all(&resp).await.is_err()
                    {
                        return;
                    }
                }
                Frame::TooLarge { head } => {
                    // Answer 513 from the head if there is one, then drop the connection:
                    // the rest of the stream cannot be framed reliably.
                    if let Some(h) = head
                        && let Ok(m) = RawMessage::parse_head(&buf[..h])
                    {
                        let _ = stream
                            .write_all(&response(&m, 513, "Message Too Large", None, &[]))
                            .await;
                    }
                    return;
                }
                Frame::Invalid => return,
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
