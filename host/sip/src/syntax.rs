//! The RFC 3261 (section 25) grammar of the parts of a request the host
//! acts on, checked before a transaction exists: the start line, Via,
//! From, To, Contact, CSeq, Max-Forwards, the single-value headers, and
//! what a user agent server must refuse (Require, Accept, Content-Type).
//! RFC 4475's torture messages are the measure (`tests/rfc4475.rs`): valid
//! ones pass however odd their spacing, escaping or schemes; invalid ones
//! get the answer the RFC names.
//!
//! Only the host's own words reach a reason phrase: nothing of the
//! message is echoed back except Unsupported's option tags (tokens).

use super::wire::RawMessage;

/// Why a request is refused, and so its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400, with what is wrong (the host's words).
    BadRequest(String),
    /// 505: not SIP/2.0.
    Version,
    /// 416: a Request-URI scheme the host does not serve.
    UnsupportedScheme,
    /// 420 with these option tags in Unsupported.
    BadExtension(Vec<String>),
    /// 406: the Accept header rules out SDP.
    NotAcceptable,
    /// 415: a body that is not SDP where SDP is expected.
    UnsupportedMediaType,
}

/// Headers a request may carry once only (RFC 3261 7.3.1: only
/// comma-separated lists may repeat).
const SINGLE: [&str; 7] = [
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

/// Option tags (Require) the host implements: none yet.
const SUPPORTED: [&str; 0] = [];

/// Most option tags answered in one Unsupported header.
const MAX_TAGS: usize = 8;

pub fn check_request(msg: &RawMessage) -> Result<(), Refusal> {
    let bad = |what: &str| Refusal::BadRequest(what.to_owned());
    // CSeq first: a sequence number beyond 2**32-1 or a method other than
    // the request's is what most broken requests have wrong.
    let cseq = msg.header("CSeq").unwrap_or("");
    let mut it = cseq.split_whitespace();
    let (Some(number), Some(cseq_method), None) = (it.next(), it.next(), it.next()) else {
        return Err(bad("bad CSeq"));
    };
    if !number.bytes().all(|b| b.is_ascii_digit())
        || number.parse::<u32>().is_err()
        || Some(cseq_method) != msg.method()
    {
        return Err(bad("bad CSeq"));
    }
    let mut parts = msg.start.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("bad request line"));
    };
    if !method.bytes().all(is_token) {
        return Err(bad("bad method"));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(Refusal::Version);
    }
    request_uri(uri)?;
    for name in SINGLE {
        if msg.all(name).nth(1).is_some() {
            return Err(Refusal::BadRequest(format!("more than one {name}")));
        }
    }
    if let Some(mf) = msg.header("Max-Forwards")
        && (mf.is_empty() || !mf.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad("bad Max-Forwards"));
    }
    let call_id = msg.header("Call-ID").unwrap_or("");
    if call_id.is_empty() || call_id.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(bad("bad Call-ID"));
    }
    for via in msg.all("Via") {
        via_list(via).map_err(|_| bad("bad Via"))?;
    }
    for name in ["From", "To"] {
        let v = msg.header(name).unwrap_or("");
        let mut c = Cursor::new(v);
        name_addr(&mut c).map_err(|_| Refusal::BadRequest(format!("bad {name}")))?;
        if !c.at_end() {
            return Err(Refusal::BadRequest(format!("bad {name}")));
        }
    }
    for contact in msg.all("Contact") {
        contact_list(contact).map_err(|_| bad("bad Contact"))?;
    }
    if method != "ACK" && method != "CANCEL" {
        let unsupported: Vec<String> = msg
            .all("Require")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty() && !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .filter(|t| t.bytes().all(is_token))
            .take(MAX_TAGS)
            .map(|t| t.chars().take(64).collect())
            .collect();
        if !unsupported.is_empty() {
            return Err(Refusal::BadExtension(unsupported));
        }
    }
    if method == "INVITE" {
        if let Some(accept) = msg.header("Accept")
            && !accept.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or("").trim();
                ["application/sdp", "application/*", "*/*"]
                    .iter()
                    .any(|ok| t.eq_ignore_ascii_case(ok))
            })
        {
            return Err(Refusal::NotAcceptable);
        }
        if !msg.body.is_empty() {
            let ctype = msg.header("Content-Type").unwrap_or("");
            let ctype = ctype.split(';').next().unwrap_or("").trim();
            // multipart: SIP-I trunks carry the SDP beside ISUP.
            if !ctype.eq_ignore_ascii_case("application/sdp")
                && !ctype.to_ascii_lowercase().starts_with("multipart/")
            {
                return Err(Refusal::UnsupportedMediaType);
            }
        }
    }
    if method == "REGISTER" {
        // RFC 3261 10.3: the To of a REGISTER is the address of record.
        let to = parse_name_addr(msg.header("To").unwrap_or("")).map_err(|_| bad("bad To"))?;
        let scheme = to.uri.split(':').next().unwrap_or("");
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return Err(bad("the address of record is not a SIP URI"));
        }
    }
    Ok(())
}

