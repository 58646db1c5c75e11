//! A minimal SIP caller for the transport benchmark: INVITE, wait for the
//! 2xx, ACK, BYE, wait for its 2xx, over UDP or over TLS, the same code for
//! both so their ratio measures the transport alone. One call at a time on
//! one link; a benchmark runs many links at once.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest wait for any one answer; a call waiting longer failed.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

pub enum Link {
    Udp(tokio::net::UdpSocket, SocketAddr),
    Tls(
        Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        Vec<u8>,
    ),
}

impl Link {
    pub async fn udp(target: SocketAddr) -> Link {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Link::Udp(s, target)
    }

    pub async fn tls(target: SocketAddr, connector: &tokio_rustls::TlsConnector) -> Link {
        let tcp = tokio::net::TcpStream::connect(target).await.unwrap();
        // As the host does: no Nagle wait between the ACK and the BYE.
        tcp.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        Link::Tls(
            Box::new(connector.connect(name, tcp).await.unwrap()),
            Vec::new(),
        )
    }

    fn local(&self) -> SocketAddr {
        match self {
            Link::Udp(s, _) => s.local_addr().unwrap(),
            Link::Tls(s, _) => s.get_ref().0.local_addr().unwrap(),
        }
    }

    fn token(&self) -> &'static str {
        match self {
            Link::Udp(..) => "UDP",
            Link::Tls(..) => "TLS",
        }
    }

    async fn send(&mut self, m: &str) -> Option<()> {
        match self {
            Link::Udp(s, to) => s.send_to(m.as_bytes(), *to).await.ok().map(drop),
            Link::Tls(s, _) => {
                s.write_all(m.as_bytes()).await.ok()?;
                s.flush().await.ok()
            }
        }
    }

    /// The next SIP message (a datagram, or framed by Content-Length).
    async fn recv(&mut self) -> Option<String> {
        match self {
            Link::Udp(s, _) => {
                let mut b = vec![0u8; 65_535];
                let n = s.recv(&mut b).await.ok()?;
                Some(String::from_utf8_lossy(&b[..n]).into_owned())
            }
            Link::Tls(s, buf) => loop {
                // CRLF keep-alives between messages.
                while buf.starts_with(b"\r\n") {
                    buf.drain(..2);
                }
                if let Some(head) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let text = String::from_utf8_lossy(&buf[..head]).into_owned();
                    let len = header(&text, &["content-length", "l"])
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= head + 4 + len {
                        let m: Vec<u8> = buf.drain(..head + 4 + len).collect();
                        return Some(String::from_utf8_lossy(&m).into_owned());
                    }
                }
                let mut chunk = [0u8; 8192];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            },
        }
    }

    /// The final answer (>= 200) to our request `method`.
    async fn answer(&mut self, method: &str) -> Option<String> {
        loop {
            let m = tokio::time::timeout(ANSWER_WITHIN, self.recv())
                .await
                .ok()??;
            let Some(rest) = m.strip_prefix("SIP/2.0 ") else {
                continue; // a request of the host's: not expected here
            };
            let code: u16 = rest.get(..3)?.parse().ok()?;
            let ours = header(&m, &["cseq"]).is_some_and(|c| c.ends_with(method));
            if ours && code >= 200 {
                return Some(m);
            }
        }
    }
}

/// A header's value, by any of its names (lowercase; compact forms too).
fn header<'a>(m: &'a str, names: &[&str]) -> Option<&'a str> {
    m.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        names
            .contains(&k.trim().to_ascii_lowercase().as_str())
            .then(|| v.trim())
    })
}

/// One call to `dialed` at `target` on `link`, `n` making its ids unique.
/// Some(()) when every answer came and was a 2xx.
pub async fn call(link: &mut Link, target: SocketAddr, dialed: &str, n: u64) -> Option<()> {
    let local = link.local();
    let t = link.token();
    let transport = t.to_ascii_lowercase();
    let call_id = format!("bench-{}-{n}@{local}", std::process::id());
    let from = format!("<sip:+86138{n:08}@127.0.0.1>;tag=f{n}");
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
    let invite = format!(
        "INVITE sip:{dialed}@{target} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bK-i{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: <sip:{dialed}@{target}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:caller@{local};transport={transport}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    link.send(&invite).await?;
    let ok = link.answer("INVITE").await?;
    let code_ok = ok.starts_with("SIP/2.0 2");
    let to = header(&ok, &["to", "t"])?.to_owned();
    let contact = header(&ok, &["contact", "m"])
        .and_then(|c| c.split('<').nth(1)?.split('>').next())
        .unwrap_or("")
        .to_owned();
    let ruri = if contact.is_empty() {
        format!("sip:{dialed}@{target}")
    } else {
        contact
    };
    let in_dialog = |method: &str, cseq: u32, branch: &str| {
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bK-{branch}{n};rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    // The ACK of a non-2xx is the host's transaction's; of a 2xx, ours.
    if !code_ok {
        return None;
    }
    link.send(&in_dialog("ACK", 1, "a")).await?;
    link.send(&in_dialog("BYE", 2, "b")).await?;
    let bye = link.answer("BYE").await?;
    bye.starts_with("SIP/2.0 2").then_some(())
}
