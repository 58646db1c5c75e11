//! HTTP digest authentication for SIP (RFC 3261 section 22, RFC 7616 with
//! SHA-256 for SIP per RFC 8760). Passwords are hashed at load (HA1) and
//! never kept; nonces are stateless (time + MAC) and expire.

use std::collections::BTreeMap;

use md5::Md5;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Algorithm {
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    pub fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// A user's stored credential: HA1 for each algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

impl Credential {
    pub fn from_password(user: &str, realm: &str, password: &str) -> Self {
        let a1 = format!("{user}:{realm}:{password}");
        Self {
            ha1_md5: Algorithm::Md5.hash(&a1),
            ha1_sha256: Algorithm::Sha256.hash(&a1),
        }
    }

    fn ha1(&self, alg: Algorithm) -> &str {
        match alg {
            Algorithm::Md5 => &self.ha1_md5,
            Algorithm::Sha256 => &self.ha1_sha256,
        }
    }
}

/// Parsed `Authorization: Digest ...` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    pub params: BTreeMap<String, String>,
}

impl DigestResponse {
    /// Parse the value of an Authorization header; `None` if it is not Digest.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.trim();
        let (scheme, rest) = rest.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut chars = rest.trim().chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            let key: String = chars
                .by_ref()
                .take_while(|c| *c != '=')
                .collect::<String>()
                .trim()
                .to_ascii_lowercase();
            if key.is_empty() {
                break;
            }
            let mut val = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => {
                            val.push(c);
                            escaped = false;
                        }
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    val.push(c);
                    chars.next();
                }
            }
            params.insert(key, val.trim().to_owned());
        }
        Some(Self { params })
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }

    pub fn algorithm(&self) -> Option<Algorithm> {
        match self
            .get("algorithm")
            .unwrap_or("MD5")
            .to_ascii_uppercase()
            .as_str()
        {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Check the response against the stored credential (RFC 7616 section 3.4.1).
    pub fn verify(&self, method: &str, cred: &Credential) -> bool {
        let (Some(alg), Some(nonce), Some(uri), Some(response)) = (
            self.algorithm(),
            self.get("nonce"),
            self.get("uri"),
            self.get("response"),
        ) else {
            return false;
        };
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let expected = match self.get("qop") {
            Some(qop) if qop.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (self.get("nc"), self.get("cnonce")) else {
                    return false;
                };
                alg.hash(&format!(
                    "{}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}",
                    cred.ha1(alg)
                ))
            }
            Some(_) => return false,
            None => alg.hash(&format!("{}:{nonce}:{ha2}", cred.ha1(alg))),
        };
        constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        )
    }
}

