#![allow(clippy::unwrap_used)]

use super::*;

fn ring(current: &str, ids: &[&str]) -> (KeyRing, String) {
    let mut text = format!("current = \"{current}\"\n[keys]\n");
    for (i, id) in ids.iter().enumerate() {
        text.push_str(&format!(
            "\"{id}\" = \"{}\"\n",
            hex::encode([i as u8 + 1; 32])
        ));
    }
    (KeyRing::parse(&text).unwrap(), text)
}

/// Audio that is not all zeros: a ramp, so order and content both count.
fn audio(seconds: usize) -> Vec<u8> {
    (0..seconds * 32_000).map(|i| (i * 7 % 251) as u8).collect()
}

fn seal(path: &Path, keys: &KeyRing, audio: &[u8], finish: bool) {
    let mut w = SealedWriter::create(path, keys).unwrap();
    for second in audio.chunks(32_000) {
        w.write(second).unwrap();
        w.seal_chunk().unwrap();
    }
    if finish {
        w.finish().unwrap();
    } else {
        // The host dies: no last chunk.
        std::mem::forget(w);
    }
}

fn read(path: &Path, keys: &KeyRing) -> Result<(Vec<u8>, Opened), SealError> {
    let mut out = Vec::new();
    let o = open(path, keys, |c| {
        out.extend_from_slice(c);
        Ok(())
    })?;
    Ok((out, o))
}

#[test]
fn a_sealed_file_opens_to_the_same_audio_and_shows_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = ring("k1", &["k1"]);
    let path = dir.path().join("r.sealed");
    let pcm = audio(5);
    seal(&path, &keys, &pcm, true);
    let raw = std::fs::read(&path).unwrap();
    assert!(!raw.starts_with(b"RIFF"));
    assert!(is_sealed(&path));
    // The ramp's bytes do not appear in the file, and its bytes look random.
    assert!(!raw.windows(64).any(|w| w == &pcm[1000..1064]));
    let mut counts = [0u32; 256];
    for b in &raw {
        counts[*b as usize] += 1;
    }
    let n = raw.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum();
    assert!(entropy > 7.9, "entropy {entropy}");
    let (back, o) = read(&path, &keys).unwrap();
    assert_eq!(back, pcm);
    assert_eq!(
        o,
        Opened {
            audio_bytes: pcm.len() as u64,
            finished: true
        }
    );
    assert_eq!(key_id_of(&path).unwrap(), "k1");
}

#[test]
fn the_export_is_a_wav_of_the_audio_and_its_hash_is_the_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = ring("k1", &["k1"]);
    let path = dir.path().join("r.sealed");
    let pcm = audio(2);
    seal(&path, &keys, &pcm, true);
    let mut wav = Vec::new();
    export_wav(&path, &keys, &mut wav).unwrap();
    let r = hound::WavReader::new(std::io::Cursor::new(&wav)).unwrap();
    assert_eq!(r.spec().channels, 2);
    assert_eq!(r.spec().sample_rate, 8000);
    assert_eq!(r.duration() as usize, pcm.len() / 4);
    assert_eq!(&wav[44..], &pcm[..]);
    let (_, sha) = export_sha256(&path, &keys).unwrap();
    use sha2::Digest;
    assert_eq!(sha, hex::encode(sha2::Sha256::digest(&wav)));
}

#[test]
fn a_wrong_key_an_unknown_key_and_a_rotated_ring_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let (old, _) = ring("k1", &["k1"]);
    let path = dir.path().join("r.sealed");
    seal(&path, &old, &audio(1), true);
    // Same id, other bytes: the wrong key.
    let wrong = KeyRing::parse(&format!(
        "current = \"k1\"\n[keys]\nk1 = \"{}\"\n",
        "ab".repeat(32)
    ))
    .unwrap();
    let e = read(&path, &wrong).unwrap_err();
    assert!(matches!(e, SealError::WrongKey { .. }), "{e}");
    assert!(e.to_string().contains("wrong key"), "{e}");
    // A ring without the file's key names the key it needs.
    let (other, _) = ring("k9", &["k9"]);
    let e = read(&path, &other).unwrap_err();
    assert!(e.to_string().contains("\"k1\""), "{e}");
    // Rotated: the new key seals, the old one still opens older files.
    let (rotated, _) = ring("k2", &["k1", "k2"]);
    assert_eq!(read(&path, &rotated).unwrap().0, audio(1));
    let newer = dir.path().join("n.sealed");
    seal(&newer, &rotated, &audio(1), true);
    assert_eq!(key_id_of(&newer).unwrap(), "k2");
    assert!(read(&newer, &old).is_err());
}

