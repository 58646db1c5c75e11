//! A newcomer's first hour, against the real binary started as the README
//! says (`ctihost run`, no config: the default center on its loopback
//! ports): the README's call recipe as written, the demo center's CRM card,
//! start-up refusing a plugin that is not there.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::desk::{Api, events, next_of};
use support::root;
use support::server::{self, Server};
use support::sipp::Killed;

/// The default center listens on fixed ports (5060, 8089, 8090): one at a time.
static DEFAULT_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn default_center(cwd: &Path) -> Server {
    server::start_default_center(cwd)
}

/// The shell commands of the README's "Place a call on the default center".
fn readme_recipe() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("### Place a call on the default center")
        .nth(1)
        .expect("the README has the call recipe");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Run one README command line: `sipp` from the checkout (its scenario
/// paths are relative to it), `target/release/ctihost` as the binary under
/// test, from the host's directory (where its admin token is).
fn readme_command(line: &str, host_cwd: &Path) -> Command {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (program, cwd): (PathBuf, &Path) = match words[0] {
        "sipp" => ("sipp".into(), &root()),
        "target/release/ctihost" => (env!("CARGO_BIN_EXE_ctihost").into(), host_cwd),
        other => panic!("unexpected command in the README recipe: {other}"),
    };
    let mut c = Command::new(program);
    c.args(&words[1..])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if words[0] == "sipp" {
        // Not a terminal here: SIPp's keyboard control off, and a deadline.
        c.args(["-nostdin", "-timeout", "60", "-timeout_error"]);
    }
    c
}

fn exit_within(child: &mut Child, secs: u64) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.success();
        }
        assert!(Instant::now() < until, "process did not finish in {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn token(cwd: &Path) -> String {
    std::fs::read_to_string(cwd.join("ctihost-data").join("admin.token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Records until `n` are there (20 s at most).
fn records(s: &Server, token: &str, n: usize) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let v = s.admin_json("/admin/cdr?limit=100", token);
        let v = v.as_array().cloned().unwrap_or_default();
        if v.len() >= n || Instant::now() > until {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_readme_call_recipe_reaches_the_agent_as_written() {
    let _ports = DEFAULT_PORTS.blocking_lock();
    let cwd = tempfile::tempdir().unwrap();
    let s = default_center(cwd.path());
    let token = token(cwd.path());
    encrypted_out_of_the_box(&s);
    let recipe = readme_recipe();
    let sipp: Vec<&String> = recipe.iter().filter(|l| l.starts_with("sipp ")).collect();
    assert!(sipp.len() >= 2, "an agent phone and a caller: {recipe:?}");
    assert!(
        sipp[0].contains("agent_phone.xml") && sipp[1].contains("caller_menu.xml"),
        "{recipe:?}"
    );

    let phone = Killed(readme_command(sipp[0], cwd.path()).spawn().unwrap());
    s.wait_registered(&token, &["1001"]);
    let mut callers = 0;
    for line in &sipp[1..] {
        let mut caller = readme_command(line, cwd.path()).spawn().unwrap();
        assert!(
            exit_within(&mut caller, 90),
            "the caller's scenario passed: {line}"
        );
        callers += 1;
    }
    let recs = records(&s, &token, callers);
    assert_eq!(recs.len(), callers, "{recs:?}");
    for r in &recs {
        assert_eq!(r["disposition"], "answered", "{r}");
        assert_eq!(r["agent"], "1001", "{r}");
        assert_eq!(r["queue"], "general", "{r}");
        assert!(r["talk_secs"].as_f64().unwrap() > 1.0, "{r}");
    }
    // The recipe's own way to see them.
    let cdr = recipe
        .iter()
        .find(|l| l.contains("cdr list"))
        .expect("the recipe shows the records");
    let o = readme_command(cdr, cwd.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("+8613800000001") && table.contains("answered"),
        "{table}"
    );
    drop(phone);
}

fn field<'a>(card: &'a Value, label: &str) -> Option<&'a str> {
    card["card"]["fields"]
        .as_array()?
        .iter()
        .find(|f| f["label"] == label)
        .and_then(|f| f["value"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_center_shows_a_crm_card_by_number_and_by_entered_account() {
    let _ports = DEFAULT_PORTS.lock().await;
    let cwd = tempfile::tempdir().unwrap();
    let s = default_center(cwd.path());
    let token = token(cwd.path());
    let api = Api::new(&s);
    let desk = api.login("1001", "demo-1001").await;
    let mut ws = events(&s, &desk).await;
    let scenario = |f: &str| {
        root()
            .join("examples/sipp")
            .join(f)
            .to_string_lossy()
            .into_owned()
    };
    let phone = support::sipp::agent_phone(
        "127.0.0.1:5060".parse().unwrap(),
        "1001",
        "demo-1001",
        60,
        5071,
    );
    tokio::task::block_in_place(|| s.wait_registered(&token, &["1001"]));
    let call = |file: &str, port: &str| {
        Command::new("sipp")
            .args([
                "-sf",
                &scenario(file),
                "-s",
                "95588",
                "-d",
                "4000",
                "-m",
                "1",
            ])
            .args(["-p", port, "-nostdin", "-timeout", "60", "-timeout_error"])
            .arg("127.0.0.1:5060")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    // A customer the demo CRM knows by the calling number.
    let mut caller = call("caller_menu.xml", "5072");
    let card = next_of(&mut ws, "card", |c| c["provisional"] == false).await;
    assert_eq!(card["card"]["title"], "Liu Yang", "{card}");
    assert_eq!(
        field(&card, "Identified"),
        Some("by calling number"),
        "{card}"
    );
    assert_eq!(field(&card, "Account"), Some("**** 3445"), "{card}");
    assert!(tokio::task::block_in_place(|| exit_within(&mut caller, 60)));

    // An unknown number: the caller enters the account number, and the card
    // says so; the digits themselves are nowhere but in the lookup.
    let mut caller = call("caller_account.xml", "5073");
    let card = next_of(&mut ws, "card", |c| {
        c["provisional"] == false && c["card"]["title"] != "Liu Yang"
    })
    .await;
    assert_eq!(card["card"]["title"], "Sun Li", "{card}");
    assert_eq!(
        field(&card, "Identified"),
        Some("by entered account"),
        "{card}"
    );
    assert!(!card.to_string().contains("6222881234"), "{card}");
    assert!(tokio::task::block_in_place(|| exit_within(&mut caller, 60)));

    let recs = tokio::task::block_in_place(|| records(&s, &token, 2));
    assert_eq!(recs.len(), 2);
    assert!(
        recs.iter().all(|r| r["disposition"] == "answered"),
        "{recs:?}"
    );
    assert!(!recs.iter().any(|r| r.to_string().contains("6222881234")));
    let log = s.log.lock().unwrap().join("\n");
    assert!(
        !log.contains("6222881234"),
        "the entered account never reaches the log"
    );
    // What the center keeps is its own user's only: directories 0700,
    // files 0600 (the store, the token, the recordings).
    let mut files = 0;
    let mut stack = vec![cwd.path().join("ctihost-data")];
    while let Some(p) = stack.pop() {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
        }
    }
    assert!(
        files > 5,
        "the store, the token and recordings were checked"
    );
    // Recorded, and sealed out of the box (the key generated beside the store).
    let sealed = walk_recordings(&cwd.path().join("ctihost-data").join("recordings"));
    assert!(
        sealed >= 2,
        "the calls were recorded ({sealed} sealed files)"
    );
    assert!(
        cwd.path()
            .join("ctihost-data")
            .join("recording-keys.toml")
            .exists()
    );
    assert!(log.contains("generated a recording master key"), "{log}");
    let crm_warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("CRM"))
        .collect();
    assert!(
        crm_warnings.is_empty(),
        "the demo CRM answers: {crm_warnings:?}"
    );
    drop(phone);
}

/// Sealed recordings (`*.wav.sealed`) under `dir`.
fn walk_recordings(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                walk_recordings(&p)
            } else {
                usize::from(p.to_string_lossy().ends_with(".wav.sealed"))
            }
        })
        .sum()
}

/// The default center serves HTTPS with a certificate it generated and
/// said so; clear HTTP gets no page; every answer carries HSTS.
fn encrypted_out_of_the_box(s: &Server) {
    use std::io::{Read, Write};
    assert_eq!(s.url, "https://127.0.0.1:8089");
    assert!(s.ca.ends_with("ctihost-data/admin-cert.pem"), "{}", s.ca);
    let log = s.log.lock().unwrap().join("\n");
    assert!(
        log.contains("generated a self-signed HTTPS certificate") && log.contains("sha256="),
        "{log}"
    );
    let head = String::from_utf8_lossy(&s.raw_get("/desktop", None)).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    let mut clear = std::net::TcpStream::connect("127.0.0.1:8089").unwrap();
    clear
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    clear
        .write_all(b"GET /desktop HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = clear.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/") && !String::from_utf8_lossy(&answer).contains("<html"),
        "clear HTTP got a page: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

fn run_expecting_failure(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctihost.toml");
    std::fs::write(&path, config).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ctihost"))
        .args(["run", "--config", path.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const QUIET: &str = "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\n[sip]\nudp = []\ntcp = []\n";

#[test]
fn start_up_refuses_a_router_that_is_not_loaded_and_a_missing_plugin_directory() {
    let (code, err) = run_expecting_failure(&format!("{QUIET}[plugins]\nrouter = \"my-router\"\n"));
    assert_eq!(code, Some(1), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.contains("[plugins] router = \"my-router\"")
            && last.contains("no plugin of that name is loaded")
            && last.contains("skills-router (router)")
            && last.contains("no plugin directory")
            && last.contains("allow_missing"),
        "{err}"
    );
    assert!(!err.contains("ctihost ready"), "{err}");

    // A plugin of the wrong kind is refused too.
    let (code, err) =
        run_expecting_failure(&format!("{QUIET}[plugins]\nrouter = \"crm-screen-pop\"\n"));
    assert_eq!(code, Some(1));
    assert!(err.contains("it is a screen-pop, not a router"), "{err}");

    // A configured directory that is not there would silently leave the
    // stock plugins serving in place of the bank's.
    let (code, err) = run_expecting_failure(&format!("{QUIET}[plugins]\ndir = \"no-such-dir\"\n"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no-such-dir") && err.contains("create_dir"),
        "{err}"
    );
}

#[test]
fn allow_missing_starts_and_says_so_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctihost.toml");
    std::fs::write(
        &path,
        format!("{QUIET}[plugins]\nrouter = \"my-router\"\nallow_missing = true\n"),
    )
    .unwrap();
    let s = server::start(&path);
    let metrics = s.admin_text("/metrics", "t");
    assert!(
        metrics
            .contains("ctihost_plugin_configured_missing{role=\"router\",plugin=\"my-router\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "ctihost_plugin_configured_missing{role=\"screen_pop\",plugin=\"crm-screen-pop\"} 0"
        ),
        "{metrics}"
    );
    let log = s.log.lock().unwrap().join("\n");
    assert!(log.contains("my-router") && log.contains("ERROR"), "{log}");
}

/// A bank's own certificate serves (the CLI trusting it with --ca-file and
/// refusing the host without it); a mismatched or half pair stops start-up
/// naming it; clear HTTP only on loopback, by config or `--insecure-http`.
#[test]
fn https_with_the_banks_certificate_and_clear_http_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::bank_certificate(dir.path(), "bank");
    let (_, _, other_key) = support::bank_certificate(dir.path(), "other");
    let path = dir.path().join("ctihost.toml");
    let admin_tls = |key: &Path| {
        QUIET.replace(
            "token = \"t\"\n",
            &format!(
                "token = \"t\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        )
    };
    std::fs::write(&path, admin_tls(&key)).unwrap();
    let s = server::start(&path);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    assert_eq!(s.ca, cert.display().to_string());
    let openssl_fp = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let openssl_fp = String::from_utf8_lossy(&openssl_fp.stdout).into_owned();
    let log = s.log.lock().unwrap().join("\n");
    let logged = log
        .lines()
        .find(|l| l.contains("HTTPS certificate"))
        .and_then(|l| l.split("sha256=").nth(1))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        openssl_fp.trim().ends_with(&logged),
        "{openssl_fp} vs {logged}"
    );
    assert!(!log.contains("generated a self-signed"), "{log}");
    let list = |extra: &[&str], cwd: &Path| {
        Command::new(env!("CARGO_BIN_EXE_ctihost"))
            .args(["plugin", "list", "--url", &s.url, "--token", "t"])
            .args(extra)
            .current_dir(cwd)
            .env_remove("CTIHOST_ADMIN_CA")
            .output()
            .unwrap()
    };
    let o = list(&["--ca-file", ca.to_str().unwrap()], dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("skills-router"));
    // Without it the certificate is nobody's the CLI knows: refused, and
    // told what to pass.
    let o = list(&[], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--ca-file") && err.contains("UnknownIssuer"),
        "{err}"
    );
    drop(s);

    // The key of another certificate: start-up stops naming both files.
    let (code, err) = run_expecting_failure(&admin_tls(&other_key));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bank.pem") && err.contains("other.key"),
        "{err}"
    );
    // Half a pair: the line is named.
    let (code, err) = run_expecting_failure(&QUIET.replace(
        "token = \"t\"\n",
        &format!("token = \"t\"\ntls_cert = \"{}\"\n", cert.display()),
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("line 5") && err.contains("tls_key"), "{err}");
    // Clear HTTP on an address others reach: refused, by config and by flag.
    let open = QUIET.replace("127.0.0.1:0", "0.0.0.0:0");
    let (code, err) = run_expecting_failure(
        &open.replace("token = \"t\"\n", "token = \"t\"\ninsecure_http = true\n"),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("insecure_http only on a loopback"), "{err}");
    std::fs::write(&path, &open).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ctihost"))
        .args(["run", "--insecure-http", "--config", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--insecure-http only on a loopback"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // On loopback the flag serves clear HTTP, without HSTS, and says so.
    std::fs::write(&path, QUIET).unwrap();
    let s = server::start_with_args(&path, &["--insecure-http"]);
    assert!(s.url.starts_with("http://127.0.0.1:"), "{}", s.url);
    let head = String::from_utf8_lossy(&s.raw_get("/desktop", None)).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("strict-transport-security"), "{head}");
    assert!(
        s.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("over clear HTTP")),
        "the log says so"
    );
}
