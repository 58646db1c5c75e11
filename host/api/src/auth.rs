//! Bearer-token check for admin endpoints.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Holds only the token's digest; comparing digests keeps the comparison
/// independent of where the presented token differs.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8; 32]>);

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self(Arc::new(Sha256::digest(token.as_bytes()).into()))
    }

    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 7235: "bearer" and "BEARER" are Bearer).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub async fn require_admin(State(token): State<AdminToken>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match presented {
        Some(t) if token.matches(t.trim()) => next.run(req).await,
        Some(_) => (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({"error": "invalid admin token"})),
        )
            .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(
                serde_json::json!({"error": "admin token required (Authorization: Bearer ...)"}),
            ),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod bearer_tests {
    #[test]
    fn the_scheme_is_case_insensitive() {
        for v in ["Bearer t0k", "bearer t0k", "BEARER  t0k"] {
            assert_eq!(super::bearer(v), Some("t0k"), "{v}");
        }
        assert_eq!(super::bearer("Basic t0k"), None);
        assert_eq!(super::bearer("Bearer"), None);
    }
}
