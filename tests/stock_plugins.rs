//! The stock plugins' hooks on realistic inputs, through the real runtime,
//! with the CRM connector talking to a real HTTP server on loopback.
#![allow(clippy::unwrap_used)]

mod support;

use ctihost::plugins::bindings::*;
use ctihost::plugins::{HookCall, HookOutput, Trigger};
use serde_json::json;
use support::*;

/// The stock plugins against `crm`; the router without its account step
/// (tested on its own below), so unknown callers reach the menu at once.
async fn center(crm: &Crm) -> TestHost {
    let t = center_as_shipped(crm).await;
    let d = t.plugin_dir();
    std::fs::write(
        d.join("skills-router.toml"),
        without_table(stock_manifest("skills-router"), "[config.identify]"),
    )
    .unwrap();
    t.load(&d.join("skills-router.toml"), Trigger::Startup)
        .await
        .unwrap();
    t
}

async fn center_as_shipped(crm: &Crm) -> TestHost {
    let t = TestHost::new();
    let url = format!("http://{}", crm.addr);
    t.write_plugin(
        "crm-http",
        "crm-connector",
        &std::fs::read(wasm("crm_http")).unwrap(),
        &crm_manifest_extra(&url, &crm.addr.to_string()),
    );
    t.load(&t.plugin_dir().join("crm-http.toml"), Trigger::Startup)
        .await
        .unwrap();
    load_stock(&t, "skills-router", "skills_router.wasm").await;
    load_stock(&t, "crm-screen-pop", "crm_screen_pop.wasm").await;
    load_stock(&t, "pci-recording", "pci_recording.wasm").await;
    crm.add("+8613900000001", json!({"id": 77, "name": "Wang Fang", "segment": "VIP", "language": "zh", "accounts": ["6222 0212 3456 7890"], "last_contact": "2026-11-02", "notes": ["Prefers Mandarin", "Card blocked on 2026-11-01"]}));
    crm.add("+8613900000002", json!({"id": "C-2", "name": "Li Lei", "segment": "retail", "accounts": ["6222000011112222"], "branch": "Shanghai"}));
    t
}

// 2026-11-30 (Monday) 10:00 and 23:00 in Beijing (UTC+8).
const MONDAY_10H: u64 = 1_796_004_000_000;
const MONDAY_23H: u64 = 1_796_050_800_000;

/// The router's answer as the WIT contract has it.
async fn route(t: &TestHost, c: CallInfo) -> RouteDecision {
    let inv = t
        .host
        .invoke("skills-router", HookCall::Route { call: c })
        .await
        .unwrap();
    assert!(inv.failure.is_none(), "router failed: {:?}", inv.failure);
    let HookOutput::Route(d) = inv.output else {
        panic!("not a route decision: {:?}", inv.output)
    };
    d
}

