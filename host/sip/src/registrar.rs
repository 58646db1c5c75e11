//! Registrar: agents' phones REGISTER with digest authentication; bindings
//! live in memory with their expiry, and go to a sink (the store) whenever
//! they change so that a restarted host still reaches every phone at once. A
//! request that fails authentication changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use super::flow::Transport;

use super::flow::Peer;

use super::digest::{Algorithm, Authenticator, Credential, Verdict};
use super::wire::{RawMessage, addr_uri, param, response, uri_user};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The Contact URI to send requests to.
    pub contact: String,
    pub expires_at_ms: u64,
    /// Where the REGISTER came from (used when the Contact is not reachable).
    pub source: SocketAddr,
    pub transport: Transport,
    /// The UDP listener it came in on: requests to the phone leave from there.
    #[serde(default)]
    pub listener: u8,
    /// The `+sip.instance` of the device, when it sent one (RFC 5626).
    pub instance: Option<String>,
}

impl Binding {
    /// Where requests to this phone go: the flow its REGISTER came on, which
    /// also works behind NAT and over the phone's own TCP connection.
    pub fn peer(&self) -> Peer {
        Peer {
            transport: self.transport,
            addr: self.source,
            listener: self.listener,
        }
    }
}

/// Told a user's bindings each time they change (empty: none left).
pub type BindingSink = Box<dyn Fn(&str, &[Binding]) + Send + Sync>;

pub struct Registrar {
    auth: Authenticator,
    bindings: Mutex<HashMap<String, Vec<Binding>>>,
    min_expires: u64,
    max_expires: u64,
    /// Where changed bindings go (the store, so a restart still reaches the phones).
    sink: BindingSink,
}

const DEFAULT_EXPIRES: u64 = 3600;

impl Registrar {
    /// What the registrar's digest check refused (metrics).
    pub fn auth_figures(&self) -> super::digest::AuthFigures {
        self.auth.figures()
    }

    pub fn new(
        realm: String,
        algorithms: Vec<Algorithm>,
        credentials: HashMap<String, Credential>,
        nonce_secret: [u8; 32],
        sink: BindingSink,
    ) -> Self {
        Self {
            auth: Authenticator::new(realm, algorithms, credentials, nonce_secret),
            bindings: Mutex::new(HashMap::new()),
            min_expires: 60,
            max_expires: 7200,
            sink,
        }
    }

    fn changed(&self, user: &str, list: &[Binding]) {
        (self.sink)(user, list);
    }

    /// Take back bindings kept by an earlier run (those of unknown users or
    /// expired are dropped); returns the users now reachable.
    pub fn restore(&self, saved: Vec<(String, Vec<Binding>)>, now_ms: u64) -> Vec<String> {
        let mut users = Vec::new();
        let mut dropped = Vec::new();
        {
            let mut map = self.bindings.lock();
            for (user, mut list) in saved {
                list.retain(|b| b.expires_at_ms > now_ms);
                if list.is_empty() || !self.auth.knows(&user) {
                    dropped.push(user);
                    continue;
                }
                users.push(user.clone());
                map.insert(user, list);
            }
        }
        for user in dropped {
            self.changed(&user, &[]);
        }
        users
    }