/// The Request-URI: a sip, sips or tel URI, without brackets, spaces or
/// escaped headers (RFC 3261 19.1.5: headers are not allowed there).
fn request_uri(uri: &str) -> Result<(), Refusal> {
    let bad = |what: &str| Refusal::BadRequest(what.to_owned());
    if uri.contains(['<', '>']) {
        return Err(bad("Request-URI in angle brackets"));
    }
    let (scheme, rest) = uri.split_once(':').ok_or_else(|| bad("bad Request-URI"))?;
    if !is_scheme(scheme) || rest.is_empty() {
        return Err(bad("bad Request-URI"));
    }
    if !["sip", "sips", "tel"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
    {
        return Err(Refusal::UnsupportedScheme);
    }
    // The user part may hold '?'; headers follow the host (after the
    // first '@', which a user part cannot hold unescaped).
    let hostport = rest.split_once('@').map_or(rest, |(_, h)| h);
    if hostport.contains('?') && !scheme.eq_ignore_ascii_case("tel") {
        return Err(bad("headers in the Request-URI"));
    }
    if uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("bad Request-URI"));
    }
    if !scheme.eq_ignore_ascii_case("tel") && !hostport_ok(hostport) {
        return Err(bad("bad host or port in the Request-URI"));
    }
    Ok(())
}

/// `host[:port]` of a SIP URI (before its parameters and headers): a
/// name, an IPv4 address or a bracketed IPv6 reference, a port 1-65535.
fn hostport_ok(hostport: &str) -> bool {
    let hp = hostport.split([';', '?']).next().unwrap_or("");
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, after.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match hp.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(hp), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    host_ok && port_ok
}

fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// RFC 3261 token characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// A malformed element (where does not matter to the answer).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// A parsed name-addr or addr-spec with its header parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    pub display: Option<String>,
    pub uri: &'a str,
    pub params: Vec<(&'a str, Option<String>)>,
}

impl NameAddr<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }
}

/// Parse one name-addr / addr-spec from `s` (the whole value).
pub fn parse_name_addr(s: &str) -> Result<NameAddr<'_>, Malformed> {
    let mut c = Cursor::new(s);
    let na = name_addr(&mut c)?;
    if c.at_end() { Ok(na) } else { Err(Malformed) }
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Self { s, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn at_end(&mut self) -> bool {
        self.lws();
        self.i >= self.s.len()
    }

    fn lws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn token(&mut self) -> Result<&'a str, Malformed> {
        let t = self.take_while(is_token);
        if t.is_empty() { Err(Malformed) } else { Ok(t) }
    }

    /// A quoted-string (the cursor at its opening quote), unescaped.
    fn quoted(&mut self) -> Result<String, Malformed> {
        if !self.eat(b'"') {
            return Err(Malformed);
        }
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(Malformed),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    self.i += 1;
                    let b = self.peek().ok_or(Malformed)?;
                    out.push(b);
                    self.i += 1;
                }
                Some(b) => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }
}

