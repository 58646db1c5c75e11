//! The CTI API and its event stream against the real binary: sessions,
//! every endpoint's happy path and bad input, and real calls (SIPp caller and
//! phones) seen through the agent's and the supervisor's event streams.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::desk::{self, Api, events, next_of};
use support::server::free_port;
use support::sipp::{phone, sipp_cmd, spawn_caller, target};
use support::{Crm, wait_for};

async fn finished(child: std::process::Child) -> bool {
    tokio::task::spawn_blocking(move || support::sipp::finished(child))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_states_and_bad_input() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let api = Api::new(&s);

    // Nothing is open without a session.
    for (m, p) in [
        ("GET", "/api/me"),
        ("GET", "/api/calls"),
        ("GET", "/api/queues"),
        ("GET", "/api/agents"),
        ("POST", "/api/calls/x/hangup"),
        ("POST", "/api/me/state"),
        ("GET", "/api/audit"),
    ] {
        let (st, v) = api.call(m, p, None, None).await;
        assert_eq!(st, 401, "{m} {p}: {v}");
        assert!(v["error"].as_str().unwrap().contains("session"), "{v}");
        let (st, _) = api.call(m, p, Some("not-a-token"), None).await;
        assert_eq!(st, 401, "{m} {p} with a wrong token");
    }
    // Logins: wrong password and unknown id read the same; malformed bodies say why.
    let bad = |id: &str, pw: &str| json!({"id": id, "password": pw});
    let (st, v) = api
        .call("POST", "/api/login", None, Some(bad("1001", "nope")))
        .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (401, Some("wrong id or password"))
    );
    let (st, v2) = api
        .call("POST", "/api/login", None, Some(bad("7777", "nope")))
        .await;
    assert_eq!((st, &v2), (401, &v));
    let r = api
        .http
        .post(format!("{}/api/login", api.base))
        .header("content-type", "application/json")
        .body("{\"id\": \"1001\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("bad request body"),
        "{v}"
    );
    let (st, v) = api
        .call("POST", "/api/login", None, Some(json!({"id": "1001"})))
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("password"), "{v}");

    let agent = api.login("1001", "desk-1001").await;
    let sup = api.login("9001", "desk-9001").await;
    let (st, me) = api.call("GET", "/api/me", Some(&agent), None).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["id"], "1001");
    assert_eq!(me["role"], "agent");
    assert_eq!(me["agent"]["state"], "logged-out");

    // States: unknown, not fitting now, then the happy paths.
    let state = |body: Value| {
        let (api, agent) = (&api, &agent);
        async move {
            api.call("POST", "/api/me/state", Some(agent), Some(body))
                .await
        }
    };
    let (st, v) = state(json!({"state": "dancing"})).await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("dancing"), "{v}");
    let (st, v) = state(json!({"state": "wrap-up-done"})).await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not in wrap-up"),
        "{v}"
    );
    let (st, v) = state(json!({"state": "not-ready", "reason": "lunch"})).await;
    assert_eq!(st, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("logged out"), "{v}");
    let (st, v) = state(json!({"state": "ready", "colour": "red"})).await;
    assert_eq!(st, 422, "unknown field: {v}");
    let (st, v) = state(json!({"state": "ready"})).await;
    assert_eq!((st, &v["state"]), (200, &json!("ready")), "{v}");
    let (st, v) = state(json!({"state": "not-ready", "reason": "lunch"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (&v["state"], &v["reason"]),
        (&json!("not-ready"), &json!("lunch"))
    );

    // The supervisor sees it; an agent may not see the others.
    let (st, _) = api.call("GET", "/api/agents", Some(&agent), None).await;
    assert_eq!(st, 403);
    let (st, agents) = api.call("GET", "/api/agents", Some(&sup), None).await;
    assert_eq!(st, 200);
    let a = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "1001")
        .unwrap();
    assert_eq!(
        (&a["state"], &a["reason"]),
        (&json!("not-ready"), &json!("lunch"))
    );
    assert!(a["since_ms"].as_u64().unwrap() > 0);
    let (st, board) = api.call("GET", "/api/queues", Some(&agent), None).await;
    assert_eq!(st, 200);
    let names: Vec<&str> = board["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["general", "vip"], "{board}");

    // Calls: unknown ids, bad transfer targets.
    let (st, v) = api
        .call("POST", "/api/calls/nope/hangup", Some(&sup), None)
        .await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = api
        .call(
            "POST",
            "/api/calls/nope/transfer",
            Some(&sup),
            Some(json!({"planet": "mars"})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    let (st, v) = api
        .call(
            "POST",
            "/api/calls/nope/recording",
            Some(&sup),
            Some(json!({"action": "shred"})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, calls) = api.call("GET", "/api/calls", Some(&sup), None).await;
    assert_eq!((st, calls), (200, json!([])));

    // Admin endpoints stay behind the admin token; a session is not enough.
    let (st, _) = api.call("GET", "/admin/plugins", Some(&sup), None).await;
    assert_eq!(st, 403);
    let (st, _) = api.call("GET", "/api/agents", Some("t0k"), None).await;
    assert_eq!(st, 200, "the admin token works on the CTI API");

    // CORS stays closed: no allow-origin for another site, preflight or not.
    let r = api
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/api/me", api.base))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert!(r.status().is_client_error(), "{}", r.status());

    // The OpenAPI document served is the one in the repository, and it
    // describes every endpoint used here.
    let (st, doc) = api.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(st, 200);
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(support::root().join("docs/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(doc, file);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/api/login",
        "/api/logout",
        "/api/me",
        "/api/me/state",
        "/api/calls",
        "/api/calls/{id}/hangup",
        "/api/calls/{id}/transfer",
        "/api/calls/{id}/recording",
        "/api/queues",
        "/api/agents",
        "/api/audit",
        "/api/events",
        "/admin/plugins",
        "/admin/plugins/{name}/reload",
        "/admin/plugins/{name}/rollback",
        "/admin/plugins/{name}/history",
        "/admin/reports",
        "/admin/cdr",
        "/metrics",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }

    // Logout ends the session; the login is in the audit log.
    let (st, _) = api.call("POST", "/api/logout", Some(&agent), None).await;
    assert_eq!(st, 204);
    let (st, _) = api.call("GET", "/api/me", Some(&agent), None).await;
    assert_eq!(st, 401);
    let (_, audit) = api.call("GET", "/api/audit", Some(&sup), None).await;
    let actions: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["who"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("agent:1001".into(), "login".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("agent:1001".into(), "logout".into())),
        "{actions:?}"
    );

    // The scheme of Authorization is case-insensitive (RFC 7235).
    let token = api.login("1001", "desk-1001").await;
    let r = api
        .http
        .get(format!("{}/api/me", api.base))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A not-ready reason is short printable text (it reaches every wallboard).
    let (st, v) = api
        .call(
            "POST",
            "/api/me/state",
            Some(&token),
            Some(json!({"state": "not-ready", "reason": "x".repeat(1 << 20)})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, _) = api
        .call(
            "POST",
            "/api/me/state",
            Some(&token),
            Some(json!({"state": "not-ready", "reason": "lunch\r\nINJECTED"})),
        )
        .await;
    assert_eq!(st, 400);
    // The event stream without an upgrade answers JSON like the rest.
    let r = api
        .http
        .get(format!("{}/api/events", api.base))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        r.headers()
    );

    // Guessing a password is braked: after five failures for an id each
    // attempt for it waits a second; after ten from one source (two above,
    // eight here) that source is refused unchecked, even the right password.
    for i in 0..8 {
        let id = if i < 6 { "1002" } else { "7777" };
        let started = std::time::Instant::now();
        let (st, v) = api
            .call("POST", "/api/login", None, Some(bad(id, "guess")))
            .await;
        assert_eq!(st, 401, "{v}");
        let slowed = started.elapsed() >= Duration::from_millis(900);
        assert_eq!(slowed, i == 5, "attempt {i} ({id}) slowed: {slowed}");
    }
    let (st, v) = api
        .call("POST", "/api/login", None, Some(bad("1002", "desk-1002")))
        .await;
    assert_eq!(st, 429, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_reaches_the_desktop_with_its_card_then_pause_and_hangup() {
    let crm = Crm::start().await;
    crm.add(
        "+8613800000001",
        json!({"id": 42, "name": "Liu Yang", "segment": "private", "language": "zh",
               "accounts": ["6222020200112233445"], "notes": ["Asked about a mortgage"]}),
    );
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let api = Api::new(&s);
    // The audit budget below is per wall-clock minute: the supervisor's
    // login and its 130 requests (a few seconds from here) fall in one.
    let into_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 60_000;
    if into_minute > 40_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into_minute) as u64 + 50)).await;
    }
    let agent = api.login("1001", "desk-1001").await;
    let sup = api.login("9001", "desk-9001").await;
    let mut agent_ws = events(&s, &agent).await;
    let mut sup_ws = events(&s, &sup).await;
    // Supervisors get the whole wallboard every second.
    let board = next_of(&mut sup_ws, "wallboard", |_| true).await;
    assert_eq!(board["board"]["queues"][0]["name"], "general", "{board}");

    let phone = phone(&s, "1001", "agent_answer.xml");
    let (st, _) = api
        .call(
            "POST",
            "/api/me/state",
            Some(&agent),
            Some(json!({"state": "ready"})),
        )
        .await;
    assert_eq!(st, 200);
    let caller = spawn_caller(&s, "caller_wait_bye.xml", &["-s", "95566"]);

    // The agent's stream: the offer, the host's card, then the plugin's card
    // with the CRM's name; the provisional card comes before the answer.
    let offered = next_of(&mut agent_ws, "call-offered", |_| true).await;
    assert_eq!(offered["caller"], "+8613800000001");
    assert_eq!(offered["queue"], "general");
    let call_id = offered["call_id"].as_str().unwrap().to_owned();
    let first = next_of(&mut agent_ws, "card", |_| true).await;
    assert_eq!(first["provisional"], true, "{first}");
    assert_eq!(first["call_id"], call_id.as_str());
    assert!(
        first["card"]["title"]
            .as_str()
            .unwrap()
            .contains("+8613800000001")
    );
    // The plugin's card and the answer come in either order (the phone
    // answers at once; the card waits for the CRM).
    let (mut full, mut connected) = (None, false);
    while full.is_none() || !connected {
        let e = next_of(&mut agent_ws, "any", |_| true).await;
        match e["type"].as_str() {
            Some("card") if e["provisional"] == false => full = Some(e),
            Some("call-connected") => {
                assert_eq!(e["call_id"], call_id.as_str());
                connected = true;
            }
            _ => {}
        }
    }
    let full = full.unwrap();
    assert_eq!(full["card"]["title"], "Liu Yang", "{full}");
    assert_eq!(full["plugin"], "crm-screen-pop");
    assert!(full["failure"].is_null(), "{full}");
    // The account number never reaches the desktop in clear.
    assert!(!full.to_string().contains("6222020200112233445"), "{full}");
    // The agent's state changes reach the supervisor's stream too.
    next_of(&mut sup_ws, "agent-state", |e| {
        e["agent"] == "1001" && e["state"] == "on-call"
    })
    .await;

    // The live call, as the agent and the supervisor see it.
    let (_, calls) = api.call("GET", "/api/calls", Some(&agent), None).await;
    assert_eq!(calls[0]["call_id"], call_id.as_str(), "{calls}");
    assert_eq!(calls[0]["state"], "connected");
    assert_eq!(calls[0]["agent"], "1001");
    let (_, me) = api.call("GET", "/api/me", Some(&agent), None).await;
    assert_eq!(me["agent"]["state"], "on-call");
    assert_eq!(me["call"]["call_id"], call_id.as_str());

    // Secure pause and resume, decided by the stock recording policy.
    let rec = |action: &str| {
        let (api, agent, path) = (&api, &agent, format!("/api/calls/{call_id}/recording"));
        let body = json!({ "action": action });
        async move { api.call("POST", &path, Some(agent), Some(body)).await }
    };
    let (st, v) = rec("pause").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (&v["paused"], &v["policy_action"]),
        (&json!(true), &json!("pause")),
        "{v}"
    );
    assert_eq!(v["plugin"], "pci-recording");
    let (st, v) = rec("resume").await;
    assert_eq!((st, &v["paused"]), (200, &json!(false)), "{v}");
    // A desktop in a loop (the supervisor's here) cannot grow the audit log
    // at its own rate: 120 rows a minute per principal, then one row saying
    // the rest are held back (counted in /metrics).
    let path = format!("/api/calls/{call_id}/recording");
    for i in 0..130 {
        let action = if i % 2 == 0 { "pause" } else { "resume" };
        let (st, _) = api
            .call("POST", &path, Some(&sup), Some(json!({ "action": action })))
            .await;
        assert_eq!(st, 200);
    }
    let (_, audit) = api.call("GET", "/api/audit", Some(&sup), None).await;
    let theirs: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["who"] == "supervisor:9001")
        .collect();
    // The login, then 119 of the 130, then the notice.
    assert_eq!(theirs.len(), 121, "{audit}");
    assert_eq!(theirs[120]["action"], "audit-suppressed", "{audit}");
    let m = s.admin_text("/metrics", "t0k");
    assert!(
        m.contains("ctihost_bound_hits_total{bound=\"audit_rows_per_principal\"} 10"),
        "{m}"
    );
    let (st, v) = rec("resume").await;
    assert_eq!(
        st, 200,
        "still served, and the agent's rows still written: {v}"
    );

    // Another agent's session may not touch the call.
    let other = api.login("1002", "desk-1002").await;
    let (st, _) = api
        .call(
            "POST",
            &format!("/api/calls/{call_id}/hangup"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(st, 403);

    // The agent hangs up from the desktop: both SIP legs get their BYE.
    let (st, _) = api
        .call(
            "POST",
            &format!("/api/calls/{call_id}/hangup"),
            Some(&agent),
            None,
        )
        .await;
    assert_eq!(st, 202);
    assert!(finished(caller).await, "caller got the BYE");
    assert!(finished(phone).await, "agent's phone got the BYE");
    let ended = next_of(&mut agent_ws, "call-ended", |e| {
        e["call_id"] == call_id.as_str()
    })
    .await;
    assert_eq!(ended["disposition"], "answered");
    assert_eq!(ended["cause"], "ended by agent:1001");
    let ended = next_of(&mut sup_ws, "call-ended", |e| {
        e["call_id"] == call_id.as_str()
    })
    .await;
    assert_eq!(ended["agent"], "1001");
    // Today's figures on the wallboard count the call.
    let board = next_of(&mut sup_ws, "wallboard", |b| {
        b["board"]["queues"][0]["today"]["answered"] == 1
    })
    .await;
    assert_eq!(board["board"]["queues"][0]["today"]["offered"], 1);

    // The agent's states went to the agent log: the report has occupancy.
    let (_, report) = api
        .call("GET", "/admin/reports?interval=1d", Some("t0k"), None)
        .await;
    let row = report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "1001" && a["answered"] == 1)
        .cloned()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(row["handling_secs"].as_f64().unwrap() > 0.0, "{row}");
    assert!(row["staffed_secs"].as_f64().unwrap() >= row["handling_secs"].as_f64().unwrap());
    let occupancy = row["occupancy"].as_f64().unwrap();
    assert!(occupancy > 0.0 && occupancy <= 1.0, "{row}");
    // One queue's report keeps that queue's agents: 1001 is in general only
    // and answered no vip call; an unknown queue is named.
    let agents_of = |report: &Value| -> Vec<String> {
        report["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent"].as_str().unwrap().to_owned())
            .collect()
    };
    let (st, general) = api
        .call(
            "GET",
            "/admin/reports?interval=1d&queue=general",
            Some("t0k"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert!(
        agents_of(&general).contains(&"1001".to_string()),
        "{general}"
    );
    let (_, vip) = api
        .call(
            "GET",
            "/admin/reports?interval=1d&queue=vip",
            Some("t0k"),
            None,
        )
        .await;
    assert!(!agents_of(&vip).contains(&"1001".to_string()), "{vip}");
    let (st, v) = api
        .call("GET", "/admin/reports?queue=cardz", Some("t0k"), None)
        .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (404, Some("no queue named \"cardz\""))
    );

    let (_, audit) = api.call("GET", "/api/audit", Some(&sup), None).await;
    let mine: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["call_id"] == call_id.as_str() && e["who"] == "agent:1001")
        .collect();
    let actions: Vec<&str> = mine.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "recording pause",
            "recording resume",
            "recording resume",
            "hangup"
        ],
        "{mine:?}"
    );
    assert!(
        mine[0]["outcome"]
            .as_str()
            .unwrap()
            .contains("recording paused")
    );
}

