//! Outgoing HTTP for CRM connectors: only to the hosts their manifest grants,
//! with a timeout and a response size cap, and no redirects (a granted host
//! must not be able to bounce the request elsewhere).

use std::time::Duration;

use super::bindings::crm_connector::cti::plugin::http::{HttpError, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("capabilities.http_ca_pem: {0}")]
    BadCa(reqwest::Error),
    #[error("capabilities.http_ca_pem holds no PEM certificate")]
    NoCa,
    #[error("HTTP client: {0}")]
    Client(reqwest::Error),
}

pub struct HttpGrant {
    client: reqwest::Client,
    allowed: Vec<String>,
    timeout: Duration,
    max_body: usize,
}

impl HttpGrant {
    /// `ca_pem`: the only CAs HTTPS peers may chain to (the bank's own);
    /// None: the public roots.
    pub fn new(
        allowed: Vec<String>,
        timeout: Duration,
        max_body: usize,
        ca_pem: Option<&str>,
    ) -> Result<Self, GrantError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout);
        if let Some(pem) = ca_pem {
            let cas =
                reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(GrantError::BadCa)?;
            if cas.is_empty() {
                return Err(GrantError::NoCa);
            }
            builder = builder.tls_built_in_root_certs(false);
            for ca in cas {
                builder = builder.add_root_certificate(ca);
            }
        }
        let client = builder.build().map_err(GrantError::Client)?;
        Ok(Self {
            client,
            allowed: allowed
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            timeout,
            max_body,
        })
    }

    /// `host` grants every port of that host; `host:port` only that port.
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        let Some(host) = url.host_str().map(|h| h.to_ascii_lowercase()) else {
            return false;
        };
        let port = url.port_or_known_default().unwrap_or(0);
        let with_port = format!("{host}:{port}");
        self.allowed.iter().any(|a| *a == host || *a == with_port)
    }

    pub async fn send(
        &self,
        plugin: &str,
        call_id: &str,
        req: Request,
    ) -> Result<Response, HttpError> {
        let url = reqwest::Url::parse(&req.url)
            .map_err(|e| HttpError::Denied(format!("bad URL {:?}: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::Denied(format!(
                "scheme {} not allowed",
                url.scheme()
            )));
        }
        if !self.allows(&url) {
            tracing::warn!(
                plugin,
                call_id,
                host = url.host_str().unwrap_or(""),
                "plugin HTTP request to a host not granted"
            );
            return Err(HttpError::Denied(format!(
                "host {} is not in the plugin's capabilities.http_hosts",
                url.host_str().unwrap_or("?")
            )));
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| HttpError::Denied(format!("bad method {:?}", req.method)))?;
        let mut builder = self.client.request(method, url);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let started = std::time::Instant::now();
        let mut resp = builder.send().await.map_err(|e| classify(&e))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        if resp
            .content_length()
            .is_some_and(|n| n as usize > self.max_body)
        {
            return Err(HttpError::TooLarge);
        }
        let mut body = Vec::new();
        loop {
            let remaining = self.timeout.saturating_sub(started.elapsed());
            match tokio::time::timeout(remaining, resp.chunk()).await {
                Err(_) => return Err(HttpError::Timeout),
                Ok(Err(e)) => return Err(classify(&e)),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    if body.len() + chunk.len() > self.max_body {
                        return Err(HttpError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
        tracing::debug!(
            plugin,
            call_id,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugin HTTP request"
        );
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn classify(e: &reqwest::Error) -> HttpError {
    if e.is_timeout() {
        HttpError::Timeout
    } else {
        HttpError::Failed(e.to_string())
    }
}