fn name_addr<'a>(c: &mut Cursor<'a>) -> Result<NameAddr<'a>, Malformed> {
    c.lws();
    let mut display = None;
    let bracketed = if c.peek() == Some(b'"') {
        display = Some(c.quoted()?);
        c.lws();
        true
    } else {
        // Tokens before '<' are a display name; without '<' this is an addr-spec.
        let save = c.i;
        let mut words = Vec::new();
        loop {
            c.lws();
            // Tokens, and (liberally: some carriers and PBXs send them)
            // unquoted UTF-8 names; never ASCII separators like ','.
            let w = c.take_while(|b| is_token(b) || b >= 0x80);
            if w.is_empty() {
                break;
            }
            words.push(w);
        }
        c.lws();
        if c.peek() == Some(b'<') {
            if !words.is_empty() {
                display = Some(words.join(" "));
            }
            true
        } else {
            c.i = save;
            false
        }
    };
    let uri = if bracketed {
        if !c.eat(b'<') {
            return Err(Malformed);
        }
        let uri = c.take_while(|b| b != b'>' && b > b' ' && b != b'<' && b != 0x7f);
        if !c.eat(b'>') {
            return Err(Malformed);
        }
        uri
    } else {
        c.lws();
        // addr-spec: no ';' (those are header parameters), ',' or '?'
        // (RFC 3261 20.10: such URIs need the brackets).
        let uri = c.take_while(|b| b > b' ' && !matches!(b, b';' | b',' | b'?' | b'<' | b'>'));
        if c.peek() == Some(b'?') {
            return Err(Malformed);
        }
        uri
    };
    check_uri(uri)?;
    let params = params(c)?;
    Ok(NameAddr {
        display,
        uri,
        params,
    })
}

/// `scheme:rest` with no spaces or control characters; a sip or sips URI
/// also with a well-formed host and port (the host may send to it).
fn check_uri(uri: &str) -> Result<(), Malformed> {
    let (scheme, rest) = uri.split_once(':').ok_or(Malformed)?;
    if !is_scheme(scheme) || rest.is_empty() || uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Malformed);
    }
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let hostport = rest.split_once('@').map_or(rest, |(_, h)| h);
        if !hostport_ok(hostport) {
            return Err(Malformed);
        }
    }
    Ok(())
}

/// `*( SEMI generic-param )`: a name and an optional token, host or
/// quoted-string value, LWS allowed around `;` and `=`; an empty one is
/// malformed.
fn params<'a>(c: &mut Cursor<'a>) -> Result<Vec<(&'a str, Option<String>)>, Malformed> {
    let mut out = Vec::new();
    loop {
        c.lws();
        if !c.eat(b';') {
            return Ok(out);
        }
        c.lws();
        let name = c.token()?;
        c.lws();
        let value = if c.eat(b'=') {
            c.lws();
            Some(match c.peek() {
                Some(b'"') => c.quoted()?,
                Some(b'[') => {
                    let v = c.take_while(|b| b != b']');
                    if !c.eat(b']') {
                        return Err(Malformed);
                    }
                    format!("{v}]")
                }
                _ => c.token()?.to_owned(),
            })
        } else {
            None
        };
        out.push((name, value));
    }
}

/// The first via-parm of a Via header value: its sent-by (`host[:port]`)
/// and its branch.
pub fn top_via(v: &str) -> Option<(&str, Option<String>)> {
    let mut c = Cursor::new(v);
    let (sent_by, params) = via_parm(&mut c).ok()?;
    let branch = params
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("branch"))
        .and_then(|(_, v)| v);
    Some((sent_by, branch))
}

type ViaParm<'a> = (&'a str, Vec<(&'a str, Option<String>)>);

fn via_parm<'a>(c: &mut Cursor<'a>) -> Result<ViaParm<'a>, Malformed> {
    c.lws();
    let proto = c.token()?;
    for _ in 0..2 {
        c.lws();
        if !c.eat(b'/') {
            return Err(Malformed);
        }
        c.lws();
        c.token()?;
    }
    if !proto.eq_ignore_ascii_case("SIP") {
        return Err(Malformed);
    }
    c.lws();
    let start = c.i;
    let host = if c.peek() == Some(b'[') {
        let h = c.take_while(|b| b != b']');
        if !c.eat(b']') {
            return Err(Malformed);
        }
        h
    } else {
        c.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if host.is_empty() {
        return Err(Malformed);
    }
    if c.eat(b':') && c.take_while(|b| b.is_ascii_digit()).is_empty() {
        return Err(Malformed);
    }
    let sent_by = &c.s[start..c.i];
    let params = params(c)?;
    Ok((sent_by, params))
}

