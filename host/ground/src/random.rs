//! Randomness from the operating system (tokens, nonce secrets, SIP tags and branches).

#[derive(Debug, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub struct NoRandomness(String);

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], NoRandomness> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| NoRandomness(e.to_string()))?;
    Ok(b)
}

/// A random hex token of `N` bytes; for identifiers (tags, branches) where a
/// failure of the OS source must not stop a call, it falls back to the clock.
pub fn hex_token<const N: usize>() -> String {
    match bytes::<N>() {
        Ok(b) => hex::encode(b),
        Err(_) => format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ),
    }
}
