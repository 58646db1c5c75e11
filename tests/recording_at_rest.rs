//! Recordings encrypted at rest, through the real binary and real calls
//! (SIPp caller and agent phone): the file on disk is no WAV and looks
//! random; `ctihost recording export` returns exactly the audio the index
//! hashes, and the export is audited; the key file opens it offline and a
//! wrong key says so; a rotated key seals new calls while older recordings
//! still open; a host killed mid-call leaves a file whose complete seconds
//! open.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest;
use support::server::Server;
use support::sipp::{finished, phone_with, spawn_caller};
use support::{Crm, desk};

fn key_file(path: &Path, current: &str, keys: &[(&str, u8)]) {
    let mut text = format!("current = \"{current}\"\n[keys]\n");
    for (id, byte) in keys {
        text.push_str(&format!("\"{id}\" = \"{}\"\n", hex::encode([*byte; 32])));
    }
    std::fs::write(path, text).unwrap();
}

fn center(dir: &Path, crm: std::net::SocketAddr, keys: &Path) -> Server {
    desk::center_with(
        dir,
        crm,
        "",
        &format!("[recording]\nkey_file = \"{}\"\n", keys.display()),
    )
}

/// One answered call of about `talk_ms`; its call id.
async fn call(s: &Server, talk_ms: u32, calls_before: usize) -> String {
    let phone = phone_with(s, "1001", "agent_answer.xml", &[]);
    let talk = talk_ms.to_string();
    let caller = spawn_caller(s, "caller_uac.xml", &["-s", "95566", "-d", &talk]);
    let (caller_ok, phone_ok) =
        tokio::task::spawn_blocking(move || (finished(caller), finished(phone)))
            .await
            .unwrap();
    assert!(caller_ok && phone_ok, "the call went through");
    let records = s.records(calls_before + 1);
    let r = records
        .iter()
        .max_by_key(|r| r["ended_ms"].as_u64())
        .unwrap();
    assert_eq!(r["disposition"], "answered", "{r}");
    r["call_id"].as_str().unwrap().to_owned()
}

/// The recording's index entry once it is closed.
fn closed(s: &Server, call_id: &str) -> Value {
    s.recording_closed(call_id, "t0k")
}

fn file_of(dir: &Path, entry: &Value) -> PathBuf {
    let f = PathBuf::from(entry["file"].as_str().unwrap());
    if f.is_absolute() { f } else { dir.join(f) }
}

fn ctihost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctihost"))
        .args(args)
        .output()
        .unwrap()
}

