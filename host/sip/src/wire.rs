//! SIP on the wire, around `rsip`'s gaps: framing by Content-Length, compact
//! header names, LF-only line endings and folded headers are normalised here,
//! and a tolerant raw view of the head lets the host answer (400, 501, 513)
//! even when `rsip` cannot parse a request.

use std::fmt::Write as _;

/// Methods this host knows; anything else gets 501 Not Implemented.
pub const KNOWN_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "UPDATE",
    "MESSAGE",
    "REFER",
    "PUBLISH",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("no blank line after the headers")]
    NoHeaderEnd,
    #[error("bad start line")]
    BadStartLine,
    #[error("bad header line {0:?}")]
    BadHeader(String),
    #[error("body shorter than Content-Length")]
    ShortBody,
    #[error("bad Content-Length")]
    BadContentLength,
}

/// A message split into start line, headers (full names) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// RFC 3261 section 7.3.3.
fn expand_compact(name: &str) -> &str {
    match name.to_ascii_lowercase().as_str() {
        "i" => "Call-ID",
        "m" => "Contact",
        "e" => "Content-Encoding",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "f" => "From",
        "s" => "Subject",
        "k" => "Supported",
        "t" => "To",
        "v" => "Via",
        "o" => "Event",
        "r" => "Refer-To",
        "u" => "Allow-Events",
        _ => name,
    }
}

fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    // (end of head, start of body); accepts CRLF or bare LF line endings.
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl RawMessage {
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        Self::parse_inner(buf, true)
    }

    /// The start line and headers only (to answer a message whose body is
    /// not, or will never be, all here).
    pub fn parse_head(buf: &[u8]) -> Result<Self, WireError> {
        Self::parse_inner(buf, false)
    }

    fn parse_inner(buf: &[u8], with_body: bool) -> Result<Self, WireError> {
        let buf = trim_leading_newlines(buf);
        if buf.is_empty() {
            return Err(WireError::Empty);
        }
        let (head_end, body_start) = header_end(buf).ok_or(WireError::NoHeaderEnd)?;
        let head = String::from_utf8_lossy(&buf[..head_end]);
        let mut lines: Vec<String> = Vec::new();
        for line in head.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if (line.starts_with(' ') || line.starts_with('\t')) && lines.len() > 1 {
                // A folded header continues the previous line.
                if let Some(last) = lines.last_mut() {
                    last.push(' ');
                    last.push_str(line.trim());
                }
                continue;
            }
            lines.push(line.to_owned());
        }
        let mut it = lines.into_iter();
        let start = it.next().ok_or(WireError::BadStartLine)?.trim().to_owned();
        if start.split_whitespace().count() < 3 {
            return Err(WireError::BadStartLine);
        }
        let mut headers = Vec::new();
        for line in it {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| WireError::BadHeader(line.chars().take(40).collect()))?;
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(WireError::BadHeader(line.chars().take(40).collect()));
            }
            headers.push((expand_compact(name).to_owned(), value.trim().to_owned()));
        }
        let mut msg = Self {
            start,
            headers,
            body: Vec::new(),
        };
        if !with_body {
            return Ok(msg);
        }
        let rest = &buf[body_start..];
        let len = match msg.header("Content-Length") {
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| WireError::BadContentLength)?,
            None => rest.len(),
        };
        if rest.len() < len {
            return Err(WireError::ShortBody);
        }
        msg.body = rest[..len].to_vec();
        Ok(msg)
    }

    pub fn is_request(&self) -> bool {
        !self.start.starts_with("SIP/")
    }

    pub fn method(&self) -> Option<&str> {
        self.is_request()
            .then(|| self.start.split_whitespace().next())
            .flatten()
    }

    pub fn uri(&self) -> Option<&str> {
        self.start.split_whitespace().nth(1)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Canonical bytes: CRLF, full header names, exact Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512);
        let _ = write!(s, "{}\r\n", self.start);
        for (n, v) in self
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("Content-Length"))
        {
            let _ = write!(s, "{n}: {v}\r\n");
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// The branch of the top Via (transaction key).
    pub fn branch(&self) -> Option<String> {
        super::syntax::top_via(self.header("Via")?).and_then(|(_, b)| b)
    }

    /// The sent-by (`host[:port]`) of the top Via.
    pub fn sent_by(&self) -> Option<&str> {
        super::syntax::top_via(self.header("Via")?).map(|(s, _)| s)
    }
}

