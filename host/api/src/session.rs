//! Desktop accounts and their sessions: who may log in (agents and
//! supervisors with an argon2 password hash), the bearer tokens handed out,
//! idle expiry, and a brake on password guessing.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::auth::AdminToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Agent,
    Supervisor,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// argon2 PHC string; None: this account cannot log into the desktop.
    pub password_hash: Option<String>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The admin token.
    Admin,
    Agent(String),
    Supervisor(String),
}

impl Principal {
    /// For the audit log and call records: "agent:1001".
    pub fn label(&self) -> String {
        match self {
            Principal::Admin => "admin".into(),
            Principal::Agent(id) => format!("agent:{id}"),
            Principal::Supervisor(id) => format!("supervisor:{id}"),
        }
    }

    /// Supervisors and the admin see and act on everything.
    pub fn oversees(&self) -> bool {
        matches!(self, Principal::Admin | Principal::Supervisor(_))
    }

    /// The inverse of [`Principal::label`] for desktop principals.
    pub fn from_label(label: &str) -> Option<Self> {
        if let Some(id) = label.strip_prefix("agent:") {
            Some(Principal::Agent(id.to_owned()))
        } else {
            label
                .strip_prefix("supervisor:")
                .map(|id| Principal::Supervisor(id.to_owned()))
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown id and wrong password read the same, so ids cannot be probed.
    #[error("wrong id or password")]
    Wrong,
    #[error("account {0} has no desktop password configured")]
    NoPassword(String),
    #[error("too many failed logins; try again in {0} s")]
    Throttled(u64),
}

struct Session {
    principal: Principal,
    last_seen_ms: u64,
    /// last_seen_ms as last written to the store.
    stored_ms: u64,
}

/// How stale the stored last-seen time may get: a restart may then end a
/// session up to this much earlier than its idle timeout would have.
const STORE_EVERY_MS: u64 = 60_000;

/// Failed logins from one source within [`FAILURE_WINDOW_MS`] after which
/// its attempts are refused unchecked for the rest of the window.
pub const MAX_FAILURES_PER_SOURCE: u32 = 10;
/// Failed logins for one id (from anywhere, known or unknown alike) after
/// which each attempt for it waits [`SLOW_LOGIN_MS`] first: guessing an
/// id from many sources is slowed without ever locking its owner out.
pub const SLOW_AFTER_FAILURES: u32 = 5;
pub const SLOW_LOGIN_MS: u64 = 1000;
const FAILURE_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Sources and ids with failures tracked at once (the oldest are dropped).
pub const MAX_TRACKED: usize = 10_000;

/// Count a failure of `key` in a bounded, windowed table.
fn count_failure<K: std::hash::Hash + Eq + Clone>(
    t: &mut HashMap<K, (u32, u64)>,
    key: &K,
    now_ms: u64,
) {
    if t.len() >= MAX_TRACKED && !t.contains_key(key) {
        t.retain(|_, (_, since)| now_ms < *since + FAILURE_WINDOW_MS);
        if t.len() >= MAX_TRACKED
            && let Some(k) = t
                .iter()
                .min_by_key(|(_, (_, s))| *s)
                .map(|(k, _)| k.clone())
        {
            t.remove(&k);
        }
    }
    let e = t.entry(key.clone()).or_insert((0, now_ms));
    if now_ms >= e.1 + FAILURE_WINDOW_MS {
        *e = (0, now_ms);
    }
    e.0 += 1;
}

fn failures_now<K: std::hash::Hash + Eq>(
    t: &HashMap<K, (u32, u64)>,
    key: &K,
    now_ms: u64,
) -> (u32, u64) {
    match t.get(key) {
        Some(&(n, since)) if now_ms < since + FAILURE_WINDOW_MS => (n, since),
        _ => (0, now_ms),
    }
}

pub struct Sessions {
    accounts: HashMap<String, Account>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    /// Failed logins by id (known or not) and by source, in the window.
    failures: Mutex<HashMap<String, (u32, u64)>>,
    source_failures: Mutex<HashMap<std::net::IpAddr, (u32, u64)>>,
    idle_ms: u64,
    admin: AdminToken,
    /// Verified against when the id is unknown, so both cost the same time.
    decoy: String,
    /// Where sessions outlive a restart (None: in memory only).
    store: Option<crate::store::Store>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub fn new(
        accounts: Vec<Account>,
        idle_secs: u64,
        admin: AdminToken,
    ) -> Result<Self, super::password::PasswordError> {
        Ok(Self {
            accounts: accounts.into_iter().map(|a| (a.id.clone(), a)).collect(),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            source_failures: Mutex::new(HashMap::new()),
            idle_ms: idle_secs.saturating_mul(1000),
            admin,
            decoy: super::password::hash("decoy")?,
            store: None,
        })
    }

    /// Keep sessions in `store` and take back the ones stored by the last
    /// run that are still live and whose account still exists with the same
    /// role.
    pub fn with_store(mut self, store: crate::store::Store, now_ms: u64) -> Self {
        let stored = store.sessions().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read stored desktop sessions; desktops log in again");
            Vec::new()
        });
        let mut live = HashMap::new();
        for (key, s) in stored {
            let principal = Principal::from_label(&s.principal)
                .filter(|p| self.still_valid(p))
                .filter(|_| now_ms <= s.last_seen_ms + self.idle_ms);
            let Some(principal) = principal else {
                if let Err(e) = store.remove_session(&key) {
                    tracing::warn!(error = %e, "cannot drop a stale desktop session");
                }
                continue;
            };
            let session = Session {
                principal,
                last_seen_ms: s.last_seen_ms,
                stored_ms: s.last_seen_ms,
            };
            live.insert(key, session);
        }
        tracing::info!(sessions = live.len(), "desktop sessions restored");
        *self.sessions.lock() = live;
        self.store = Some(store);
        self
    }