/// A Via header value: one or more via-parms separated by commas.
fn via_list(v: &str) -> Result<(), Malformed> {
    let mut c = Cursor::new(v);
    loop {
        via_parm(&mut c)?;
        c.lws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(Malformed);
        }
    }
}

/// A header value of one or more comma-separated name-addrs (Route,
/// Record-Route, Contact without `*`).
pub fn parse_name_addr_list(v: &str) -> Result<Vec<NameAddr<'_>>, Malformed> {
    let mut c = Cursor::new(v);
    let mut all = Vec::new();
    loop {
        all.push(name_addr(&mut c)?);
        if c.at_end() {
            return Ok(all);
        }
        if !c.eat(b',') {
            return Err(Malformed);
        }
    }
}

/// A Contact header value: `*` or one or more name-addr / addr-spec.
fn contact_list(v: &str) -> Result<(), Malformed> {
    if v.trim() == "*" {
        return Ok(());
    }
    let mut c = Cursor::new(v);
    loop {
        name_addr(&mut c)?;
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(Malformed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addrs_as_rfc_4475_writes_them() {
        let na = parse_name_addr(
            "\"J Rosenberg \\\\\\\"\"  <sip:jdrosen@example.com>\r\n ;\r\n tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(na.display.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(na.uri, "sip:jdrosen@example.com");
        assert_eq!(na.param("tag"), Some("98asjd8"));
        let na = parse_name_addr("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(na.display.as_deref(), Some("caller"));
        let na = parse_name_addr("张三 <sip:+8613800000001@10.0.0.1>;tag=9").unwrap();
        assert_eq!(na.display.as_deref(), Some("张三"));
        let na = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert_eq!(na.uri, "sip:+19725552222@gw1.example.net");
        assert_eq!(na.param("unknownparam"), Some(""));
        assert!(parse_name_addr("isbn:2983792873").is_ok());
        assert!(parse_name_addr("<sip:a@[::1]:5070;transport=tcp>").is_ok());
        assert!(parse_name_addr("<sip:a@host:99999>").is_err());
        assert!(parse_name_addr("<sip:a@[zz]>").is_err());
        // A quoted ";tag=" is part of the name, not a parameter.
        let na = parse_name_addr("\"x;tag=evil\" <sip:a@b>;tag=real").unwrap();
        assert_eq!(na.param("tag"), Some("real"));
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "",
        ] {
            assert!(parse_name_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_references_pass() {
        let msg = RawMessage::parse(b"OPTIONS sip:[::1]:5060 SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::7]:5070;branch=z9hG4bK1;received=[::1]\r\nFrom: <sip:a@[::1]>;tag=1\r\nTo: <sip:b@[::1]>\r\nContact: <sip:a@[::1]:5070>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(check_request(&msg), Ok(()));
    }

    #[test]
    fn vias_with_lws_and_lists() {
        assert!(via_list("SIP / 2.0 /UDP 192.0.2.2;branch=390skdjuw").is_ok());
        assert!(
            via_list("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239").is_ok()
        );
        assert!(via_list("SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK1;rport").is_ok());
        assert!(via_list("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(via_list("SIP/2.0/UDP").is_err());
        assert_eq!(
            top_via(
                "SIP / 2.0 /UDP 192.0.2.2:5070 ; branch = z9hG4bK1 , SIP/2.0/UDP b;branch=z9hG4bK2"
            ),
            Some(("192.0.2.2:5070", Some("z9hG4bK1".to_owned())))
        );
        assert_eq!(
            top_via("SIP/2.0/TCP sip33.example.com"),
            Some(("sip33.example.com", None))
        );
    }
}