#[test]
fn a_crash_keeps_every_complete_chunk_and_says_the_file_was_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = ring("k1", &["k1"]);
    let path = dir.path().join("r.sealed");
    let pcm = audio(3);
    seal(&path, &keys, &pcm, false);
    // Half of a fourth chunk reached the disk before the crash.
    let mut raw = std::fs::read(&path).unwrap();
    raw.extend_from_slice(&(32_016u32).to_le_bytes());
    raw.extend_from_slice(&[7u8; 9_000]);
    std::fs::write(&path, &raw).unwrap();
    let (back, o) = read(&path, &keys).unwrap();
    assert_eq!(back, pcm);
    assert!(!o.finished);
    // A finished file cut back by one whole chunk is told from a finished one.
    let done = dir.path().join("d.sealed");
    seal(&done, &keys, &pcm, true);
    let raw = std::fs::read(&done).unwrap();
    let last = 4 + TAG_LEN; // the empty last chunk
    std::fs::write(&done, &raw[..raw.len() - last]).unwrap();
    assert!(!read(&done, &keys).unwrap().1.finished);
}

#[test]
fn a_changed_moved_or_appended_chunk_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = ring("k1", &["k1"]);
    let path = dir.path().join("r.sealed");
    seal(&path, &keys, &audio(3), true);
    let raw = std::fs::read(&path).unwrap();
    let header = 8 + 1 + 2 + NONCE_LEN + KEY_LEN + TAG_LEN;
    // One bit of the second chunk flipped.
    let mut flipped = raw.clone();
    flipped[header + 4 + 32_016 + 4 + 100] ^= 1;
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(
        read(&path, &keys),
        Err(SealError::Damaged { chunk: 1, .. })
    ));
    // The first two chunks swapped.
    let c = 4 + 32_016;
    let mut swapped = raw[..header].to_vec();
    swapped.extend_from_slice(&raw[header + c..header + 2 * c]);
    swapped.extend_from_slice(&raw[header..header + c]);
    swapped.extend_from_slice(&raw[header + 2 * c..]);
    std::fs::write(&path, &swapped).unwrap();
    assert!(read(&path, &keys).is_err());
    // The last-chunk flag forged onto an inner chunk.
    let mut forged = raw.clone();
    forged[header + 3] |= 0x80;
    std::fs::write(&path, &forged).unwrap();
    assert!(read(&path, &keys).is_err());
    // Anything after the last chunk.
    let mut appended = raw.clone();
    appended.extend_from_slice(&raw[header..header + c]);
    std::fs::write(&path, &appended).unwrap();
    assert!(read(&path, &keys).is_err());
    // A chunk of another file (same key ring) does not open here.
    let other = dir.path().join("o.sealed");
    seal(&other, &keys, &audio(3), true);
    let o = std::fs::read(&other).unwrap();
    let mut mixed = raw[..header + c].to_vec();
    mixed.extend_from_slice(&o[header + c..]);
    std::fs::write(&path, &mixed).unwrap();
    assert!(read(&path, &keys).is_err());
    // Not a sealed file at all; a WAV is told apart.
    std::fs::write(&path, b"RIFF....WAVEfmt ").unwrap();
    assert!(matches!(
        read(&path, &keys),
        Err(SealError::NotSealed { .. })
    ));
    assert!(!is_sealed(&path));
}

#[test]
fn key_files_that_cannot_work_are_refused_naming_the_fault() {
    for (text, says) in [
        ("current = \"a\"\n[keys]\nb = \"00\"\n", "64 hex"),
        ("current = \"a\"\n[keys]\n", "not in [keys]"),
        ("current = \"a\"\n", "keys"),
        ("nonsense", "expected"),
    ] {
        let e = KeyRing::parse(text).unwrap_err().to_string();
        assert!(e.contains(says), "{text:?}: {e}");
    }
    let generated = KeyRing::parse(&KeyRing::generate("2026-12").unwrap()).unwrap();
    assert_eq!(generated.current_id(), "2026-12");
    // The key's bytes are never in its debug form.
    let (keys, text) = ring("k1", &["k1"]);
    let secret = text
        .lines()
        .last()
        .unwrap()
        .split('"')
        .nth(3)
        .unwrap()
        .to_owned();
    assert!(!format!("{keys:?}").contains(&secret));
}
