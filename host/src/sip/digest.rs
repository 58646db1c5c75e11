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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Issues and checks nonces: `<issued-at-secs>.<mac>`, so no state is kept
/// and a stale nonce is recognised.
pub struct Nonces {
    secret: [u8; 32],
    lifetime_secs: u64,
}

impl Nonces {
    pub fn new(secret: [u8; 32], lifetime_secs: u64) -> Self {
        Self {
            secret,
            lifetime_secs,
        }
    }

    fn mac(&self, issued: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(issued.to_be_bytes());
        hex::encode(&h.finalize()[..16])
    }

    pub fn issue(&self, now_secs: u64) -> String {
        format!("{now_secs:x}.{}", self.mac(now_secs))
    }

    /// `Ok(())` if ours and fresh; `Err(true)` if ours but stale; `Err(false)` if forged.
    pub fn check(&self, nonce: &str, now_secs: u64) -> Result<(), bool> {
        let Some((t, mac)) = nonce.split_once('.') else {
            return Err(false);
        };
        let Ok(issued) = u64::from_str_radix(t, 16) else {
            return Err(false);
        };
        if !constant_time_eq(self.mac(issued).as_bytes(), mac.as_bytes()) {
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
    /// No usable credentials (none, other realm, old or forged nonce): challenge.
    Challenge {
        stale: bool,
    },
    /// Credentials for a user we do not know, or that do not verify.
    Forbidden {
        user: String,
        known: bool,
    },
    Authenticated {
        user: String,
    },
}

/// Digest authentication against a set of users (phones, or trunks).
pub struct Authenticator {
    realm: String,
    algorithms: Vec<Algorithm>,
    credentials: std::collections::HashMap<String, Credential>,
    nonces: Nonces,
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
        }
    }

    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// A user with a credential here.
    pub fn knows(&self, user: &str) -> bool {
        self.credentials.contains_key(user)
    }

    /// `authorization`: the Authorization or Proxy-Authorization header value.
    pub fn check(&self, authorization: Option<&str>, method: &str, now_secs: u64) -> Verdict {
        let Some(auth) = authorization.and_then(DigestResponse::parse) else {
            return Verdict::Challenge { stale: false };
        };
        if auth.get("realm") != Some(self.realm.as_str()) {
            return Verdict::Challenge { stale: false };
        }
        if let Err(stale) = self.nonces.check(auth.get("nonce").unwrap_or(""), now_secs) {
            return Verdict::Challenge { stale };
        }
        let user = auth.get("username").unwrap_or("").to_owned();
        match self.credentials.get(&user) {
            Some(cred) if auth.verify(method, cred) => Verdict::Authenticated { user },
            Some(_) => Verdict::Forbidden { user, known: true },
            None => Verdict::Forbidden { user, known: false },
        }
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

    #[test]
    fn nonces_expire_and_cannot_be_forged() {
        let n = Nonces::new([7; 32], 300);
        let nonce = n.issue(1000);
        assert_eq!(n.check(&nonce, 1200), Ok(()));
        assert_eq!(n.check(&nonce, 1400), Err(true));
        assert_eq!(
            n.check("3e8.00000000000000000000000000000000", 1000),
            Err(false)
        );
        assert_eq!(n.check("garbage", 1000), Err(false));
        assert!(DigestResponse::parse("Basic abc").is_none());
    }
}