/// Whether a digest `uri` names the Request-URI's destination. The user
/// part and parameters may differ: SIPp, for one, answers for
/// `sip:host:port` whatever the Request-URI's user.
fn same_destination(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    fn hostport(uri: &str) -> Option<(String, Option<&str>)> {
        let rest = uri
            .strip_prefix("sips:")
            .or_else(|| uri.strip_prefix("sip:"))?;
        let rest = rest.split([';', '?']).next()?;
        let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']')?;
                (h, after.strip_prefix(':'))
            }
            // An IPv6 address without brackets, as SIPp writes it
            // ("sip:::1:5060"): the port is after the last colon.
            None if rest.matches(':').count() > 1 => match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
            None => match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
        };
        Some((host.to_ascii_lowercase(), port))
    }
    match (hostport(digest_uri), hostport(request_uri)) {
        (Some((h1, p1)), Some((h2, p2))) => h1 == h2 && (p1 == p2 || p1.is_none() || p2.is_none()),
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Issues and checks nonces: `<issued-at-secs>.<serial>.<mac>`, so a stale
/// or forged nonce is recognised without state, and every challenge gets a
/// nonce of its own (nonce counts are tracked per nonce: two phones
/// challenged in the same second must not share one).
pub struct Nonces {
    secret: [u8; 32],
    lifetime_secs: u64,
    serial: std::sync::atomic::AtomicU64,
}

impl Nonces {
    pub fn new(secret: [u8; 32], lifetime_secs: u64) -> Self {
        Self {
            secret,
            lifetime_secs,
            serial: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn mac(&self, issued: u64, serial: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(issued.to_be_bytes());
        h.update(serial.to_be_bytes());
        hex::encode(&h.finalize()[..16])
    }

    pub fn issue(&self, now_secs: u64) -> String {
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{now_secs:x}.{serial:x}.{}", self.mac(now_secs, serial))
    }

    /// `Ok(())` if ours and fresh; `Err(true)` if ours but stale; `Err(false)` if forged.
    pub fn check(&self, nonce: &str, now_secs: u64) -> Result<(), bool> {
        let mut parts = nonce.splitn(3, '.');
        let (Some(t), Some(serial), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(false);
        };
        let (Ok(issued), Ok(serial)) =
            (u64::from_str_radix(t, 16), u64::from_str_radix(serial, 16))
        else {
            return Err(false);
        };
        if !constant_time_eq(self.mac(issued, serial).as_bytes(), mac.as_bytes()) {
            return Err(false);
        }
        if now_secs.saturating_sub(issued) > self.lifetime_secs || issued > now_secs + 5 {
            return Err(true);
        }
        Ok(())
    }

    /// WWW-Authenticate values, one per algorithm in order of preference
    /// (RFC 8760: clients take the first they support).
    pub fn challenges(
        &self,
        realm: &str,
        algorithms: &[Algorithm],
        now_secs: u64,
        stale: bool,
    ) -> Vec<String> {
        let nonce = self.issue(now_secs);
        let stale = if stale { ", stale=true" } else { "" };
        algorithms
            .iter()
            .map(|a| format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}", a.name()))
            .collect()
    }
}

/// The outcome of checking a request's digest credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No usable credentials (none, other realm, old or forged nonce, or a
    /// replay of an answer already used): challenge.
    Challenge {
        stale: bool,
    },
    /// Credentials for a user we do not know, or that do not verify, or
    /// for another URI than the request's.
    Forbidden {
        user: String,
        known: bool,
    },
    /// Too many failed attempts from this source lately: refused without
    /// checking, for `retry_after_secs`.
    Throttled {
        retry_after_secs: u64,
    },
    Authenticated {
        user: String,
    },
}

/// Nonce uses remembered for replay detection (RFC 7616 3.4.5: each nonce
/// count is accepted once, in increasing order). Only verified answers are
/// remembered, so only authenticated users fill it; past this many the
/// oldest go first (their nonces are near expiry anyway).
pub const MAX_NONCE_USES: usize = 50_000;
/// Failed digests from one source within [`FAILURE_WINDOW_SECS`] before its
/// attempts are refused unchecked for the rest of the window.
pub const MAX_FAILURES_PER_SOURCE: u32 = 10;
pub const FAILURE_WINDOW_SECS: u64 = 60;
/// Sources whose failures are tracked at once (the oldest are forgotten).
pub const MAX_TRACKED_SOURCES: usize = 10_000;
/// Failed digests for one known user, from any sources, within
/// [`FAILURE_WINDOW_SECS`] before that user's attempts are refused
/// unchecked for the rest of the window, except from the address the user
/// last authenticated from (guessing from many addresses cannot lock the
/// owner's phone out). Only configured users are counted: the table is as
/// large as the config.
pub const MAX_FAILURES_PER_USER: u32 = 20;

#[derive(Default)]
struct Guard {
    /// nonce -> (highest nonce count used, issued-at second for expiry).
    uses: std::collections::HashMap<String, (u64, u64)>,
    /// source -> (failures in the window, window start second).
    failures: std::collections::HashMap<std::net::IpAddr, (u32, u64)>,
    /// known user -> (failures in the window, window start second).
    user_failures: std::collections::HashMap<String, (u32, u64)>,
    /// known user -> the address it last authenticated from.
    homes: std::collections::HashMap<String, std::net::IpAddr>,
    refused: u64,
    replays: u64,
}

/// Digest authentication against a set of users (phones, or trunks).
pub struct Authenticator {
    realm: String,
    algorithms: Vec<Algorithm>,
    credentials: std::collections::HashMap<String, Credential>,
    nonces: Nonces,
    guard: parking_lot::Mutex<Guard>,
}

/// What the authenticator has refused, for metrics.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct AuthFigures {
    /// Attempts refused unchecked (too many failures from the source).
    pub throttled: u64,
    /// Answers refused as replays of a nonce count already used.
    pub replays: u64,
    /// Sources with failures in the current window.
    pub failing_sources: usize,
    /// Users whose attempts (from elsewhere than their own phone) are
    /// refused unchecked now.
    pub throttled_users: usize,
}

impl Authenticator {
    pub fn new(
        realm: String,
        algorithms: Vec<Algorithm>,
        credentials: std::collections::HashMap<String, Credential>,
        nonce_secret: [u8; 32],
    ) -> Self {
        Self {
            realm,
            algorithms,
            credentials,
            nonces: Nonces::new(nonce_secret, 300),
            guard: parking_lot::Mutex::new(Guard::default()),
        }
    }

    pub fn figures(&self) -> AuthFigures {
        let g = self.guard.lock();
        AuthFigures {
            throttled: g.refused,
            replays: g.replays,
            failing_sources: g.failures.len(),
            throttled_users: g
                .user_failures
                .values()
                .filter(|(n, _)| *n >= MAX_FAILURES_PER_USER)
                .count(),
        }
    }

    /// Count a failed attempt for a configured `user`.
    fn user_failed(&self, g: &mut Guard, user: &str, now_secs: u64) {
        if !self.credentials.contains_key(user) {
            return;
        }
        let e = g
            .user_failures
            .entry(user.to_owned())
            .or_insert((0, now_secs));
        if now_secs.saturating_sub(e.1) >= FAILURE_WINDOW_SECS {
            *e = (0, now_secs);
        }
        e.0 += 1;
        if e.0 == MAX_FAILURES_PER_USER {
            tracing::warn!(
                user,
                failures = e.0,
                window_secs = FAILURE_WINDOW_SECS,
                "too many failed digest attempts for one user; refused unchecked for the rest of the window except from the user's own phone"
            );
        }
    }

    /// Count a failed attempt of `source` (it is throttled from the
    /// [`MAX_FAILURES_PER_SOURCE`]th in a window on).
    fn failed(&self, g: &mut Guard, source: std::net::IpAddr, now_secs: u64) {
        if g.failures.len() >= MAX_TRACKED_SOURCES && !g.failures.contains_key(&source) {
            let oldest = g
                .failures
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                g.failures.remove(&k);
            }
        }
        let e = g.failures.entry(source).or_insert((0, now_secs));
        if now_secs.saturating_sub(e.1) >= FAILURE_WINDOW_SECS {
            *e = (0, now_secs);
        }
        e.0 += 1;
        if e.0 == MAX_FAILURES_PER_SOURCE {
            tracing::warn!(%source, failures = e.0, window_secs = FAILURE_WINDOW_SECS, "too many failed digest attempts; the source's attempts are refused unchecked for the rest of the window");
        }
    }

    /// Remember a verified answer's nonce count; false if it was used already.
    fn fresh_use(&self, g: &mut Guard, auth: &DigestResponse, now_secs: u64) -> bool {
        let nonce = auth.get("nonce").unwrap_or("").to_owned();
        // Without qop there is no count: such a nonce is good for one request.
        let nc = match auth.get("qop") {
            Some(_) => match auth.get("nc").and_then(|n| u64::from_str_radix(n, 16).ok()) {
                Some(n) if n > 0 => n,
                _ => return false,
            },
            None => 1,
        };
        if let Some((last, _)) = g.uses.get(&nonce)
            && nc <= *last
        {
            g.replays += 1;
            return false;
        }
        if g.uses.len() >= MAX_NONCE_USES && !g.uses.contains_key(&nonce) {
            let lifetime = self.nonces.lifetime_secs;
            g.uses
                .retain(|_, (_, at)| now_secs.saturating_sub(*at) <= lifetime);
            if g.uses.len() >= MAX_NONCE_USES
                && let Some(k) = g
                    .uses
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                g.uses.remove(&k);
            }
        }
        g.uses.insert(nonce, (nc, now_secs));
        true
    }

    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// A user with a credential here.
    pub fn knows(&self, user: &str) -> bool {
        self.credentials.contains_key(user)
    }

    /// `authorization`: the Authorization or Proxy-Authorization header
    /// value of a request with `method` and `request_uri` from `source`.
    pub fn check(
        &self,
        authorization: Option<&str>,
        method: &str,
        request_uri: &str,
        source: std::net::IpAddr,
        now_secs: u64,
    ) -> Verdict {
        let Some(auth) = authorization.and_then(DigestResponse::parse) else {
            return Verdict::Challenge { stale: false };
        };
        let mut g = self.guard.lock();
        if let Some((n, since)) = g.failures.get(&source).copied() {
            let left = (since + FAILURE_WINDOW_SECS).saturating_sub(now_secs);
            if n >= MAX_FAILURES_PER_SOURCE && left > 0 {
                g.refused += 1;
                return Verdict::Throttled {
                    retry_after_secs: left,
                };
            }
        }
        let claimed = auth.get("username").unwrap_or("");
        if let Some((n, since)) = g.user_failures.get(claimed).copied() {
            let left = (since + FAILURE_WINDOW_SECS).saturating_sub(now_secs);
            if n >= MAX_FAILURES_PER_USER && left > 0 && g.homes.get(claimed) != Some(&source) {
                g.refused += 1;
                return Verdict::Throttled {
                    retry_after_secs: left,
                };
            }
        }
        if auth.get("realm") != Some(self.realm.as_str()) {
            return Verdict::Challenge { stale: false };
        }
        if let Err(stale) = self.nonces.check(auth.get("nonce").unwrap_or(""), now_secs) {
            return Verdict::Challenge { stale };
        }
        let user = auth.get("username").unwrap_or("").to_owned();
        // The answer covers its uri: one for another destination than the
        // Request-URI's is not this request's (a captured answer moved to
        // another request).
        if !same_destination(auth.get("uri").unwrap_or(""), request_uri) {
            self.failed(&mut g, source, now_secs);
            self.user_failed(&mut g, &user, now_secs);
            return Verdict::Forbidden {
                user,
                known: self
                    .credentials
                    .contains_key(auth.get("username").unwrap_or("")),
            };
        }
        match self.credentials.get(&user) {
            Some(cred) if auth.verify(method, cred) => {
                if self.fresh_use(&mut g, &auth, now_secs) {
                    g.homes.insert(user.clone(), source);
                    Verdict::Authenticated { user }
                } else {
                    tracing::warn!(user, %source, "digest answer replayed (nonce count already used); challenged again");
                    Verdict::Challenge { stale: true }
                }
            }
            Some(_) => {
                self.failed(&mut g, source, now_secs);
                self.user_failed(&mut g, &user, now_secs);
                Verdict::Forbidden { user, known: true }
            }
            None => {
                self.failed(&mut g, source, now_secs);
                Verdict::Forbidden { user, known: false }
            }
        }
    }

    /// Whether `authorization` carries a nonce of ours that is still fresh,
    /// for this realm: only then is a request worth a transaction (the answer
    /// itself is checked later, once).
    pub fn has_fresh_nonce(&self, authorization: Option<&str>, now_secs: u64) -> bool {
        authorization
            .and_then(DigestResponse::parse)
            .is_some_and(|a| {
                a.get("realm") == Some(self.realm.as_str())
                    && self
                        .nonces
                        .check(a.get("nonce").unwrap_or(""), now_secs)
                        .is_ok()
            })
    }

    /// Challenge header values, one per algorithm in order of preference.
    pub fn challenges(&self, now_secs: u64, stale: bool) -> Vec<String> {
        self.nonces
            .challenges(&self.realm, &self.algorithms, now_secs, stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_style_md5_with_qop() {
        // Computed independently: user 1001, realm ctihost, password demo-1001.
        let cred = Credential::from_password("1001", "ctihost", "demo-1001");
        let ha1 = Algorithm::Md5.hash("1001:ctihost:demo-1001");
        assert_eq!(cred.ha1_md5, ha1);
        let ha2 = Algorithm::Md5.hash("REGISTER:sip:127.0.0.1");
        let response = Algorithm::Md5.hash(&format!("{ha1}:abc.def:00000001:xyz:auth:{ha2}"));
        let header = format!(
            "Digest username=\"1001\", realm=\"ctihost\", nonce=\"abc.def\", uri=\"sip:127.0.0.1\", response=\"{response}\", algorithm=MD5, cnonce=\"xyz\", qop=auth, nc=00000001"
        );
        let d = DigestResponse::parse(&header).unwrap();
        assert_eq!(d.get("username"), Some("1001"));
        assert!(d.verify("REGISTER", &cred));
        assert!(!d.verify("INVITE", &cred));
        assert!(!d.verify(
            "REGISTER",
            &Credential::from_password("1001", "ctihost", "wrong")
        ));
    }

    #[test]
    fn sha256_without_qop() {
        let cred = Credential::from_password("1002", "ctihost", "pw");
        let ha2 = Algorithm::Sha256.hash("REGISTER:sip:ctihost");
        let response = Algorithm::Sha256.hash(&format!("{}:n1:{ha2}", cred.ha1_sha256));
        let d = DigestResponse::parse(&format!("Digest username=\"1002\",realm=\"ctihost\",nonce=\"n1\",uri=\"sip:ctihost\",response=\"{response}\",algorithm=SHA-256")).unwrap();
        assert_eq!(d.algorithm(), Some(Algorithm::Sha256));
        assert!(d.verify("REGISTER", &cred));
    }

    fn authenticator() -> Authenticator {
        let creds = [(
            "1001".to_owned(),
            Credential::from_password("1001", "ctihost", "demo-1001"),
        )]
        .into();
        Authenticator::new("ctihost".into(), vec![Algorithm::Md5], creds, [9; 32])
    }

    fn answer(nonce: &str, nc: u32, uri: &str, pw: &str) -> String {
        let ha1 = Algorithm::Md5.hash(&format!("1001:ctihost:{pw}"));
        let ha2 = Algorithm::Md5.hash(&format!("REGISTER:{uri}"));
        let r = Algorithm::Md5.hash(&format!("{ha1}:{nonce}:{nc:08x}:cn:auth:{ha2}"));
        format!(
            "Digest username=\"1001\", realm=\"ctihost\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", algorithm=MD5, cnonce=\"cn\", qop=auth, nc={nc:08x}"
        )
    }

    #[test]
    fn a_nonce_count_is_good_once_and_only_for_its_uri() {
        let a = authenticator();
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let other = std::net::IpAddr::from([127, 0, 0, 3]);
        let nonce = a.nonces.issue(1000);
        let first = answer(&nonce, 1, "sip:h", "demo-1001");
        let ok = a.check(Some(&first), "REGISTER", "sip:h", ip, 1000);
        assert_eq!(
            ok,
            Verdict::Authenticated {
                user: "1001".into()
            }
        );
        for from in [ip, other] {
            assert_eq!(
                a.check(Some(&first), "REGISTER", "sip:h", from, 1001),
                Verdict::Challenge { stale: true },
                "a replay is challenged"
            );
        }
        let second = answer(&nonce, 2, "sip:h", "demo-1001");
        assert!(matches!(
            a.check(Some(&second), "REGISTER", "sip:h", ip, 1002),
            Verdict::Authenticated { .. }
        ));
        let moved = answer(&nonce, 3, "sip:h", "demo-1001");
        assert!(matches!(
            a.check(Some(&moved), "REGISTER", "sip:elsewhere", ip, 1003),
            Verdict::Forbidden { .. }
        ));
        assert_eq!(a.figures().replays, 2);
    }

    #[test]
    fn the_digest_uri_must_name_the_request_uris_destination() {
        assert!(same_destination(
            "sip:127.0.0.1:5060",
            "sip:95566@127.0.0.1:5060"
        ));
        assert!(same_destination(
            "sip:[::1]:5070",
            "sip:1001@[::1]:5070;transport=udp"
        ));
        assert!(same_destination("sip:bank.test", "sip:bank.test"));
        assert!(!same_destination(
            "sip:127.0.0.1:5060",
            "sip:95566@127.0.0.2:5060"
        ));
        assert!(!same_destination("sip:other.test", "sip:bank.test"));
        assert!(!same_destination("sip:h:5060", "sip:h:5070"));
        assert!(!same_destination("", "sip:h"));
    }

    #[test]
    fn a_guessing_source_is_refused_unchecked_for_the_rest_of_the_window() {
        let a = authenticator();
        let guesser = std::net::IpAddr::from([10, 9, 9, 9]);
        let owner = std::net::IpAddr::from([127, 0, 0, 1]);
        let nonce = a.nonces.issue(1000);
        for i in 0..MAX_FAILURES_PER_SOURCE {
            let wrong = answer(&nonce, 1, "sip:h", &format!("guess{i}"));
            assert!(matches!(
                a.check(Some(&wrong), "REGISTER", "sip:h", guesser, 1000),
                Verdict::Forbidden { .. }
            ));
        }
        let right = answer(&nonce, 1, "sip:h", "demo-1001");
        assert_eq!(
            a.check(Some(&right), "REGISTER", "sip:h", guesser, 1010),
            Verdict::Throttled {
                retry_after_secs: 50
            }
        );
        // The owner, elsewhere, is not locked out; the window ends.
        assert!(matches!(
            a.check(Some(&right), "REGISTER", "sip:h", owner, 1010),
            Verdict::Authenticated { .. }
        ));
        let later = answer(&a.nonces.issue(1061), 1, "sip:h", "demo-1001");
        assert!(matches!(
            a.check(Some(&later), "REGISTER", "sip:h", guesser, 1061),
            Verdict::Authenticated { .. }
        ));
        assert_eq!(a.figures().throttled, 1);
    }

    #[test]
    fn a_user_guessed_from_many_sources_is_refused_unchecked_but_not_from_its_phone() {
        let a = authenticator();
        let phone = std::net::IpAddr::from([127, 0, 0, 1]);
        let nonce = a.nonces.issue(1000);
        let right = answer(&nonce, 1, "sip:h", "demo-1001");
        assert!(matches!(
            a.check(Some(&right), "REGISTER", "sip:h", phone, 1000),
            Verdict::Authenticated { .. }
        ));
        // A botnet: each address stays under the per-source limit.
        for i in 0..MAX_FAILURES_PER_USER {
            let from = std::net::IpAddr::from([10, 0, (i / 200) as u8, (i % 200) as u8]);
            let wrong = answer(&nonce, 1, "sip:h", &format!("guess{i}"));
            assert!(matches!(
                a.check(Some(&wrong), "REGISTER", "sip:h", from, 1001),
                Verdict::Forbidden { .. }
            ));
        }
        assert_eq!(a.figures().throttled_users, 1);
        // Even the right password from a new address is refused unchecked...
        let stranger = std::net::IpAddr::from([10, 1, 1, 1]);
        let right2 = answer(&nonce, 2, "sip:h", "demo-1001");
        assert!(matches!(
            a.check(Some(&right2), "REGISTER", "sip:h", stranger, 1002),
            Verdict::Throttled { .. }
        ));
        // ...but the owner's phone goes on registering.
        assert!(matches!(
            a.check(Some(&right2), "REGISTER", "sip:h", phone, 1002),
            Verdict::Authenticated { .. }
        ));
        // Unknown users are not tracked (the table cannot grow with input).
        for i in 0..50 {
            let from = std::net::IpAddr::from([10, 2, 0, i]);
            let wrong = answer(&nonce, 1, "sip:h", "x")
                .replace("username=\"1001\"", &format!("username=\"u{i}\""));
            let _ = a.check(Some(&wrong), "REGISTER", "sip:h", from, 1003);
        }
        assert_eq!(a.guard.lock().user_failures.len(), 1);
    }

    #[test]
    fn nonces_expire_and_cannot_be_forged() {
        let n = Nonces::new([7; 32], 300);
        let nonce = n.issue(1000);
        assert_eq!(n.check(&nonce, 1200), Ok(()));
        assert_eq!(n.check(&nonce, 1400), Err(true));
        assert_eq!(
            n.check("3e8.0.00000000000000000000000000000000", 1000),
            Err(false)
        );
        assert_ne!(n.issue(1000), n.issue(1000), "one nonce per challenge");
        assert_eq!(n.check("garbage", 1000), Err(false));
        assert!(DigestResponse::parse("Basic abc").is_none());
    }
}
