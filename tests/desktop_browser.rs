//! The agent desktop and the wallboard in a real browser: Debian's headless
//! Chromium driven over WebDriver (chromedriver), the real binary, a SIPp
//! caller and phone, a real HTTP CRM. Screenshots of both pages are kept in
//! `target/test-artifacts/`.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::server::{Server, free_port};
use support::sipp::{phone_with, spawn_caller};
use support::{Crm, desk};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port, once it accepts connections.
fn chromedriver() -> (Driver, u16) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian package chromium-driver; `make test-deps` installs it)");
    let until = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Driver(child), port)
}

/// The base64 SHA-256 of a certificate's public key (SPKI), as Chromium's
/// `--ignore-certificate-errors-spki-list` takes it (openssl computes it).
fn spki_sha256(cert: &str) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{cert}' -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64"
        ))
        .output()
        .expect("openssl (`make test-deps` installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

async fn browser(port: u16, profile: &std::path::Path, s: &Server) -> Client {
    // Headless, and quiet on a machine with no route out: no background
    // networking, no component updates, no sync. The host serves HTTPS
    // with its generated self-signed certificate: this browser trusts that
    // one key alone (its SPKI pinned), as a bank's desktops trust the
    // center's certificate; every other certificate error still stops it.
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
                format!("--ignore-certificate-errors-spki-list={}", spki_sha256(&s.ca)),
            ]
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    // WebDriver on loopback speaks plain HTTP: no TLS stack needed.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session")
}

/// Evaluate `script` (which returns a value) until `ok` accepts it.
async fn until(c: &Client, what: &str, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: last seen {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn log_in(c: &Client, s: &Server, page: &str, id: &str, password: &str) {
    c.goto(&format!("{}/{page}", s.url)).await.unwrap();
    c.wait()
        .for_element(Locator::Id("login-id"))
        .await
        .unwrap()
        .send_keys(id)
        .await
        .unwrap();
    c.find(Locator::Id("login-password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Id("login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        c,
        "event stream live",
        "return document.getElementById('link').dataset.link || ''",
        |v| v == "live",
    )
    .await;
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

fn save(name: &str, png: &[u8]) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is a PNG");
    let dir = support::root().join("target").join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

const CARD_AND_STATUS: &str = "return [document.getElementById('card-title').textContent, \
     document.getElementById('call-status').dataset.status || '', \
     document.getElementById('card').dataset.provisional]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_shows_the_card_before_the_answer_and_the_wallboard_follows_the_agent() {
    let crm = Crm::start().await;
    crm.add(
        "+8613800000001",
        json!({"id": 42, "name": "Liu Yang", "segment": "private",
               "accounts": ["6222020200112233445"], "notes": ["Asked about a mortgage"]}),
    );
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let (_driver, port) = chromedriver();
    let desktop = browser(port, &dir.path().join("profile-desktop"), &s).await;
    let wall = browser(port, &dir.path().join("profile-wallboard"), &s).await;

    log_in(&desktop, &s, "desktop", "1001", "desk-1001").await;
    // The page came over HTTPS and its event stream is WSS: the token
    // never crossed in clear.
    let over = desktop
        .execute("return [location.protocol, cti.ws.url]", vec![])
        .await
        .unwrap();
    assert_eq!(over[0], "https:", "{over}");
    assert!(over[1].as_str().unwrap().starts_with("wss://"), "{over}");
    // The agent's phone rings 4 s before it answers.
    let phone = phone_with(&s, "1001", "agent_answer_late.xml", &["-d", "4000"]);
    click(&desktop, "btn-ready").await;
    until(
        &desktop,
        "agent ready",
        "return document.getElementById('agent-state').dataset.state",
        |v| v == "ready",
    )
    .await;
    let caller = spawn_caller(&s, "caller_uac.xml", &["-s", "95566", "-d", "1000"]);

    // The CRM's customer name is on the page while the phone still rings.
    let seen = until(&desktop, "card with the CRM's name", CARD_AND_STATUS, |v| {
        v[0] == "Liu Yang"
    })
    .await;
    assert_eq!(
        seen[1], "ringing",
        "the card arrived before the answer: {seen}"
    );
    assert_eq!(
        seen[2], "false",
        "the plugin's card replaced the provisional one"
    );
    let page = desktop.source().await.unwrap();
    assert!(
        page.contains("Asked about a mortgage"),
        "CRM notes on the card"
    );
    assert!(
        !page.contains("6222020200112233445"),
        "no account number in clear"
    );
    save(
        "desktop-screen-pop.png",
        &desktop.screenshot().await.unwrap(),
    );
    until(&desktop, "call connected", CARD_AND_STATUS, |v| {
        v[1] == "connected"
    })
    .await;
    let (caller_ok, phone_ok) = tokio::task::spawn_blocking(move || {
        (
            support::sipp::finished(caller),
            support::sipp::finished(phone),
        )
    })
    .await
    .unwrap();
    assert!(caller_ok && phone_ok);
    until(
        &desktop,
        "call cleared",
        "return document.getElementById('call').classList.contains('hidden')",
        |v| v == true,
    )
    .await;

    // The supervisor's wallboard follows the agent's clicks.
    log_in(&wall, &s, "wallboard", "9001", "desk-9001").await;
    let agent_state = "const c = document.querySelector('#agents tr[data-agent=\"1001\"] [data-field=state]'); \
                       return c ? c.dataset.state : ''";
    click(&desktop, "btn-not-ready").await;
    until(&wall, "wallboard shows not-ready", agent_state, |v| {
        v == "not-ready"
    })
    .await;
    let answered = "const r = document.querySelector('#queues tr[data-queue=\"general\"]'); \
                    return r ? r.children[5].textContent : ''";
    until(&wall, "today's answered count", answered, |v| v == "1").await;
    // "Today" names the zone whose midnight starts it.
    until(
        &wall,
        "the wallboard names its time zone",
        "return document.getElementById('zone').textContent",
        |v| {
            v.as_str()
                .is_some_and(|z| z.starts_with(", ") && z.len() > 4)
        },
    )
    .await;
    save("wallboard.png", &wall.screenshot().await.unwrap());
    click(&desktop, "btn-ready").await;
    until(&wall, "wallboard shows ready", agent_state, |v| {
        v == "ready"
    })
    .await;
    save("desktop-ready.png", &desktop.screenshot().await.unwrap());

    desktop.close().await.unwrap();
    wall.close().await.unwrap();
}