fn trim_leading_newlines(buf: &[u8]) -> &[u8] {
    let n = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    &buf[n..]
}

/// The address a SIP URI with an IP literal points at (port 5060 when none).
pub fn uri_socket_addr(uri: &str) -> Option<std::net::SocketAddr> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split([';', '?', '>']).next()?;
    host.parse()
        .ok()
        .or_else(|| {
            host.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| (ip, 5060).into())
        })
        .or_else(|| {
            let ip = host.strip_prefix('[')?.strip_suffix(']')?;
            ip.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| (ip, 5060).into())
        })
}

/// A `;name=value` parameter of a header value (case-insensitive name).
/// A `;` inside a quoted display name or inside `<...>` is not a
/// separator: `"x;tag=a" <sip:b;tag=c>;tag=d` has the tag `d`.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    header_params(value).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// The `;`-separated parameters of a header value, outside quotes and
/// angle brackets.
fn header_params(value: &str) -> impl Iterator<Item = &str> {
    let mut bracket = false;
    let cuts: Vec<usize> = unquoted(value)
        .filter(|&(_, b)| {
            match b {
                b'<' => bracket = true,
                b'>' => bracket = false,
                _ => {}
            }
            b == b';' && !bracket
        })
        .map(|(i, _)| i)
        .collect();
    let ends: Vec<usize> = cuts.iter().skip(1).copied().chain([value.len()]).collect();
    cuts.into_iter()
        .zip(ends)
        .map(move |(a, b)| &value[a + 1..b])
}

/// The bytes of a header value outside its quoted strings, with their
/// offsets (quotes and quoted-pairs left out).
fn unquoted(value: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let (mut quoted, mut escaped) = (false, false);
    value.bytes().enumerate().filter(move |&(_, b)| {
        if escaped {
            escaped = false;
            return false;
        }
        match b {
            b'\\' if quoted => {
                escaped = true;
                false
            }
            b'"' => {
                quoted = !quoted;
                false
            }
            _ => !quoted,
        }
    })
}

/// The URI of a name-addr or addr-spec (`"Bob" <sip:bob@x>;tag=1` -> `sip:bob@x`).
/// A `<` inside a quoted display name does not open the URI.
pub fn addr_uri(value: &str) -> &str {
    let open = unquoted(value).find(|&(_, b)| b == b'<').map(|(i, _)| i);
    match open.and_then(|a| value[a..].find('>').map(|b| (a, a + b))) {
        Some((a, b)) => &value[a + 1..b],
        None => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The user part of a SIP URI (`sip:1001@host;x` -> `1001`).
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))?;
    let (user, _) = rest.split_once('@')?;
    Some(user.split(';').next().unwrap_or(user))
}

/// What a stream (TCP) buffer holds next.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet.
    Incomplete,
    /// A keep-alive (CRLFs) of this many bytes.
    KeepAlive(usize),
    /// A whole message of this many bytes.
    Message(usize),
    /// Larger than allowed: the head (to answer 513) ends at `head` bytes.
    TooLarge { head: Option<usize> },
    /// Cannot be framed (bad Content-Length): the connection must close.
    Invalid,
}

/// Frame one message off the front of a stream buffer by its Content-Length.
pub fn frame(buf: &[u8], max: usize) -> Frame {
    let lead = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if lead > 0 {
        return Frame::KeepAlive(lead);
    }
    let Some((head_end, body_start)) = header_end(buf) else {
        return if buf.len() > max {
            Frame::TooLarge { head: None }
        } else {
            Frame::Incomplete
        };
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut len = 0usize;
    for line in head.lines() {
        if let Some((n, v)) = line.split_once(':')
            && expand_compact(n.trim()).eq_ignore_ascii_case("Content-Length")
        {
            match v.trim().parse() {
                Ok(l) => len = l,
                Err(_) => return Frame::Invalid,
            }
        }
    }
    let total = body_start.saturating_add(len);
    if total > max {
        return Frame::TooLarge {
            head: Some(body_start),
        };
    }
    if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Message(total)
    }
}

