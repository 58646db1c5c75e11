//! A CRM connector: GET {base_url}/customers/by-phone/{phone}, JSON answer.
//! The host only lets it reach the hosts listed in `[capabilities] http_hosts`.

use ctihost_sdk::crm_connector::*;
use ctihost_sdk::host;

struct Plugin;

impl Guest for Plugin {
    fn lookup(key: LookupKey) -> Result<Option<Customer>, CrmError> {
        let base = host::config_get("base_url").unwrap_or_default();
        let url = match key {
            LookupKey::Phone(p) => format!("{base}/customers/by-phone/{p}"),
            LookupKey::Account(a) => format!("{base}/customers/by-account/{a}"),
            LookupKey::CustomerId(id) => format!("{base}/customers/{id}"),
        };
        let req = http::Request { method: "GET".into(), url, headers: vec![], body: None };
        let resp = http::send(&req).map_err(|e| CrmError::Unavailable(format!("{e:?}")))?;
        match resp.status {
            200 => {}
            404 => return Ok(None),
            s => return Err(CrmError::Unavailable(format!("CRM answered {s}"))),
        }
        let v: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|e| CrmError::Unavailable(format!("bad JSON: {e}")))?;
        let text = |k: &str| v.get(k).map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())).unwrap_or_default();
        Ok(Some(Customer {
            id: text("id"),
            name: text("name"),
            segment: text("segment"),
            language: v.get("language").and_then(|l| l.as_str()).map(str::to_owned),
            accounts: v
                .get("accounts")
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            last_contact: v.get("last_contact").and_then(|l| l.as_str()).map(str::to_owned),
            notes: vec![],
            attributes: vec![],
        }))
    }
}

ctihost_sdk::export_crm_connector!(Plugin);
