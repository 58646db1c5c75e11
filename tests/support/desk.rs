//! A center for the desktop tests: agents and a supervisor with desktop
//! passwords, the stock router (always open) and screen-pop, the stock CRM
//! connector pointed at a real HTTP CRM on loopback. Plus a small client of
//! the CTI API and its event stream.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::server::{self, Server};

/// Agents 1001 and 1002 (SIP password `pw-ID`, desktop password `desk-ID`),
/// supervisor 9001 (`desk-9001`); queues general and vip; `crm`: CRM address.
pub fn center(dir: &Path, crm: std::net::SocketAddr, queue_extra: &str) -> Server {
    center_with(dir, crm, queue_extra, "")
}

/// The same with `tables` (e.g. `[media]`) appended to the config.
pub fn center_with(
    dir: &Path,
    crm: std::net::SocketAddr,
    queue_extra: &str,
    tables: &str,
) -> Server {
    let plugins = plugins_with_crm(dir, crm);
    let agent = |id: &str, queues: &str| {
        format!(
            "[[agents]]\nid = \"{id}\"\nname = \"Agent {id}\"\nsip_user = \"{id}\"\npassword = \"pw-{id}\"\ndesktop_password = \"desk-{id}\"\nqueues = {{ {queues} }}\n"
        )
    };
    let config = dir.join("ctihost.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n\
             [plugins]\nwatch = false\ndir = \"{}\"\ncrm_connector = \"crm-http\"\n\
             [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\ndigest_algorithms = [\"MD5\"]\n\
             [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n\
             [[queues]]\nname = \"general\"\nring_timeout_secs = 15\n{queue_extra}\n\
             [[queues]]\nname = \"vip\"\nring_timeout_secs = 15\n\
             {}{}\
             [[supervisors]]\nid = \"9001\"\nname = \"Wang Fang\"\ndesktop_password = \"desk-9001\"\n{tables}",
            plugins.display(),
            agent("1001", "general = 1"),
            agent("1002", "general = 1, vip = 1"),
        ),
    )
    .unwrap();
    server::start(&config)
}

/// A plugin directory with the stock router (always open) and the stock CRM
/// connector pointed at `crm`.
pub fn plugins_with_crm(dir: &Path, crm: std::net::SocketAddr) -> std::path::PathBuf {
    let plugins = super::always_open_router(dir);
    std::fs::copy(super::wasm("crm_http"), plugins.join("crm-http.wasm")).unwrap();
    std::fs::write(
        plugins.join("crm-http.toml"),
        format!(
            "name = \"crm-http\"\nkind = \"crm-connector\"\nfile = \"crm-http.wasm\"\n{}",
            super::crm_manifest_extra(&format!("http://{crm}"), &crm.to_string())
        ),
    )
    .unwrap();
    plugins
}

/// A client of the CTI API.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    /// End `call_id` from the desktop of `token`; the API's status.
    pub async fn hang_up(&self, token: &str, call_id: &str) -> u16 {
        let path = format!("/api/calls/{call_id}/hangup");
        self.call("POST", &path, Some(token), None).await.0
    }

    pub fn new(s: &Server) -> Self {
        Self {
            base: s.url.clone(),
            http: s.http(),
        }
    }

    /// Status and JSON body (Null when empty) of a request.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn login(&self, id: &str, password: &str) -> String {
        let (st, v) = self
            .call(
                "POST",
                "/api/login",
                None,
                Some(json!({"id": id, "password": password})),
            )
            .await;
        assert_eq!(st, 200, "login {id}: {v}");
        v["token"].as_str().unwrap().to_owned()
    }
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open the event stream (WSS trusting the host's certificate alone, or
/// WS when it serves clear HTTP), without the hello yet.
pub async fn open_events(s: &Server) -> Socket {
    let url = format!(
        "{}/api/events",
        s.url
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    );
    let connector =
        (!s.ca.is_empty()).then(|| tokio_tungstenite::Connector::Rustls(super::tls_client(&s.ca)));
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector)
        .await
        .unwrap();
    ws
}

/// Open the event stream with `token`; returns after the hello.
pub async fn events(s: &Server, token: &str) -> Socket {
    let mut ws = open_events(s).await;
    ws.send(Message::Text(json!({"token": token}).to_string().into()))
        .await
        .unwrap();
    let hello = next_of(&mut ws, "hello", |_| true).await;
    assert!(hello["who"].is_string(), "{hello}");
    ws
}

/// The next event of `kind` ("any": of any kind) that `pred` accepts (10 s at most).
pub async fn next_of(ws: &mut Socket, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = tokio::time::timeout_at(until, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event within 10 s"));
        let Some(Ok(Message::Text(t))) = m else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if (kind == "any" || v["type"] == kind) && pred(&v) {
            return v;
        }
    }
}

/// Agent `id` logged in to the desktop (password `desk-<id>`), its phone
/// registered and running `scenario`, and ready for calls.
pub async fn ready_agent(
    api: &Api,
    s: &Server,
    id: &str,
    scenario: &str,
) -> (String, std::process::Child) {
    let token = api.login(id, &format!("desk-{id}")).await;
    let phone = super::sipp::phone(s, id, scenario);
    let (st, v) = api
        .call(
            "POST",
            "/api/me/state",
            Some(&token),
            Some(json!({"state": "ready"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    (token, phone)
}

/// The record of `call_id` once the host has written it (10 s at most).
pub async fn record_of(s: &Server, call_id: &str) -> Value {
    super::wait_for(Duration::from_secs(10), || {
        s.admin_json("/admin/cdr", "t0k")
            .as_array()?
            .iter()
            .find(|r| r["call_id"] == call_id)
            .cloned()
    })
    .await
    .unwrap_or_else(|| panic!("no record of {call_id}"))
}