/// Build a response to `req`, copying Via, From, To, Call-ID and CSeq; a
/// `to_tag` is added to To when it has none.
pub fn response(
    req: &RawMessage,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, String)],
) -> Vec<u8> {
    with_body(response_head(req, code, reason, to_tag, extra), &[], None)
}

/// The header lines of [`response`], without its Content-Length: for an
/// answer that carries a body ([`with_body`]).
pub fn response_head(
    req: &RawMessage,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, String)],
) -> String {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.all("Via") {
        let _ = write!(s, "Via: {v}\r\n");
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = req.header(name) {
            if name == "To"
                && param(v, "tag").is_none()
                && code > 100
                && let Some(tag) = to_tag
            {
                let _ = write!(s, "To: {v};tag={tag}\r\n");
                continue;
            }
            let _ = write!(s, "{name}: {v}\r\n");
        }
    }
    // A dialog-making answer carries the request's Record-Route back
    // (RFC 3261 12.1.1): the peer's later requests then pass the same proxies.
    if req.method() == Some("INVITE") && (101..300).contains(&code) {
        for v in req.all("Record-Route") {
            let _ = write!(s, "Record-Route: {v}\r\n");
        }
    }
    for (n, v) in extra {
        let _ = write!(s, "{n}: {v}\r\n");
    }
    s.push_str("Server: ctihost\r\n");
    s
}

