//! Certificates for the host's TLS listeners: the API's HTTPS (desktop,
//! wallboard, CTI and admin API, the event stream's WSS) and SIP over TLS.
//!
//! A bank brings its own certificate and key (PEM). Without one, the API
//! gets a self-signed certificate generated into the data directory on
//! first start and kept, so `make run` is encrypted out of the box and a
//! browser's exception (or a client's pinned file) stays valid across
//! restarts. rustls on ring throughout: no OpenSSL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a PEM certificate chain: {message}")]
    BadCertificate { path: PathBuf, message: String },
    #[error("{path}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {message}")]
    BadKey { path: PathBuf, message: String },
    #[error("certificate {cert} and key {key} do not make a TLS identity: {source}")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS client trusting {path}: {source}")]
    Client {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A TLS identity ready to serve, and what the log says of it.
pub struct Identity {
    pub config: Arc<rustls::ServerConfig>,
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate (DER), as browsers show it.
    pub fingerprint: String,
    /// Whether this start generated it.
    pub generated: bool,
}

/// Where the generated certificate of the API lives.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (
        data_dir.join("admin-cert.pem"),
        data_dir.join("admin-key.pem"),
    )
}

/// The API's identity: the configured pair, or the generated one (made
/// now if the data directory has none yet) naming `localhost`, loopback
/// and `listen`'s address.
pub fn api_identity(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
    listen: std::net::SocketAddr,
) -> Result<Identity, TlsError> {
    if let (Some(cert), Some(key)) = (cert, key) {
        return load(cert, key, false, &[b"http/1.1"]);
    }
    let (cert, key) = generated_paths(data_dir);
    let generated = match (cert.exists(), key.exists()) {
        (true, true) => false,
        (false, false) => {
            generate(&cert, &key, listen.ip())?;
            true
        }
        // A start that died between the two writes: the generated pair
        // is nobody's secret, so a new one replaces the half.
        (has_cert, _) => {
            tracing::warn!(
                present = %if has_cert { &cert } else { &key }.display(),
                "half of the generated HTTPS certificate pair is missing; generating a new pair"
            );
            generate(&cert, &key, listen.ip())?;
            true
        }
    };
    // Browsers open WebSockets over HTTP/1.1 (hyper offers no extended
    // CONNECT): one protocol, as the clear listener had.
    load(&cert, &key, generated, &[b"http/1.1"])
}

/// A server identity from PEM files, offering `alpn`.
pub fn load(
    cert_path: &Path,
    key_path: &Path,
    generated: bool,
    alpn: &[&[u8]],
) -> Result<Identity, TlsError> {
    build(cert_path, key_path, generated, alpn, None)
}

/// The same, asking clients for a certificate and checking the one they
/// present against the CA bundle `clients` (a client without one still
/// connects: phones; a trunk is known by its certificate).
pub fn load_verifying_clients(
    cert_path: &Path,
    key_path: &Path,
    clients: &Path,
) -> Result<Identity, TlsError> {
    build(cert_path, key_path, false, &[], Some(clients))
}

fn build(
    cert_path: &Path,
    key_path: &Path,
    generated: bool,
    alpn: &[&[u8]],
    clients: Option<&Path>,
) -> Result<Identity, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read("certificate", cert_path)?;
    let key_pem = read("private key", key_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: cert_path.to_owned(),
            message: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    };
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: key_path.to_owned(),
        message: e.to_string(),
    })?;
    let identity_error = |source| TlsError::Identity {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(identity_error)?;
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::BadCertificate {
                path: ca.to_owned(),
                message: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(identity_error)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Identity {
        config: Arc::new(config),
        // Absolute: the log line is what an operator copies into a client.
        cert_path: std::path::absolute(cert_path).unwrap_or_else(|_| cert_path.to_owned()),
        fingerprint,
        generated,
    })
}

/// A client configuration trusting the certificates of the PEM file `ca`
/// alone (a trunk provider's or the bank's CA).
pub fn client(ca: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = roots(ca)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|source| TlsError::Client {
        path: ca.to_owned(),
        source,
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates of the PEM file `ca`, as trust anchors.
fn roots(ca: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let pem = std::fs::read(ca).map_err(|source| TlsError::Read {
        what: "CA bundle",
        path: ca.to_owned(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&pem) {
        let c = c.map_err(|e| TlsError::BadCertificate {
            path: ca.to_owned(),
            message: e.to_string(),
        })?;
        roots.add(c).map_err(|e| TlsError::BadCertificate {
            path: ca.to_owned(),
            message: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate {
            path: ca.to_owned(),
        });
    }
    Ok(roots)
}

/// `AB:CD:...`: the SHA-256 of a certificate as browsers and `openssl x509
/// -fingerprint -sha256` print it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// How long a generated certificate lasts: the CA/Browser Forum's old
/// ceiling for a leaf, so no client refuses it for its length.
const GENERATED_DAYS: i64 = 825;

fn generate(cert: &Path, key: &Path, listen: std::net::IpAddr) -> Result<(), TlsError> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    if !listen.is_unspecified() && !listen.is_loopback() {
        names.push(listen.to_string());
    }
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ctihost (self-signed)");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(GENERATED_DAYS);
    let pair = rcgen::KeyPair::generate()?;
    let made = params.self_signed(&pair)?;
    let write = |path: &Path, pem: String| {
        crate::server::write_private(path, pem).map_err(|source| TlsError::Write {
            path: path.to_owned(),
            source,
        })
    };
    write(key, pair.serialize_pem())?;
    write(cert, made.pem())?;
    Ok(())
}

#[cfg(test)]
mod tests;
