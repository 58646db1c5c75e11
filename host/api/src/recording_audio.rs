//! A call's recording as audio, for those allowed to hear it: the admin
//! token (`GET /admin/recordings/{id}/audio`) and supervisors
//! (`GET /api/recordings/{id}/audio`). Sealed files are decrypted, every
//! answer is checked against the index's SHA-256 (a file changed on disk is
//! never served as the call's recording), and every fetch is audited: no
//! audit row, no audio, so a principal past its audit budget is refused.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::audit_budget::{Admit, AuditBudget};
use crate::media::sealed::{self, KeyRing};
use crate::store::{AuditEntry, Store};

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is sealed and this host has no recording keys ([recording] key_file)")]
    NoKeys { path: std::path::PathBuf },
    #[error(transparent)]
    Sealed(#[from] sealed::SealError),
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

/// A recording's WAV bytes: a plain file as it is, a sealed one decrypted.
fn read(file: &std::path::Path, keys: Option<&KeyRing>) -> Result<Vec<u8>, ReadError> {
    if !sealed::is_sealed(file) {
        return std::fs::read(file).map_err(|source| ReadError::Io {
            path: file.to_owned(),
            source,
        });
    }
    let keys = keys.ok_or_else(|| ReadError::NoKeys {
        path: file.to_owned(),
    })?;
    let mut wav = Vec::new();
    sealed::export_wav(file, keys, &mut wav)?;
    Ok(wav)
}

/// Serve `call_id`'s recording to `who` (an audit label: "admin",
/// "supervisor:9001"), within `budget` when given.
pub async fn serve(
    store: &Store,
    keys: Option<Arc<KeyRing>>,
    budget: Option<&AuditBudget>,
    call_id: String,
    who: String,
) -> Response {
    let now = crate::clock::now_ms();
    if budget.is_some_and(|b| b.admit(&who, now) != Admit::Write) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many audited requests this minute: recordings are served only when audited",
        );
    }
    let audit = |outcome: String| {
        let entry = AuditEntry {
            at_ms: now,
            who: who.clone(),
            action: "recording-audio".into(),
            call_id: Some(call_id.clone()),
            outcome,
        };
        store.audit(&entry)
    };
    let e = match store.recording(&call_id) {
        Ok(Some(e)) => e,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no recording of call {call_id:?}"),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if e.purged_ms.is_some() {
        return error(
            StatusCode::GONE,
            format!("recording of call {call_id:?} was purged"),
        );
    }
    let file = e.file.clone();
    let bytes = match tokio::task::spawn_blocking(move || read(&file, keys.as_deref())).await {
        Ok(Ok(b)) => b,
        Ok(Err(err)) => {
            let _ = audit(format!("refused: {err}"));
            return error(StatusCode::INTERNAL_SERVER_ERROR, err);
        }
        Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, err),
    };
    use sha2::Digest;
    if hex::encode(sha2::Sha256::digest(&bytes)) != e.sha256 {
        let _ = audit("refused: the file does not match its index hash".into());
        return error(
            StatusCode::CONFLICT,
            format!("{} does not match its index hash", e.file.display()),
        );
    }
    let served = format!(
        "served {} bytes{}",
        bytes.len(),
        if e.sealed.is_some() {
            ", decrypted"
        } else {
            ""
        }
    );
    if let Err(err) = audit(served) {
        tracing::error!(call_id, error = %err, "cannot audit a recording fetch: not served");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit log cannot be written: recordings are served only when audited",
        );
    }
    ([(axum::http::header::CONTENT_TYPE, "audio/wav")], bytes).into_response()
}
