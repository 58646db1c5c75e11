#![allow(clippy::unwrap_used)]

use super::*;

fn listen() -> std::net::SocketAddr {
    "127.0.0.1:8089".parse().unwrap()
}

#[test]
fn generated_once_then_kept() {
    let dir = tempfile::tempdir().unwrap();
    let first = api_identity(None, None, dir.path(), listen()).unwrap();
    assert!(first.generated);
    let again = api_identity(None, None, dir.path(), listen()).unwrap();
    assert!(!again.generated, "the pair on disk is reused");
    assert_eq!(first.fingerprint, again.fingerprint);
    assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
    let key = std::fs::read_to_string(dir.path().join("admin-key.pem")).unwrap();
    assert!(key.contains("PRIVATE KEY"));
}

#[test]
fn half_pair_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let first = api_identity(None, None, dir.path(), listen()).unwrap();
    std::fs::remove_file(dir.path().join("admin-key.pem")).unwrap();
    let next = api_identity(None, None, dir.path(), listen()).unwrap();
    assert!(next.generated);
    assert_ne!(first.fingerprint, next.fingerprint);
}

#[test]
fn a_key_of_another_certificate_is_refused_naming_both() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    api_identity(None, None, a.path(), listen()).unwrap();
    api_identity(None, None, b.path(), listen()).unwrap();
    let cert = a.path().join("admin-cert.pem");
    let key = b.path().join("admin-key.pem");
    let e = api_identity(Some(&cert), Some(&key), a.path(), listen())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("admin-cert.pem") && e.contains("admin-key.pem"),
        "{e}"
    );
}

#[test]
fn garbage_is_no_certificate_and_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a pem file\n").unwrap();
    let (cert, key) = generated_paths(dir.path());
    api_identity(None, None, dir.path(), listen()).unwrap();
    let e = load(&junk, &key, false, &[]).err().unwrap().to_string();
    assert!(e.contains("no PEM certificate"), "{e}");
    let e = load(&cert, &junk, false, &[]).err().unwrap().to_string();
    assert!(e.contains("no PEM private key"), "{e}");
    let e = load(&dir.path().join("absent.pem"), &key, false, &[])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot read certificate"), "{e}");
}
