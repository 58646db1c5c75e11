//! What the default center adds so that a newcomer's first call shows a
//! working center: a small CRM served by the binary itself on loopback (the
//! stock `crm-http` connector's default address), and a plugin directory
//! seeded with the stock router, open at any hour, to edit and hot-reload.

use std::net::SocketAddr;
use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The demo customers. Liu Yang calls from the number of the shipped caller
/// scenarios; Sun Li has no phone on file and is found by the account number
/// she enters; Zhao Min is a VIP.
pub fn customers() -> Vec<Value> {
    vec![
        json!({
            "id": "C-10001", "name": "Liu Yang", "segment": "retail", "language": "zh-CN",
            "phones": ["+8613800000001"], "accounts": ["6222020200112233445"],
            "last_contact": "2026-11-20",
            "notes": ["Asked on 20 Nov about raising the credit card limit"],
            "branch": "Beijing Xidan"
        }),
        json!({
            "id": "C-10002", "name": "Zhao Min", "segment": "vip", "language": "en",
            "phones": ["+8613900000088"], "accounts": ["6222021234567890", "6225880011223344"],
            "last_contact": "2026-11-28",
            "notes": ["Private banking client; relationship manager Qian Lei"],
            "branch": "Shanghai Lujiazui"
        }),
        json!({
            "id": "C-10003", "name": "Sun Li", "segment": "retail",
            "phones": [], "accounts": ["6222881234"],
            "notes": ["New customer: no phone number on file yet"],
            "branch": "Shenzhen Futian"
        }),
        json!({
            "id": "C-10004", "name": "Wu Hao", "segment": "business", "language": "zh-CN",
            "phones": ["+8613800000004"], "accounts": ["6222600099887766"],
            "last_contact": "2026-10-02",
            "notes": ["Company account: Wu Trading Co."],
            "branch": "Guangzhou Tianhe"
        }),
    ]
}

type Customers = std::sync::Arc<Vec<Value>>;

fn find(customers: &[Value], field: &str, wanted: &str) -> Response {
    let hit = customers.iter().find(|c| match &c[field] {
        Value::Array(values) => values.iter().any(|v| v.as_str() == Some(wanted)),
        v => v.as_str() == Some(wanted),
    });
    match hit {
        Some(c) => axum::Json(c.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such customer"})),
        )
            .into_response(),
    }
}

async fn by_phone(State(c): State<Customers>, UrlPath(phone): UrlPath<String>) -> Response {
    find(&c, "phones", &phone)
}

async fn by_account(State(c): State<Customers>, UrlPath(account): UrlPath<String>) -> Response {
    find(&c, "accounts", &account)
}

async fn by_id(State(c): State<Customers>, UrlPath(id): UrlPath<String>) -> Response {
    find(&c, "id", &id)
}

async fn list(State(c): State<Customers>) -> Response {
    axum::Json(c.as_ref().clone()).into_response()
}

/// The demo CRM's routes, in the shape the stock `crm-http` connector asks.
pub fn crm_router() -> axum::Router {
    axum::Router::new()
        .route("/customers", axum::routing::get(list))
        .route("/customers/by-phone/{phone}", axum::routing::get(by_phone))
        .route(
            "/customers/by-account/{account}",
            axum::routing::get(by_account),
        )
        .route("/customers/{id}", axum::routing::get(by_id))
        .with_state(std::sync::Arc::new(customers()))
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "demo CRM: cannot listen on {addr}: {source} (set [demo] crm to a free address, or remove it)"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("seeding the plugin directory {dir}: {source}")]
    Seed {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Bind the demo CRM now (so a taken port stops start-up) and serve it
/// until `shutdown` resolves.
pub async fn serve_crm(
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, DemoError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Listen { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(%local, customers = customers().len(), "demo CRM listening");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, crm_router())
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "demo CRM stopped");
        }
    }))
}

/// The stock router's manifest with its `[config.hours]` table commented
/// out, so the demo takes calls at any hour (uncomment to try the rule).
pub fn router_manifest_without_hours(manifest: &str) -> String {
    let mut out = String::new();
    let mut in_hours = false;
    for line in manifest.lines() {
        if line.starts_with("[config.hours]") {
            in_hours = true;
            out.push_str(
                "# Business hours: commented out in the demo center so that it takes\n\
                 # calls at any hour. Uncomment, save, and the host reloads the router.\n",
            );
        } else if in_hours && line.starts_with('[') {
            in_hours = false;
        }
        if in_hours && !line.trim().is_empty() {
            out.push_str("# ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Write the stock router (open at any hour) into a new plugin directory.
pub fn seed_plugins(dir: &Path) -> Result<(), DemoError> {
    let seed = |e| DemoError::Seed {
        dir: dir.to_owned(),
        source: e,
    };
    let Some(router) = crate::stock_plugins::STOCK
        .iter()
        .find(|p| p.name == "skills-router")
    else {
        return Ok(());
    };
    std::fs::write(dir.join("skills_router.wasm"), router.component).map_err(seed)?;
    std::fs::write(
        dir.join("skills-router.toml"),
        router_manifest_without_hours(router.manifest),
    )
    .map_err(seed)?;
    tracing::info!(dir = %dir.display(), "plugin directory created with the stock router (open at any hour); edit skills-router.toml there and the host reloads it");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeded_router_has_no_business_hours_but_keeps_the_rule_as_a_comment() {
        let stock = crate::stock_plugins::STOCK
            .iter()
            .find(|p| p.name == "skills-router")
            .unwrap()
            .manifest;
        assert!(stock.contains("[config.hours]"));
        let demo = router_manifest_without_hours(stock);
        let m = crate::plugins::Manifest::parse(&demo, Path::new("demo.toml")).unwrap();
        assert!(m.config_json().contains("\"services\""), "the rest stays");
        assert!(
            !m.config_json().contains("after_hours"),
            "{}",
            m.config_json()
        );
        assert!(demo.contains("# [config.hours]"));
        assert!(demo.contains("# after_hours"));
    }

    #[test]
    fn customers_are_found_by_phone_and_by_account_and_unique() {
        let c = customers();
        let mut phones = std::collections::BTreeSet::new();
        let mut accounts = std::collections::BTreeSet::new();
        for x in &c {
            for p in x["phones"].as_array().unwrap() {
                assert!(phones.insert(p.as_str().unwrap().to_owned()));
            }
            for a in x["accounts"].as_array().unwrap() {
                let a = a.as_str().unwrap();
                assert!(
                    a.bytes().all(|b| b.is_ascii_digit()),
                    "{a}: keys a phone can enter"
                );
                assert!(accounts.insert(a.to_owned()));
            }
        }
        assert!(phones.contains("+8613800000001"));
        assert!(c.iter().any(|x| x["phones"].as_array().unwrap().is_empty()));
    }
}
