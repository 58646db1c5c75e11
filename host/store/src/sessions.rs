//! Desktop sessions kept across restarts, so that restarting the host (an
//! upgrade at night) does not log every agent's desktop out. Keyed by the
//! SHA-256 of the bearer token: the token itself is never written.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSession {
    /// The principal's label ("agent:1001", "supervisor:9001").
    pub principal: String,
    pub last_seen_ms: u64,
}

impl Store {
    /// Add or refresh a session; `durable`: on disk when this returns (a
    /// login or logout), else with the store's next periodic flush.
    pub fn put_session(
        &self,
        key: &[u8; 32],
        session: &StoredSession,
        durable: bool,
    ) -> Result<(), StoreError> {
        self.sessions
            .insert(key.as_slice(), serde_json::to_vec(session)?)?;
        if durable {
            self.sessions.flush()?;
        }
        Ok(())
    }

    pub fn remove_session(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        self.sessions.remove(key.as_slice())?;
        self.sessions.flush()?;
        Ok(())
    }

    /// Every stored session; entries that do not parse are skipped (and
    /// removed), so a damaged entry costs one desktop a login, nothing more.
    pub fn sessions(&self) -> Result<Vec<([u8; 32], StoredSession)>, StoreError> {
        let mut v = Vec::new();
        for item in self.sessions.iter() {
            let (k, bytes) = item?;
            match (
                <[u8; 32]>::try_from(k.as_ref()),
                serde_json::from_slice::<StoredSession>(&bytes),
            ) {
                (Ok(key), Ok(s)) => v.push((key, s)),
                _ => {
                    self.sessions.remove(k)?;
                }
            }
        }
        Ok(v)
    }
}
