#![allow(clippy::unwrap_used)]

use super::*;

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = crate::rtp::Stream::new();
    for _ in 0..seq {
        s.packet(0, payload, &mut out);
    }
    out
}

#[test]
fn a_line_round_trips_and_never_shows_its_key_in_debug() {
    let k = SdesKey::generate(1, Suite::AesCm128HmacSha1_80).unwrap();
    let line = k.line();
    assert!(
        line.starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{line}"
    );
    let back = SdesKey::parse(line.strip_prefix("a=crypto:").unwrap()).unwrap();
    assert_eq!(back, k);
    let shown = format!("{k:?}");
    let key = line.rsplit(':').next().unwrap();
    assert!(
        !shown.contains(key) && shown.contains("redacted"),
        "{shown}"
    );
}

#[test]
fn lines_the_host_cannot_take_are_refused() {
    let good = "1 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20";
    assert_eq!(
        SdesKey::parse(good).unwrap().suite,
        Suite::AesCm128HmacSha1_32
    );
    for bad in [
        "1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
        "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",
        "1 AES_CM_128_HMAC_SHA1_80 inline:!!!",
        "x AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz UNENCRYPTED_SRTP",
        "1 AES_CM_128_HMAC_SHA1_80",
        "",
    ] {
        assert!(SdesKey::parse(bad).is_none(), "{bad}");
    }
}

/// Two legs as the relay holds them: what one side encrypts with its key,
/// the other decrypts with it; a flipped bit and a replay are refused.
#[test]
fn each_side_decrypts_what_the_other_encrypted_and_refuses_tampering() {
    let phone = SdesKey::generate(1, Suite::AesCm128HmacSha1_80).unwrap();
    let host = SdesKey::generate(1, Suite::AesCm128HmacSha1_80).unwrap();
    let mut at_host = LegCrypto::new(&phone, &host).unwrap();
    let mut at_phone = LegCrypto::new(&host, &phone).unwrap();
    let plain = rtp(1, &[0x55; 160]);
    let sent = at_phone.protect(&plain).unwrap();
    assert_eq!(sent.len(), plain.len() + 10, "an 80-bit tag");
    assert_ne!(&sent[12..172], &plain[12..172], "the payload is encrypted");
    assert_eq!(at_host.unprotect(&sent).unwrap(), plain);
    assert!(at_host.unprotect(&sent).is_err(), "a replay is refused");
    let answer = rtp(2, &[0x11; 160]);
    let back = at_host.protect(&answer).unwrap();
    assert_eq!(at_phone.unprotect(&back).unwrap(), answer);
    let mut tampered = at_phone.protect(&rtp(3, &[0x55; 160])).unwrap();
    tampered[40] ^= 1;
    assert!(at_host.unprotect(&tampered).is_err());
    for junk in [&[][..], &[0x80][..], &[0u8; 11][..], &[0x80; 15][..]] {
        assert!(at_host.unprotect(junk).is_err());
    }
}