    /// The account behind a stored principal still exists in that role.
    fn still_valid(&self, p: &Principal) -> bool {
        match p {
            Principal::Agent(id) => self.accounts.get(id).is_some_and(|a| a.role == Role::Agent),
            Principal::Supervisor(id) => self
                .accounts
                .get(id)
                .is_some_and(|a| a.role == Role::Supervisor),
            Principal::Admin => false,
        }
    }

    fn persist(&self, key: &[u8; 32], principal: &Principal, last_seen_ms: u64, durable: bool) {
        let Some(store) = &self.store else { return };
        let stored = crate::store::StoredSession {
            principal: principal.label(),
            last_seen_ms,
        };
        if let Err(e) = store.put_session(key, &stored, durable) {
            tracing::warn!(error = %e, "cannot store a desktop session; it ends with this run");
        }
    }

    fn forget(&self, key: &[u8; 32]) {
        if let Some(store) = &self.store
            && let Err(e) = store.remove_session(key)
        {
            tracing::warn!(error = %e, "cannot remove a stored desktop session");
        }
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// How long an attempt for `id` waits before it is checked (none until
    /// the id has failed [`SLOW_AFTER_FAILURES`] times in the window).
    pub fn delay_for(&self, id: &str, now_ms: u64) -> std::time::Duration {
        let (n, _) = failures_now(&self.failures.lock(), &id.to_owned(), now_ms);
        if n >= SLOW_AFTER_FAILURES {
            std::time::Duration::from_millis(SLOW_LOGIN_MS)
        } else {
            std::time::Duration::ZERO
        }
    }

    /// Check the password (argon2: call from a blocking thread) and open a
    /// session; returns its token. A source that failed too often is refused
    /// unchecked; known and unknown ids fail alike (and are counted alike).
    pub fn login(
        &self,
        id: &str,
        password: &str,
        source: Option<std::net::IpAddr>,
        now_ms: u64,
    ) -> Result<String, LoginError> {
        if let Some(ip) = source {
            let (n, since) = failures_now(&self.source_failures.lock(), &ip, now_ms);
            if n >= MAX_FAILURES_PER_SOURCE {
                return Err(LoginError::Throttled(
                    (since + FAILURE_WINDOW_MS - now_ms).div_ceil(1000),
                ));
            }
        }
        let account = self.accounts.get(id);
        let hash = account.and_then(|a| a.password_hash.as_deref());
        let ok = super::password::verify(hash.unwrap_or(&self.decoy), password);
        let failed = || {
            count_failure(&mut self.failures.lock(), &id.to_owned(), now_ms);
            if let Some(ip) = source {
                count_failure(&mut self.source_failures.lock(), &ip, now_ms);
            }
        };
        let account = match account {
            Some(a) if ok && hash.is_some() => a,
            Some(a) if a.password_hash.is_none() => {
                failed();
                return Err(LoginError::NoPassword(a.id.clone()));
            }
            _ => {
                failed();
                return Err(LoginError::Wrong);
            }
        };
        self.failures.lock().remove(id);
        let token = crate::random::bytes::<32>()
            .map(hex::encode)
            .map_err(|_| LoginError::Wrong)?;
        let principal = match account.role {
            Role::Agent => Principal::Agent(account.id.clone()),
            Role::Supervisor => Principal::Supervisor(account.id.clone()),
        };
        let key = digest(&token);
        let session = Session {
            principal,
            last_seen_ms: now_ms,
            stored_ms: now_ms,
        };
        self.persist(&key, &session.principal, now_ms, true);
        self.sessions.lock().insert(key, session);
        Ok(token)
    }

    pub fn logout(&self, token: &str) -> Option<Principal> {
        let key = digest(token);
        let s = self.sessions.lock().remove(&key)?;
        self.forget(&key);
        Some(s.principal)
    }

    /// The admin token, or a live session (which this request keeps alive).
    pub fn authenticate(&self, token: &str, now_ms: u64) -> Option<Principal> {
        if self.admin.matches(token) {
            return Some(Principal::Admin);
        }
        let mut sessions = self.sessions.lock();
        let key = digest(token);
        let s = sessions.get_mut(&key)?;
        if now_ms > s.last_seen_ms + self.idle_ms {
            sessions.remove(&key);
            drop(sessions);
            self.forget(&key);
            return None;
        }
        s.last_seen_ms = now_ms;
        let principal = s.principal.clone();
        let refresh = now_ms >= s.stored_ms + STORE_EVERY_MS;
        if refresh {
            s.stored_ms = now_ms;
        }
        // Written outside the lock every request takes.
        drop(sessions);
        if refresh {
            self.persist(&key, &principal, now_ms, false);
        }
        Some(principal)
    }

    /// Drop expired sessions (called now and then).
    pub fn sweep(&self, now_ms: u64) {
        let mut gone = Vec::new();
        self.sessions.lock().retain(|k, s| {
            let live = now_ms <= s.last_seen_ms + self.idle_ms;
            if !live {
                gone.push(*k);
            }
            live
        });
        for k in gone {
            self.forget(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(
            vec![
                Account {
                    id: "1001".into(),
                    name: "Zhang Wei".into(),
                    role: Role::Agent,
                    password_hash: Some(super::super::password::hash("pw").unwrap()),
                },
                Account {
                    id: "1002".into(),
                    name: "Li Na".into(),
                    role: Role::Agent,
                    password_hash: None,
                },
            ],
            60,
            AdminToken::new("admin"),
        )
        .unwrap()
    }

    /// A restart (a new Sessions on the same store) keeps live sessions;
    /// logged-out, idle-expired and no-longer-configured ones are gone.
    #[test]
    fn sessions_outlive_a_restart_through_the_store() {
        let store = crate::store::Store::temporary().unwrap();
        let first = sessions().with_store(store.clone(), 0);
        let kept = first.login("1001", "pw", None, 1000).unwrap();
        let out = first.login("1001", "pw", None, 1000).unwrap();
        let idle = first.login("1001", "pw", None, 1000).unwrap();
        first.logout(&out);
        // `kept` is used at 40 s and 70 s (stored: 60 s since its login).
        assert!(first.authenticate(&kept, 40_000).is_some());
        assert!(first.authenticate(&kept, 70_000).is_some());
        drop(first);

        let second = sessions().with_store(store.clone(), 100_000);
        assert_eq!(
            second.authenticate(&kept, 100_000),
            Some(Principal::Agent("1001".into()))
        );
        assert_eq!(second.authenticate(&out, 100_000), None, "logged out");
        assert_eq!(second.authenticate(&idle, 100_000), None, "idle past 60 s");
        assert_eq!(store.sessions().unwrap().len(), 1);

        // An account removed from the config takes its sessions with it.
        let without = Sessions::new(vec![], 60, AdminToken::new("admin"))
            .unwrap()
            .with_store(store.clone(), 100_000);
        assert_eq!(without.authenticate(&kept, 100_000), None);
        assert!(store.sessions().unwrap().is_empty());
    }

    #[test]
    fn login_gives_a_token_that_expires_when_idle() {
        let s = sessions();
        let t = s.login("1001", "pw", None, 1000).unwrap();
        assert_eq!(
            s.authenticate(&t, 30_000),
            Some(Principal::Agent("1001".into()))
        );
        assert_eq!(
            s.authenticate(&t, 89_000),
            Some(Principal::Agent("1001".into()))
        );
        assert_eq!(s.authenticate(&t, 150_000), None);
        assert_eq!(s.authenticate("admin", 0), Some(Principal::Admin));
    }

    #[test]
    fn wrong_and_unknown_read_the_same_and_guessing_is_throttled_by_source() {
        let s = sessions();
        let attacker = Some(std::net::IpAddr::from([10, 0, 0, 9]));
        let owner = Some(std::net::IpAddr::from([10, 0, 0, 1]));
        assert_eq!(s.login("1001", "nope", attacker, 0), Err(LoginError::Wrong));
        assert_eq!(s.login("9999", "pw", attacker, 0), Err(LoginError::Wrong));
        assert_eq!(
            s.login("1002", "x", attacker, 0),
            Err(LoginError::NoPassword("1002".into()))
        );
        // Known and unknown ids are slowed alike: no id oracle.
        for id in ["1001", "9999"] {
            for _ in 0..SLOW_AFTER_FAILURES {
                let _ = s.login(id, "nope", None, 10);
            }
            assert_eq!(
                s.delay_for(id, 20),
                std::time::Duration::from_millis(SLOW_LOGIN_MS),
                "{id}"
            );
        }
        // The guessing source is refused unchecked; the owner elsewhere is not.
        for _ in 0..MAX_FAILURES_PER_SOURCE {
            let _ = s.login("1001", "nope", attacker, 30);
        }
        assert!(matches!(
            s.login("1001", "pw", attacker, 40),
            Err(LoginError::Throttled(_))
        ));
        assert!(s.login("1001", "pw", owner, 40).is_ok(), "never locked out");
        assert_eq!(
            s.delay_for("1001", 50),
            std::time::Duration::ZERO,
            "a success clears it"
        );
        assert!(
            s.login("1001", "pw", attacker, FAILURE_WINDOW_MS + 31)
                .is_ok()
        );
    }

    #[test]
    fn logout_ends_the_session() {
        let s = sessions();
        let t = s.login("1001", "pw", None, 0).unwrap();
        assert_eq!(s.logout(&t), Some(Principal::Agent("1001".into())));
        assert_eq!(s.authenticate(&t, 1), None);
    }
}
