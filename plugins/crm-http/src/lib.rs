//! HTTP/JSON CRM connector: base URL and paths from config. A 404 means "no
//! such customer"; any other failure is reported as the CRM being unavailable.

use ctihost_sdk::crm_connector::http::{HttpError, Request, send};
use ctihost_sdk::crm_connector::*;
use ctihost_sdk::host;
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    base_url: String,
    #[serde(default = "by_phone")]
    phone_path: String,
    #[serde(default = "by_account")]
    account_path: String,
    #[serde(default = "by_id")]
    id_path: String,
    /// Extra request headers, e.g. an API key.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

fn by_phone() -> String {
    "/customers/by-phone/{phone}".into()
}
fn by_account() -> String {
    "/customers/by-account/{account}".into()
}
fn by_id() -> String {
    "/customers/{id}".into()
}

/// The CRM's JSON; unknown fields land in `attributes`.
#[derive(Deserialize)]
struct CrmCustomer {
    id: serde_json::Value,
    name: String,
    #[serde(default = "retail")]
    segment: String,
    language: Option<String>,
    #[serde(default)]
    accounts: Vec<String>,
    last_contact: Option<String>,
    #[serde(default)]
    notes: Vec<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

fn retail() -> String {
    "retail".into()
}

struct CrmHttp;

impl Guest for CrmHttp {
    fn lookup(key: LookupKey) -> Result<Option<Customer>, CrmError> {
        let cfg: Config = host::config().map_err(CrmError::Unavailable)?;
        let path = match &key {
            LookupKey::Phone(p) => cfg.phone_path.replace("{phone}", &encode(p)),
            LookupKey::Account(a) => cfg.account_path.replace("{account}", &encode(a)),
            LookupKey::CustomerId(i) => cfg.id_path.replace("{id}", &encode(i)),
        };
        let mut headers: Vec<(String, String)> = cfg.headers.into_iter().collect();
        headers.push(("accept".into(), "application/json".into()));
        let req = Request {
            method: "GET".into(),
            url: format!("{}{}", cfg.base_url.trim_end_matches('/'), path),
            headers,
            body: None,
        };
        let resp = send(&req).map_err(|e| match e {
            HttpError::Denied(s) => CrmError::Denied(s),
            HttpError::Timeout => CrmError::Unavailable("CRM timed out".into()),
            HttpError::TooLarge => CrmError::Unavailable("CRM answer too large".into()),
            HttpError::Failed(s) => CrmError::Unavailable(s),
        })?;
        host::counter_add(&format!("http_{}", resp.status), 1);
        match resp.status {
            200 => {}
            404 => return Ok(None),
            s => return Err(CrmError::Unavailable(format!("CRM answered HTTP {s}"))),
        }
        let c: CrmCustomer = serde_json::from_slice(&resp.body)
            .map_err(|e| CrmError::Unavailable(format!("CRM sent bad JSON: {e}")))?;
        let id = match c.id {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        let attributes = c
            .rest
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    },
                )
            })
            .collect();
        Ok(Some(Customer {
            id,
            name: c.name,
            segment: c.segment.to_lowercase(),
            language: c.language,
            accounts: c.accounts,
            last_contact: c.last_contact,
            notes: c.notes,
            attributes,
        }))
    }
}

/// Percent-encode everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

ctihost_sdk::export_crm_connector!(CrmHttp);