/// `ctihost recording decrypt FILE --key-file KEYS --out OUT`.
fn decrypt(file: &Path, keys: &Path, out: &Path) -> Output {
    ctihost(&[
        "recording",
        "decrypt",
        file.to_str().unwrap(),
        "--key-file",
        keys.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// Shannon entropy of the bytes, bits per byte.
fn entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for b in bytes {
        counts[*b as usize] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_recording_exports_exactly_is_audited_and_outlives_a_key_rotation() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    key_file(&keys, "k-old", &[("k-old", 1)]);
    let s = center(dir.path(), crm.addr, &keys);
    let first = call(&s, 2500, 0).await;
    let entry = closed(&s, &first);
    assert_eq!(entry["sealed"]["key_id"], "k-old", "{entry}");
    assert!(entry["duration_ms"].as_u64().unwrap() >= 2000, "{entry}");

    // On disk: no WAV header, no structure.
    let file = file_of(dir.path(), &entry);
    let raw = std::fs::read(&file).unwrap();
    assert!(!raw.starts_with(b"RIFF") && raw.starts_with(b"CTIREC01"));
    assert!(entropy(&raw) > 7.9, "entropy {}", entropy(&raw));

    // Exported through the running host: the audio the index hashes.
    let out = dir.path().join("first.wav");
    let o = ctihost(&[
        "recording",
        "export",
        &first,
        "--out",
        out.to_str().unwrap(),
        "--ca-file",
        &s.ca,
        "--url",
        &s.url,
        "--token",
        "t0k",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wav = std::fs::read(&out).unwrap();
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&wav)),
        entry["sha256"].as_str().unwrap()
    );
    let reader = hound::WavReader::new(std::io::Cursor::new(&wav)).unwrap();
    assert_eq!(reader.spec().channels, 2);
    let ms = u64::from(reader.duration()) * 1000 / 8000;
    assert_eq!(ms, entry["duration_ms"].as_u64().unwrap());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The export is in the audit log, as a supervisor sees it.
    let api = desk::Api::new(&s);
    let sup = api.login("9001", "desk-9001").await;
    let (_, audit) = api.call("GET", "/api/audit", Some(&sup), None).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "recording-audio"
                && a["call_id"] == first.as_str()
                && a["outcome"].as_str().unwrap().contains("decrypted")),
        "{audit}"
    );

    // A supervisor may hear it (audited under their name); an agent may not.
    let http = s.http();
    let fetch = |token: String| {
        let req = http
            .get(format!("{}/api/recordings/{first}/audio", s.url))
            .bearer_auth(token);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }
    };
    let (status, heard) = fetch(sup.clone()).await;
    assert_eq!((status, heard == wav), (200, true));
    let agent = api.login("1001", "desk-1001").await;
    assert_eq!(fetch(agent).await.0, 403);
    let (_, audit) = api.call("GET", "/api/audit", Some(&sup), None).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "recording-audio"
                && a["who"] == "supervisor:9001"
                && a["call_id"] == first.as_str()),
        "{audit}"
    );

    // Offline with the key file: the same bytes; a wrong key says so.
    let offline = dir.path().join("offline.wav");
    let o = decrypt(&file, &keys, &offline);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&offline).unwrap(), wav);
    let wrong = dir.path().join("wrong.toml");
    key_file(&wrong, "k-old", &[("k-old", 2)]);
    let o = decrypt(&file, &wrong, &dir.path().join("no.wav"));
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wrong key"), "{err}");
    assert!(!dir.path().join("no.wav").exists());

    // Rotation: a new current key; the old one stays listed. This time the
    // keys come from a command (as a bank's KMS client would serve them).
    drop(s);
    key_file(&keys, "k-new", &[("k-old", 1), ("k-new", 3)]);
    let s = desk::center_with(
        dir.path(),
        crm.addr,
        "",
        &format!("[recording]\nkey_command = \"cat '{}'\"\n", keys.display()),
    );
    let second = call(&s, 1500, 1).await;
    let entry2 = closed(&s, &second);
    assert_eq!(entry2["sealed"]["key_id"], "k-new", "{entry2}");
    assert_eq!(
        s.admin_bytes(&format!("/admin/recordings/{first}/audio"), "t0k"),
        wav,
        "the older recording still opens"
    );
    // A key file without the old key cannot open it, and says which it needs.
    let only_new = dir.path().join("only-new.toml");
    key_file(&only_new, "k-new", &[("k-new", 3)]);
    let o = decrypt(&file, &only_new, &dir.path().join("no.wav"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("\"k-old\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_call_leaves_a_sealed_file_whose_complete_seconds_open() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    key_file(&keys, "k1", &[("k1", 7)]);
    let s = center(dir.path(), crm.addr, &keys);
    let phone = phone_with(&s, "1001", "agent_answer.xml", &[]);
    let caller = spawn_caller(&s, "caller_uac.xml", &["-s", "95566", "-d", "20000"]);
    // Wait until the call has been recording for over three seconds.
    let until = Instant::now() + Duration::from_secs(30);
    let live = loop {
        let recs = s.admin_json("/admin/recordings", "t0k");
        let started = recs.as_array().and_then(|a| a.first().cloned());
        if let Some(e) = started
            && e["state"] == "recording"
            && std::fs::metadata(file_of(dir.path(), &e)).is_ok_and(|m| m.len() > 3 * 32_000)
        {
            break e;
        }
        assert!(Instant::now() < until, "no recording grew: {recs}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // kill -9: the host cannot seal a last chunk.
    let pid = s.pid();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    drop(s);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = finished(caller);
        let _ = finished(phone);
    })
    .await;
    let file = file_of(dir.path(), &live);
    let o = decrypt(&file, &keys, &dir.path().join("cut.wav"));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(said.contains("cut off"), "{said}");
    let cut = hound::WavReader::open(dir.path().join("cut.wav")).unwrap();
    assert!(cut.duration() >= 3 * 8000, "three seconds at least");

    // The next start indexes it as interrupted, with its length and hash.
    let s = center(dir.path(), crm.addr, &keys);
    let call_id = live["call_id"].as_str().unwrap();
    let e = s.admin_json(&format!("/admin/recordings/{call_id}"), "t0k");
    assert_eq!(e["state"], "interrupted", "{e}");
    assert_eq!(
        e["duration_ms"].as_u64().unwrap(),
        u64::from(cut.duration()) * 1000 / 8000,
        "{e}"
    );
    let served = s.admin_bytes(&format!("/admin/recordings/{call_id}/audio"), "t0k");
    assert_eq!(served, std::fs::read(dir.path().join("cut.wav")).unwrap());
}

/// Start-up with `recording` as the config's `[recording]` table; the exit
/// code and standard error when it stops.
fn start_failing(recording: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctihost.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\n\
             [sip]\nudp = [\"127.0.0.1:0\"]\n[recording]\n{recording}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ctihost"))
        .args(["run", "--config", path.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn keys_that_cannot_seal_stop_start_up_naming_where_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.toml");
    std::fs::write(&short, "current = \"a\"\n[keys]\na = \"00ff\"\n").unwrap();
    for (table, says) in [
        (
            format!("key_file = \"{}\"", short.display()),
            "64 hex digits".to_owned(),
        ),
        (
            format!("key_file = \"{}\"", dir.path().join("none.toml").display()),
            "none.toml".to_owned(),
        ),
        (
            "key_command = \"exit 3\"".to_owned(),
            "key_command".to_owned(),
        ),
        (
            "key_command = \"echo 'current = 1'\"".to_owned(),
            "key_command".to_owned(),
        ),
    ] {
        let (code, err) = start_failing(&table);
        assert_ne!(code, Some(0), "{table}: {err}");
        assert!(
            err.contains("[recording] keys") && err.contains(&says),
            "{table}: {err}"
        );
        assert!(
            !err.contains("00ff"),
            "no key material in the message: {err}"
        );
    }
}