    /// Live bindings of a user.
    pub fn lookup(&self, user: &str, now_ms: u64) -> Vec<Binding> {
        self.bindings
            .lock()
            .get(user)
            .map(|b| {
                b.iter()
                    .filter(|b| b.expires_at_ms > now_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn snapshot(&self, now_ms: u64) -> BTreeMap<String, Vec<Binding>> {
        self.bindings
            .lock()
            .iter()
            .map(|(k, v)| {
                let live: Vec<Binding> = v
                    .iter()
                    .filter(|b| b.expires_at_ms > now_ms)
                    .cloned()
                    .collect();
                (k.clone(), live)
            })
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// Forget expired bindings; the users left with none (their phones are
    /// gone, so their agents must be logged out).
    pub fn expire(&self, now_ms: u64) -> Vec<String> {
        let mut gone = Vec::new();
        let mut shrunk = Vec::new();
        self.bindings.lock().retain(|user, b| {
            let before = b.len();
            b.retain(|b| b.expires_at_ms > now_ms);
            if b.is_empty() {
                gone.push(user.clone());
            } else if b.len() != before {
                shrunk.push((user.clone(), b.clone()));
            }
            !b.is_empty()
        });
        for user in &gone {
            self.changed(user, &[]);
        }
        for (user, list) in shrunk {
            self.changed(&user, &list);
        }
        gone
    }

    /// Answer a REGISTER, saying whether it changed the user's reachability.
    pub fn handle(&self, req: &RawMessage, peer: Peer, now_ms: u64) -> Registered {
        let mut presence = Presence::Unchanged;
        let response = self.answer(req, peer, now_ms, &mut presence);
        Registered { response, presence }
    }

    fn answer(
        &self,
        req: &RawMessage,
        peer: Peer,
        now_ms: u64,
        presence: &mut Presence,
    ) -> Vec<u8> {
        let source = peer.addr;
        let tag = format!("r{:x}", now_ms);
        let reply = |code: u16, reason: &str, extra: &[(&str, String)]| {
            response(req, code, reason, Some(&tag), extra)
        };
        let Some(user) = req
            .header("To")
            .map(addr_uri)
            .and_then(uri_user)
            .map(str::to_owned)
        else {
            return reply(400, "Bad Request - To has no user", &[]);
        };
        let now_secs = now_ms / 1000;
        match self.auth.check(
            req.header("Authorization"),
            "REGISTER",
            req.uri().unwrap_or(""),
            source.ip(),
            now_secs,
        ) {
            Verdict::Throttled { retry_after_secs } => {
                return reply(
                    403,
                    "Forbidden - too many failed attempts",
                    &[("Retry-After", retry_after_secs.to_string())],
                );
            }
            Verdict::Challenge { stale } => {
                let extra: Vec<(&str, String)> = self
                    .auth
                    .challenges(now_secs, stale)
                    .into_iter()
                    .map(|c| ("WWW-Authenticate", c))
                    .collect();
                return reply(401, "Unauthorized", &extra);
            }
            Verdict::Forbidden { user, known } => {
                ctihost_ground::log_limit::warn_every_second(
                    "register-wrong-credentials",
                    &format!(
                        "REGISTER with wrong credentials (last: user {user:?}, known {known}, from {source})"
                    ),
                );
                return reply(403, "Forbidden", &[]);
            }
            Verdict::Authenticated { user: u } if u != user => {
                tracing::warn!(user = u, to = user, %source, "REGISTER for another user");
                return reply(403, "Forbidden", &[]);
            }
            Verdict::Authenticated { .. } => {}
        }
        let default_expires = req
            .header("Expires")
            .and_then(|e| e.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_EXPIRES);
        let contacts: Vec<&str> = req.all("Contact").flat_map(split_contacts).collect();
        let mut map = self.bindings.lock();
        let list = map.entry(user.clone()).or_default();
        list.retain(|b| b.expires_at_ms > now_ms);
        let was_reachable = !list.is_empty();
        if contacts.iter().any(|c| c.trim() == "*") {
            if default_expires != 0 || contacts.len() != 1 {
                return reply(400, "Bad Request - wildcard Contact needs Expires: 0", &[]);
            }
            list.clear();
        }
        for c in contacts.iter().filter(|c| c.trim() != "*") {
            let expires = param(c, "expires")
                .and_then(|e| e.parse::<u64>().ok())
                .unwrap_or(default_expires);
            if expires > 0 && expires < self.min_expires {
                return reply(
                    423,
                    "Interval Too Brief",
                    &[("Min-Expires", self.min_expires.to_string())],
                );
            }
            let uri = addr_uri(c).to_owned();
            list.retain(|b| b.contact != uri);
            if expires > 0 {
                list.push(Binding {
                    contact: uri,
                    expires_at_ms: now_ms + expires.min(self.max_expires) * 1000,
                    source,
                    transport: peer.transport,
                    listener: peer.listener,
                    instance: param(c, "+sip.instance")
                        .map(|s| s.trim_matches(|c| c == '<' || c == '>').to_owned()),
                });
            }
        }
        let current: Vec<(&str, String)> = list
            .iter()
            .map(|b| {
                (
                    "Contact",
                    format!(
                        "<{}>;expires={}",
                        b.contact,
                        (b.expires_at_ms - now_ms) / 1000
                    ),
                )
            })
            .collect();
        *presence = match (was_reachable, list.is_empty()) {
            (false, false) => Presence::Arrived,
            (true, true) => Presence::Left,
            _ => Presence::Unchanged,
        };
        tracing::info!(user, bindings = list.len(), %source, "registered");
        // The sink writes to disk: not while holding the lock every offer's
        // lookup takes.
        let now = list.clone();
        drop(map);
        self.changed(&user, &now);
        reply(200, "OK", &current)
    }
}

/// A REGISTER's answer and what it did to the user's reachability.
pub struct Registered {
    pub response: Vec<u8>,
    pub presence: Presence,
}

/// Whether a REGISTER made its user reachable, unreachable, or neither (a
/// refresh, a rejected request): only the first two log an agent in or out, so
/// a phone's periodic refresh does not undo a logout from the desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Arrived,
    Left,
    Unchanged,
}

/// Split a Contact header value on commas outside `<>` and quotes.
fn split_contacts(v: &str) -> Vec<&str> {
    let (mut out, mut start, mut depth, mut quoted) = (Vec::new(), 0, 0i32, false);
    for (i, ch) in v.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim());
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_split_outside_brackets() {
        assert_eq!(
            split_contacts("<sip:a@b;x=1,2>;expires=5, \"Q, R\" <sip:c@d>"),
            ["<sip:a@b;x=1,2>;expires=5", "\"Q, R\" <sip:c@d>"]
        );
    }
}