fn answered(mut c: CallInfo, step: &str, digits: &str) -> CallInfo {
    c.ivr.push(IvrEntry {
        step: step.into(),
        digits: digits.into(),
        sensitive: false,
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_router_asks_unknown_callers_for_an_account_and_finds_them_by_it() {
    let crm = Crm::start().await;
    let t = center_as_shipped(&crm).await;
    crm.add_account(
        "6222881234",
        json!({"id": "C-3", "name": "Sun Li", "segment": "vip", "accounts": ["6222881234"]}),
    );
    let mut c = call("+8613700000009", "95588");
    c.arrived_at_ms = MONDAY_10H;
    // Not known by number: a sensitive step asks for the account.
    let step = match route(&t, c.clone()).await {
        RouteDecision::Ivr(s) => s,
        other => panic!("expected the account step, got {other:?}"),
    };
    assert_eq!(
        (step.name.as_str(), step.prompt.as_str()),
        ("identify", "enter-card")
    );
    assert!(
        step.sensitive,
        "account digits are never logged or recorded"
    );
    assert_eq!(step.terminator.as_deref(), Some("#"));
    assert!(step.max_digits >= 16 && step.inter_digit_timeout_ms > 0);
    let entered = |digits: &str| {
        let mut c = c.clone();
        c.ivr.push(IvrEntry {
            step: "identify".into(),
            digits: digits.into(),
            sensitive: true,
        });
        c
    };
    // The account of a VIP: found by it, so served as a VIP.
    match route(&t, entered("6222881234")).await {
        RouteDecision::Queue(q) => assert_eq!((q.queue.as_str(), q.priority), ("vip", 10)),
        other => panic!("{other:?}"),
    }
    // An account the CRM does not know, or no digits: the menu, asked once.
    for digits in ["1111", ""] {
        match route(&t, entered(digits)).await {
            RouteDecision::Ivr(s) => assert_eq!(s.name, "main-menu", "{digits:?}"),
            other => panic!("{digits:?}: {other:?}"),
        }
    }
    // A caller known by number is not asked.
    let mut known = call("+8613900000002", "95588");
    known.arrived_at_ms = MONDAY_10H;
    assert!(matches!(route(&t, known).await, RouteDecision::Ivr(s) if s.name == "main-menu"));
    // The card of the caller found by account says so, and shows no digits.
    let mut offered = entered("6222881234");
    offered.ivr.push(IvrEntry {
        step: "main-menu".into(),
        digits: "1".into(),
        sensitive: false,
    });
    let agent = AgentInfo {
        id: "1001".into(),
        name: "Zhang Wei".into(),
        skills: vec![],
    };
    let inv = t
        .host
        .invoke(
            "crm-screen-pop",
            HookCall::BuildCard {
                call: offered,
                agent,
            },
        )
        .await
        .unwrap();
    let HookOutput::BuildCard(card) = inv.output else {
        panic!()
    };
    assert_eq!(card.title, "VIP - Sun Li");
    let identified = card.fields.iter().find(|f| f.label == "Identified");
    assert_eq!(
        identified.map(|f| f.value.as_str()),
        Some("by entered account")
    );
    assert!(
        card.fields.iter().all(|f| !f.value.contains("6222881234")),
        "{card:?}"
    );
    let counters = t
        .host
        .list()
        .into_iter()
        .find(|p| p.name == "skills-router")
        .unwrap()
        .counters;
    assert_eq!(
        counters.get("identified_by_account"),
        Some(&1),
        "{counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_router_menu_vip_and_after_hours() {
    let crm = Crm::start().await;
    let t = center(&crm).await;

    let mut first = call("+8613700000009", "95588");
    first.arrived_at_ms = MONDAY_10H;
    // Unknown caller on the main number: the IVR menu.
    match route(&t, first.clone()).await {
        RouteDecision::Ivr(s) => {
            assert_eq!(
                (s.name.as_str(), s.prompt.as_str(), s.max_digits),
                ("main-menu", "main-menu", 1)
            );
            assert!(!s.sensitive);
        }
        other => panic!("expected the main menu, got {other:?}"),
    }
    // Digit 2 -> the general queue, asking for the loans skill.
    match route(&t, answered(first.clone(), "main-menu", "2")).await {
        RouteDecision::Queue(q) => {
            assert_eq!(q.queue, "general");
            assert_eq!(q.skills, vec!["loans".to_string()]);
        }
        other => panic!("expected the general queue, got {other:?}"),
    }
    // Digit 3 -> wealth skill with priority 2.
    match route(&t, answered(first.clone(), "main-menu", "3")).await {
        RouteDecision::Queue(q) => assert_eq!(
            (q.skills.clone(), q.priority),
            (vec!["wealth".to_string()], 2)
        ),
        other => panic!("{other:?}"),
    }
    // The English line has no menu: general queue, English skill.
    let mut en = call("+8613700000009", "95588-en");
    en.arrived_at_ms = MONDAY_10H;
    assert!(matches!(route(&t, en).await, RouteDecision::Queue(q) if q.skills == ["english"]));
    // An invalid digit repeats the menu once with the "invalid" prompt, then gives up to general.
    let once = answered(first.clone(), "main-menu", "9");
    match route(&t, once.clone()).await {
        RouteDecision::Ivr(s) => assert_eq!(s.prompt, "main-menu-invalid"),
        other => panic!("{other:?}"),
    }
    match route(&t, answered(once, "main-menu", "8")).await {
        RouteDecision::Queue(q) => assert_eq!(q.queue, "general"),
        other => panic!("{other:?}"),
    }
    // VIP from the CRM: straight to the VIP queue with priority and language skill.
    let mut vip = call("+8613900000001", "95588");
    vip.arrived_at_ms = MONDAY_10H;
    match route(&t, vip.clone()).await {
        RouteDecision::Queue(q) => {
            assert_eq!((q.queue.as_str(), q.priority), ("vip", 10));
            assert_eq!(q.skills, vec!["lang:zh".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    // After hours: a retail caller is refused with 480, a VIP is still served.
    let mut late = first.clone();
    late.arrived_at_ms = MONDAY_23H;
    match route(&t, late).await {
        RouteDecision::Reject(r) => assert_eq!(r.code, 480),
        other => panic!("{other:?}"),
    }
    vip.arrived_at_ms = MONDAY_23H;
    assert!(matches!(route(&t, vip).await, RouteDecision::Queue(q) if q.queue == "vip"));
    // A number the table does not know goes to the default queue.
    let mut other = call("+8613700000009", "4008200588");
    other.arrived_at_ms = MONDAY_10H;
    assert!(matches!(route(&t, other).await, RouteDecision::Queue(q) if q.queue == "general"));
    assert!(crm.hits() >= 5, "the router looked callers up in the CRM");

    // Ranking: the best level in the skill the caller chose (cards) first.
    let cands = vec![
        AgentCandidate {
            id: "a".into(),
            skills: vec![("cards".into(), 30)],
            idle_secs: 500,
            calls_today: 1,
        },
        AgentCandidate {
            id: "b".into(),
            skills: vec![("cards".into(), 90)],
            idle_secs: 10,
            calls_today: 9,
        },
        AgentCandidate {
            id: "c".into(),
            skills: vec![("cards".into(), 90)],
            idle_secs: 60,
            calls_today: 2,
        },
    ];
    let inv = t
        .host
        .invoke(
            "skills-router",
            HookCall::RankAgents {
                call: answered(first, "main-menu", "1"),
                queue: "general".into(),
                candidates: cands,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        inv.output,
        HookOutput::RankAgents(vec!["c".into(), "b".into(), "a".into()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_pop_card_from_crm_and_when_crm_is_down() {
    let crm = Crm::start().await;
    let t = center(&crm).await;
    let agent = AgentInfo {
        id: "1001".into(),
        name: "Zhang Wei".into(),
        skills: vec!["cards".into()],
    };
    let mut c = answered(call("+8613900000001", "95588"), "main-menu", "1");
    c.ivr.push(IvrEntry {
        step: "card-number".into(),
        digits: "6222021234567890".into(),
        sensitive: true,
    });
    let inv = t
        .host
        .invoke(
            "crm-screen-pop",
            HookCall::BuildCard {
                call: c.clone(),
                agent: agent.clone(),
            },
        )
        .await
        .unwrap();
    assert!(inv.failure.is_none(), "{:?}", inv.failure);
    let HookOutput::BuildCard(card) = inv.output else {
        panic!()
    };
    assert_eq!(card.title, "VIP - Wang Fang");
    let field = |l: &str| {
        card.fields
            .iter()
            .find(|f| f.label == l)
            .map(|f| f.value.clone())
    };
    assert_eq!(field("Account").as_deref(), Some("**** 7890"));
    assert_eq!(field("Segment").as_deref(), Some("VIP"));
    assert_eq!(field("Last contact").as_deref(), Some("2026-11-02"));
    assert_eq!(field("IVR main-menu").as_deref(), Some("1"));
    assert!(
        card.fields
            .iter()
            .all(|f| !f.value.contains("6222021234567890")),
        "sensitive digits never reach the card"
    );
    assert!(card.notes.contains(&"Prefers Mandarin".to_string()));
    assert_eq!(card.links[0].url, "https://crm.bank.example/customers/77");

    // CRM answering 503: the card still comes, with what is known.
    crm.force_status
        .store(503, std::sync::atomic::Ordering::SeqCst);
    let inv = t
        .host
        .invoke("crm-screen-pop", HookCall::BuildCard { call: c, agent })
        .await
        .unwrap();
    assert!(inv.failure.is_none());
    let HookOutput::BuildCard(card) = inv.output else {
        panic!()
    };
    assert_eq!(card.title, "Unknown caller +8613900000001");
    assert!(
        card.notes
            .iter()
            .any(|n| n.contains("CRM unavailable") && n.contains("503")),
        "{:?}",
        card.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_connector_against_real_http_server() {
    let crm = Crm::start().await;
    let t = center(&crm).await;
    let lookup = |phone: &str| HookCall::Lookup {
        key: LookupKey::Phone(phone.into()),
    };
    let inv = t
        .host
        .invoke("crm-http", lookup("+8613900000002"))
        .await
        .unwrap();
    let HookOutput::Lookup(Ok(Some(c))) = inv.output else {
        panic!("{:?}", inv.output)
    };
    assert_eq!(
        (c.id.as_str(), c.name.as_str(), c.segment.as_str()),
        ("C-2", "Li Lei", "retail")
    );
    assert!(c.attributes.contains(&("branch".into(), "Shanghai".into())));
    let inv = t.host.invoke("crm-http", lookup("+860000")).await.unwrap();
    assert_eq!(inv.output, HookOutput::Lookup(Ok(None)));
    crm.force_status
        .store(500, std::sync::atomic::Ordering::SeqCst);
    let inv = t
        .host
        .invoke("crm-http", lookup("+8613900000002"))
        .await
        .unwrap();
    assert!(
        matches!(inv.output, HookOutput::Lookup(Err(CrmError::Unavailable(ref m))) if m.contains("500")),
        "{:?}",
        inv.output
    );
    let hits_before = crm.hits();

    // A connector whose base URL points at a host it was not granted: refused
    // by the host, and the server there never sees a request.
    let other = Crm::start().await;
    let t2 = TestHost::new();
    t2.write_plugin(
        "crm-http",
        "crm-connector",
        &std::fs::read(wasm("crm_http")).unwrap(),
        &crm_manifest_extra(&format!("http://{}", other.addr), &crm.addr.to_string()),
    );
    t2.load(&t2.plugin_dir().join("crm-http.toml"), Trigger::Startup)
        .await
        .unwrap();
    let inv = t2
        .host
        .invoke("crm-http", lookup("+8613900000002"))
        .await
        .unwrap();
    match inv.output {
        HookOutput::Lookup(Err(CrmError::Denied(m))) => assert!(m.contains("http_hosts"), "{m}"),
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(other.hits(), 0);
    assert_eq!(crm.hits(), hits_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pci_recording_policy_pauses_for_card_numbers() {
    let crm = Crm::start().await;
    let t = center(&crm).await;
    let mut vip = call("+8613900000001", "95588");
    vip.customer = Some(Customer {
        id: "77".into(),
        name: "Wang Fang".into(),
        segment: "vip".into(),
        language: None,
        accounts: vec![],
        last_contact: None,
        notes: vec![],
        attributes: vec![],
    });
    let inv = t
        .host
        .invoke("pci-recording", HookCall::OnConnect { call: vip.clone() })
        .await
        .unwrap();
    let HookOutput::OnConnect(d) = inv.output else {
        panic!()
    };
    assert_eq!((d.mode, d.retention_days), (RecordMode::Both, 3650));
    let inv = t
        .host
        .invoke(
            "pci-recording",
            HookCall::OnConnect {
                call: call("+1", "95588"),
            },
        )
        .await
        .unwrap();
    assert!(matches!(inv.output, HookOutput::OnConnect(ref d) if d.retention_days == 2555));

    let step = IvrStep {
        name: "card-number".into(),
        prompt: "enter-card".into(),
        max_digits: 19,
        terminator: Some("#".into()),
        inter_digit_timeout_ms: 5000,
        sensitive: true,
    };
    let cases = [
        (
            CallEvent::IvrStepEntered(step.clone()),
            false,
            RecordingAction::Pause,
        ),
        (
            CallEvent::IvrStepLeft("card-number".into()),
            true,
            RecordingAction::Resume,
        ),
        (
            CallEvent::IvrStepEntered(IvrStep {
                sensitive: false,
                ..step
            }),
            false,
            RecordingAction::Keep,
        ),
        (CallEvent::Dtmf("*".into()), false, RecordingAction::Pause),
        (CallEvent::Dtmf("5".into()), true, RecordingAction::Keep),
        (CallEvent::Dtmf("#".into()), true, RecordingAction::Resume),
        (
            CallEvent::AgentRequest("pause".into()),
            false,
            RecordingAction::Pause,
        ),
        (
            CallEvent::Transfer("queue:cards".into()),
            false,
            RecordingAction::Keep,
        ),
    ];
    for (event, paused, expected) in cases {
        let inv = t
            .host
            .invoke(
                "pci-recording",
                HookCall::OnEvent {
                    call: vip.clone(),
                    event: event.clone(),
                    paused,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            inv.output,
            HookOutput::OnEvent(expected),
            "{event:?} paused={paused}"
        );
    }
}

/// A bank CA and a server certificate it signs for 127.0.0.1, made with
/// openssl; `(ca.pem, server chain, server key)`.
fn bank_pki(dir: &std::path::Path, name: &str) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let (ca, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} internal CA"),
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    let (key, csr, cert) = (
        format!("{name}-crm.key"),
        format!("{name}-crm.csr"),
        format!("{name}-crm.pem"),
    );
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=crm.bank.internal",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        &cert,
    ]);
    (
        std::fs::read_to_string(dir.join(&ca)).unwrap(),
        dir.join(cert),
        dir.join(key),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_pinned_to_the_banks_ca_reaches_its_https_crm_and_nothing_else_verifies() {
    let pki = tempfile::tempdir().unwrap();
    let (bank_ca, cert, key) = bank_pki(pki.path(), "bank");
    let (other_ca, _, _) = bank_pki(pki.path(), "other");
    let crm = Crm::start_tls(&cert, &key).await;
    crm.add(
        "+8613900000002",
        json!({"id": "C-2", "name": "Li Lei", "segment": "retail"}),
    );
    let url = format!("https://{}", crm.addr);
    let with_ca = |ca: Option<&str>| {
        let mut extra = crm_manifest_extra(&url, &crm.addr.to_string());
        if let Some(pem) = ca {
            extra = extra.replace(
                "[config]",
                &format!("http_ca_pem = '''\n{pem}'''\n[config]"),
            );
        }
        extra
    };
    let lookup_with = |ca: Option<String>| {
        let extra = with_ca(ca.as_deref());
        async move {
            let t = TestHost::new();
            t.write_plugin(
                "crm-http",
                "crm-connector",
                &std::fs::read(wasm("crm_http")).unwrap(),
                &extra,
            );
            t.load(&t.plugin_dir().join("crm-http.toml"), Trigger::Startup)
                .await
                .unwrap();
            t.host
                .invoke(
                    "crm-http",
                    HookCall::Lookup {
                        key: LookupKey::Phone("+8613900000002".into()),
                    },
                )
                .await
                .unwrap()
                .output
        }
    };
    // Pinned to the bank's CA: the CRM answers over HTTPS.
    match lookup_with(Some(bank_ca.clone())).await {
        HookOutput::Lookup(Ok(Some(c))) => assert_eq!(c.name, "Li Lei"),
        other => panic!("expected the customer, got {other:?}"),
    }
    let hits = crm.hits();
    assert_eq!(hits, 1);
    // Pinned to another CA, or trusting the public roots only: the bank's
    // certificate does not verify and no request reaches the CRM.
    for ca in [Some(other_ca), None] {
        match lookup_with(ca).await {
            HookOutput::Lookup(Err(_)) => {}
            other => panic!("expected a failed lookup, got {other:?}"),
        }
    }
    assert_eq!(crm.hits(), hits);
    // A pin that holds no certificate is refused at load, naming the key.
    let t = TestHost::new();
    t.write_plugin(
        "crm-http",
        "crm-connector",
        &std::fs::read(wasm("crm_http")).unwrap(),
        &with_ca(Some("not a certificate\n")),
    );
    let e = t
        .load(&t.plugin_dir().join("crm-http.toml"), Trigger::Startup)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("http_ca_pem"), "{e}");
}