/// A message's header lines so far, then its Content-Type, Content-Length
/// and body.
pub fn with_body(mut head: String, body: &[u8], ctype: Option<&str>) -> Vec<u8> {
    if let Some(t) = ctype {
        let _ = write!(head, "Content-Type: {t}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_to_an_invite_carry_its_record_route_and_others_do_not() {
        let invite = RawMessage::parse(
            b"INVITE sip:95588@h SIP/2.0\r\nVia: SIP/2.0/UDP p;branch=z9hG4bKa\r\nRecord-Route: <sip:p1;lr>\r\nRecord-Route: <sip:p2;lr>, <sip:p3;lr>\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:95588@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("parses");
        let routes = |code| {
            let r =
                RawMessage::parse(&response(&invite, code, "X", Some("t"), &[])).expect("parses");
            r.all("Record-Route").map(str::to_owned).collect::<Vec<_>>()
        };
        assert_eq!(routes(200), ["<sip:p1;lr>", "<sip:p2;lr>, <sip:p3;lr>"]);
        assert_eq!(routes(180).len(), 2);
        assert!(routes(100).is_empty() && routes(486).is_empty());
    }

    #[test]
    fn parameters_are_found_outside_quotes_and_brackets() {
        let v = "\"x;tag=a\" <sip:b@h;tag=c>;tag=d;lr";
        assert_eq!(param(v, "tag"), Some("d"));
        assert_eq!(param(v, "lr"), Some(""));
        assert_eq!(addr_uri(v), "sip:b@h;tag=c");
        assert_eq!(
            param("SIP/2.0/UDP h;branch=z9hG4bK1;rport", "branch"),
            Some("z9hG4bK1")
        );
        assert_eq!(param("sip:a@b;tag=1", "tag"), Some("1"));
        assert_eq!(addr_uri("\"a<b\" <sip:c@d>"), "sip:c@d");
    }

    #[test]
    fn uri_addresses() {
        let a = |s: &str| uri_socket_addr(s).map(|a| a.to_string());
        assert_eq!(
            a("sip:1001@127.0.0.1:5070;transport=tcp").as_deref(),
            Some("127.0.0.1:5070")
        );
        assert_eq!(a("sip:10.0.0.1").as_deref(), Some("10.0.0.1:5060"));
        assert_eq!(a("sip:a@[::1]:5080").as_deref(), Some("[::1]:5080"));
        assert_eq!(a("sip:a@[::1]").as_deref(), Some("[::1]:5060"));
        assert_eq!(a("sip:a@pbx.example.com"), None);
    }

    const REG: &str = "REGISTER sip:127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nf: <sip:1001@127.0.0.1>;tag=a\r\nt: <sip:1001@127.0.0.1>\r\ni: abc@x\r\nCSeq: 1 REGISTER\r\nm: <sip:1001@127.0.0.1:5070>;+sip.instance=\"<urn:uuid:1>\"\r\nl: 0\r\n\r\n";

    #[test]
    fn compact_names_are_expanded_and_rsip_parses_the_result() {
        let m = RawMessage::parse(REG.as_bytes()).unwrap();
        assert_eq!(m.method(), Some("REGISTER"));
        assert_eq!(m.header("Call-ID"), Some("abc@x"));
        assert_eq!(m.branch().as_deref(), Some("z9hG4bK-1"));
        let bytes = m.to_bytes();
        let req = rsip::Request::try_from(bytes.as_slice()).unwrap();
        assert_eq!(req.method, rsip::Method::Register);
    }

    #[test]
    fn lf_only_and_folded_headers() {
        let text = REG
            .replace("\r\n", "\n")
            .replace("CSeq: 1 REGISTER", "CSeq: 1\n REGISTER");
        let m = RawMessage::parse(text.as_bytes()).unwrap();
        assert_eq!(m.header("CSeq"), Some("1 REGISTER"));
        assert!(rsip::Request::try_from(m.to_bytes().as_slice()).is_ok());
    }

    #[test]
    fn framing_by_content_length() {
        let two = format!(
            "{}{}",
            "OPTIONS sip:x SIP/2.0\r\nContent-Length: 4\r\n\r\nbody",
            "OPTIONS sip:y SIP/2.0\r\nl: 0\r\n\r\n"
        );
        let b = two.as_bytes();
        let Frame::Message(n) = frame(b, 1 << 16) else {
            panic!()
        };
        assert_eq!(&b[n - 4..n], b"body");
        assert_eq!(frame(&b[n..], 1 << 16), Frame::Message(b.len() - n));
        assert_eq!(frame(&b[..n - 1], 1 << 16), Frame::Incomplete);
        assert_eq!(frame(b"\r\n\r\nOPT", 100), Frame::KeepAlive(4));
        assert_eq!(
            frame(
                b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 9000\r\n\r\n",
                1000
            ),
            Frame::TooLarge { head: Some(47) }
        );
        assert_eq!(
            frame(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n", 1000),
            Frame::Invalid
        );
    }

    #[test]
    fn uri_helpers() {
        assert_eq!(
            addr_uri("\"Bob\" <sip:bob@x;transport=tcp>;tag=1"),
            "sip:bob@x;transport=tcp"
        );
        assert_eq!(uri_user("sip:1001@127.0.0.1:5060"), Some("1001"));
        assert_eq!(
            param("<sip:a@b>;expires=60;+sip.instance=\"<urn:x>\"", "expires"),
            Some("60")
        );
    }

    #[test]
    fn response_copies_dialog_headers_and_tags_to() {
        let m = RawMessage::parse(REG.as_bytes()).unwrap();
        let r = String::from_utf8(response(
            &m,
            401,
            "Unauthorized",
            Some("t1"),
            &[("WWW-Authenticate", "Digest x".into())],
        ))
        .unwrap();
        assert!(r.starts_with(
            "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n"
        ));
        assert!(r.contains("To: <sip:1001@127.0.0.1>;tag=t1\r\n"));
        assert!(rsip::Response::try_from(r.as_bytes()).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545F4914F6CDD1Du64;
        for len in 0..2000usize {
            let mut buf = REG.as_bytes().to_vec();
            for _ in 0..(len % 7 + 1) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % buf.len();
                buf[i] = (seed >> 32) as u8;
            }
            buf.truncate(len % (buf.len() + 1));
            let _ = RawMessage::parse(&buf).map(|m| m.to_bytes());
            let _ = frame(&buf, 1 << 16);
        }
    }
}