/// Transfer a connected call to the vip queue: the first agent's leg ends,
/// the second agent answers. With the relay (`relay`) the caller keeps
/// talking to the host's port and hears nothing of it; without, the host
/// re-INVITEs the caller with the new agent's SDP.
async fn transfer_to_another_queue(relay: bool) {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tables = if relay {
        ""
    } else {
        "[media]\nrelay = false\n"
    };
    let s = desk::center_with(dir.path(), crm.addr, "", tables);
    let api = Api::new(&s);
    let agent = api.login("1001", "desk-1001").await;
    let mut ws = events(&s, &agent).await;
    let first = phone(&s, "1001", "agent_answer.xml");
    let (scenario, talk) = if relay {
        ("caller_uac.xml", "3000")
    } else {
        ("caller_reinvite.xml", "500")
    };
    let caller = spawn_caller(&s, scenario, &["-s", "95566", "-d", talk]);
    let connected = next_of(&mut ws, "call-connected", |_| true).await;
    let call_id = connected["call_id"].as_str().unwrap().to_owned();
    // 1002 (general and vip) registers only now, so the first call went to 1001.
    let second = phone(&s, "1002", "agent_answer.xml");
    let (st, v) = api
        .call(
            "POST",
            &format!("/api/calls/{call_id}/transfer"),
            Some(&agent),
            Some(json!({"queue": "vip"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let moved = next_of(&mut ws, "call-transferred", |_| true).await;
    assert_eq!(moved["target"], json!({"queue": "vip"}));
    assert!(finished(first).await, "first agent's leg got its BYE");
    assert!(
        finished(caller).await,
        "caller stayed in the call and hung up"
    );
    assert!(
        finished(second).await,
        "second agent answered and got the BYE"
    );
    let record = wait_for(Duration::from_secs(10), || {
        let cdr = s.admin_json("/admin/cdr", "t0k");
        cdr.as_array()
            .unwrap()
            .iter()
            .find(|r| r["call_id"] == call_id.as_str())
            .cloned()
    })
    .await
    .expect("call record");
    assert_eq!(record["disposition"], "answered", "{record}");
    assert_eq!(record["agent"], "1002");
    assert_eq!(record["queue"], "vip");
    if relay {
        let media = s.admin_json("/admin/media", "t0k");
        assert_eq!(media["ports_in_use"], 0, "{media}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_call_is_transferred_to_another_queue() {
    transfer_to_another_queue(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_relay_a_transfer_reinvites_the_caller() {
    transfer_to_another_queue(false).await;
}

/// The CRM is down: the desktop still gets the host's card at once, then the
/// screen-pop's card saying the CRM is unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_crm_down_the_card_says_so() {
    let crm = Crm::start().await;
    crm.force_status
        .store(503, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let api = Api::new(&s);
    let agent = api.login("1001", "desk-1001").await;
    let mut ws = events(&s, &agent).await;
    let phone = phone(&s, "1001", "agent_answer.xml");
    let caller = trunk_caller(&s);
    let first = next_of(&mut ws, "card", |_| true).await;
    assert_eq!(first["provisional"], true);
    let full = next_of(&mut ws, "card", |c| c["provisional"] == false).await;
    let notes = full["card"]["notes"].to_string();
    assert!(notes.contains("CRM unavailable"), "{full}");
    assert!(crm.hits() > 0, "the CRM was asked");
    assert!(finished(caller).await);
    assert!(finished(phone).await);
}

/// A desktop logout holds while the phone keeps refreshing its registration
/// (phones refresh every few minutes; each refresh used to log the agent in
/// again); a phone that signs off and registers anew logs its agent in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_refresh_does_not_undo_a_desktop_logout() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let api = Api::new(&s);
    let sup = api.login("9001", "desk-9001").await;
    let phone_1001 = free_port();
    sipp_as(&s, "register_ok.xml", "1001", phone_1001);
    until_state(&api, &sup, "1001", "ready").await;

    let desk_1001 = api.login("1001", "desk-1001").await;
    let (st, _) = api
        .call("POST", "/api/logout", Some(&desk_1001), None)
        .await;
    assert_eq!(st, 204);
    until_state(&api, &sup, "1001", "logged-out").await;

    // The phone refreshes; then another phone registers. Both reach the
    // center through the same ordered channel, so once 1002 is seen logged
    // in, a login caused by 1001's refresh would have been seen too.
    sipp_as(&s, "register_ok.xml", "1001", phone_1001);
    sipp_as(&s, "register_ok.xml", "1002", free_port());
    until_state(&api, &sup, "1002", "ready").await;
    assert_eq!(
        agent_state(&api, &sup, "1001").await,
        "logged-out",
        "the refresh logged 1001 in"
    );

    // Signing off and registering again is a phone coming online: log in.
    sipp_as(&s, "unregister_ok.xml", "1001", phone_1001);
    sipp_as(&s, "register_ok.xml", "1001", phone_1001);
    until_state(&api, &sup, "1001", "ready").await;
}

/// Restarting the host (an upgrade at night) keeps the desktops' sessions:
/// the same token works against the new process; a logged-out one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_sessions_outlive_a_restart() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let api = Api::new(&s);
    let agent = api.login("1001", "desk-1001").await;
    let sup = api.login("9001", "desk-9001").await;
    let (st, _) = api.call("POST", "/api/logout", Some(&sup), None).await;
    assert_eq!(st, 204);
    drop(s);

    let s = desk::center(dir.path(), crm.addr, "");
    let api = Api::new(&s);
    let (st, me) = api.call("GET", "/api/me", Some(&agent), None).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["id"], "1001");
    let (st, _) = api.call("GET", "/api/me", Some(&sup), None).await;
    assert_eq!(st, 401, "a logged-out session stays out");
}

/// A phone registered with the host before a restart gets calls after it
/// without registering again: the registration was kept, so its agent is
/// logged in as soon as the host is up - unless the agent had logged out
/// from the desktop before the restart (the phone still on): they stay out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_registered_before_a_restart_get_calls_after_it() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let api = Api::new(&s);
    let sup = api.login("9001", "desk-9001").await;
    sipp_as(&s, "register_ok.xml", "1002", free_port());
    let desk_1002 = api.login("1002", "desk-1002").await;
    let (st, _) = api
        .call("POST", "/api/logout", Some(&desk_1002), None)
        .await;
    assert_eq!(st, 204);
    let port = free_port();
    sipp_as(&s, "register_ok.xml", "1001", port);
    until_state(&api, &sup, "1002", "logged-out").await;
    until_state(&api, &sup, "1001", "ready").await;
    s.stop();

    let s = desk::center(dir.path(), crm.addr, "");
    let regs = s.admin_json("/admin/sip/registrations", "t0k");
    assert!(
        regs.get("1001").is_some() && regs.get("1002").is_some(),
        "{regs}"
    );
    let api = Api::new(&s);
    // The supervisor's session of before the restart still works.
    until_state(&api, &sup, "1001", "ready").await;
    let phone = sipp_cmd("agent_answer.xml", target(&s, &[]), port, &["-s", "1001"])
        .spawn()
        .unwrap();
    let caller = trunk_caller(&s);
    assert!(finished(caller).await, "the call was answered and ended");
    assert!(
        finished(phone).await,
        "by the phone registered before the restart"
    );
    // Checked after the call: any login the restart sent has been applied.
    assert_eq!(
        agent_state(&api, &sup, "1002").await,
        "logged-out",
        "an agent logged out before the restart stays out"
    );
}

/// An agent's state as a supervisor's API sees it.
async fn agent_state(api: &Api, supervisor: &str, agent: &str) -> String {
    let (_, agents) = api.call("GET", "/api/agents", Some(supervisor), None).await;
    agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == agent)
        .map(|a| a["state"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

/// Wait (10 s at most) until `agent` is in `want`.
async fn until_state(api: &Api, supervisor: &str, agent: &str, want: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let st = agent_state(api, supervisor, agent).await;
        if st == want {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "{agent} is {st}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Run `scenario` as `agent`'s phone from `port` with its digest credential
/// (register, re-register, sign off), to the end.
fn sipp_as(s: &support::server::Server, scenario: &str, agent: &str, port: u16) {
    let password = format!("pw-{agent}");
    let ok = sipp_cmd(
        scenario,
        target(s, &[]),
        port,
        &["-s", agent, "-au", agent, "-ap", &password],
    )
    .status()
    .unwrap()
    .success();
    assert!(ok, "{scenario} for {agent}");
}

/// A trunk caller dialing 95566 who talks 200 ms and hangs up.
fn trunk_caller(s: &support::server::Server) -> std::process::Child {
    spawn_caller(s, "caller_uac.xml", &["-s", "95566", "-d", "200"])
}

/// A flood of logins cannot take the host's memory: at most a few argon2
/// checks (19 MiB each) run at once, the rest wait for a slot or get 503
/// (64 at a time took the RSS from 70 MB to 3.95 GB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_does_not_exhaust_memory() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let pid = s.pid();
    let before = support::rss_kib(pid);
    let base = s.url.clone();
    let http = s.http();
    let mut peak = before;
    // Two waves of 64 at once: the second must not grow it further.
    let mut after_wave = Vec::new();
    for wave in 0..2 {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let base = base.clone();
                let http = http.clone();
                tokio::spawn(async move {
                    let r = http
                        .post(format!("{base}/api/login"))
                        .header("content-type", "application/json")
                        .body(
                            json!({"id": format!("nobody-{wave}-{i}"), "password": "x"})
                                .to_string(),
                        )
                        .send()
                        .await
                        .unwrap();
                    r.status().as_u16()
                })
            })
            .collect();
        let watch = async {
            loop {
                peak = peak.max(support::rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let answers = tokio::select! {
            a = futures_util::future::join_all(tasks) => a,
            _ = watch => unreachable!(),
        };
        let statuses: Vec<u16> = answers.into_iter().map(|a| a.unwrap()).collect();
        assert!(
            statuses.iter().all(|s| [401, 429, 503].contains(s)),
            "{statuses:?}"
        );
        after_wave.push(peak);
    }
    let second_wave_mib = after_wave[1].saturating_sub(after_wave[0]) / 1024;
    assert!(
        second_wave_mib < 32,
        "the second wave grew it by {second_wave_mib} MiB"
    );
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 400,
        "RSS grew by {grown_mib} MiB (peak {} MiB)",
        peak / 1024
    );
}

/// Every plugin that decided something for a call is in its record: the
/// router (route and ranking), the screen-pop (the card the agent saw) and
/// the recording policy (its decision at connect and the pause it granted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_record_names_every_plugin_version_that_decided_the_recording_policy_included() {
    let crm = Crm::start().await;
    crm.add(
        "+8613800000001",
        json!({"id": 7, "name": "Wang Fang", "segment": "retail", "accounts": []}),
    );
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let api = Api::new(&s);
    let (agent, phone) = desk::ready_agent(&api, &s, "1001", "agent_answer.xml").await;
    let mut ws = events(&s, &agent).await;
    let caller = spawn_caller(&s, "caller_wait_bye.xml", &["-s", "95566"]);
    let offered = next_of(&mut ws, "call-offered", |_| true).await;
    let call_id = offered["call_id"].as_str().unwrap().to_owned();
    // The plugin's card and the answer come in either order.
    let (mut card, mut connected) = (None, false);
    while card.is_none() || !connected {
        let e = next_of(&mut ws, "any", |_| true).await;
        match e["type"].as_str() {
            Some("card") if e["provisional"] == false => card = Some(e),
            Some("call-connected") => connected = true,
            _ => {}
        }
    }
    let card = card.unwrap();
    assert_eq!(card["plugin"], "crm-screen-pop", "{card}");
    let (st, v) = api
        .call(
            "POST",
            &format!("/api/calls/{call_id}/recording"),
            Some(&agent),
            Some(json!({"action": "pause"})),
        )
        .await;
    assert_eq!((st, &v["paused"]), (200, &json!(true)), "{v}");
    assert_eq!(api.hang_up(&agent, &call_id).await, 202);
    assert!(finished(caller).await && finished(phone).await);
    let record = desk::record_of(&s, &call_id).await;
    let plugins = s.admin_json("/admin/plugins", "t0k");
    let versions = record["plugin_versions"].as_object().unwrap();
    for name in ["skills-router", "crm-screen-pop", "pci-recording"] {
        let loaded = plugins
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["version"].as_str())
            .unwrap_or_else(|| panic!("{name} loaded: {plugins}"));
        let recorded = versions
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{name} in the record: {record}"));
        assert!(
            recorded.len() == 64 && recorded.starts_with(loaded),
            "{name}: recorded {recorded}, loaded {loaded}"
        );
    }
}
