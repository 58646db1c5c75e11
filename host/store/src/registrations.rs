//! Phones' registrations kept across restarts: without them a restarted
//! host could reach no agent until each phone's next refresh (minutes).

use super::{Store, StoreError};
use ctihost_sip::registrar::Binding;

impl Store {
    /// A user's bindings as they are now; none removes the user.
    pub fn put_bindings(&self, user: &str, bindings: &[Binding]) -> Result<(), StoreError> {
        if bindings.is_empty() {
            self.registrations.remove(user.as_bytes())?;
        } else {
            self.registrations
                .insert(user.as_bytes(), serde_json::to_vec(bindings)?)?;
        }
        Ok(())
    }

    /// Every user's stored bindings; entries that do not parse are dropped.
    pub fn bindings(&self) -> Result<Vec<(String, Vec<Binding>)>, StoreError> {
        let mut v = Vec::new();
        for item in self.registrations.iter() {
            let (k, bytes) = item?;
            match (
                std::str::from_utf8(&k),
                serde_json::from_slice::<Vec<Binding>>(&bytes),
            ) {
                (Ok(user), Ok(b)) => v.push((user.to_owned(), b)),
                _ => {
                    self.registrations.remove(k)?;
                }
            }
        }
        Ok(v)
    }
}
