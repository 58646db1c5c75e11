//! Desktop passwords: argon2id hashes in PHC form, never the password itself.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("not an argon2 PHC string: {0}")]
    Format(String),
    #[error("cannot hash: {0}")]
    Hash(String),
}

/// argon2id with the crate's default (OWASP-recommended) cost.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = crate::random::bytes::<16>().map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `phc` is a hash this host can verify against.
pub fn check_phc(phc: &str) -> Result<(), PasswordError> {
    let h = PasswordHash::new(phc).map_err(|e| PasswordError::Format(e.to_string()))?;
    if !h.algorithm.as_str().starts_with("argon2") {
        return Err(PasswordError::Format(format!(
            "algorithm {} is not argon2",
            h.algorithm
        )));
    }
    Ok(())
}

pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        check_phc(&h).unwrap();
        assert!(verify(&h, "s3cret"));
        assert!(!verify(&h, "s3cret "));
        assert!(!verify("garbage", "s3cret"));
        assert!(check_phc("$md5$abc").is_err());
    }
}
