//! Recordings encrypted at rest ("sealed"), for PCI DSS requirement 3:
//! card-not-present calls are cardholder data.
//!
//! Each file has a data key of its own (random, 256 bits), wrapped with the
//! bank's master key (AES-256-GCM) and kept in the file's header; the
//! audio follows in chunks of about one second, each sealed with the data
//! key (AES-256-GCM, its number as nonce, the header's digest and a
//! last-chunk flag as associated data). So:
//!
//! * a crash loses only the chunk being written: every complete chunk
//!   before it opens (the file just lacks its last-chunk flag);
//! * a chunk cut off, reordered, changed or moved to another file does not
//!   open, and a file cut after a whole chunk is told from a finished one;
//! * rotating the master key needs no rewrite: new files name the new key
//!   id, old files keep naming theirs, and the key ring keeps both.
//!
//! The plaintext is the recording's PCM (stereo, 8 kHz, 16 bits); a WAV
//! header is put in front when it is exported, and the index's SHA-256 is
//! that exported WAV's, so an auditor can check an export against it.
//!
//! Layout: `CTIREC01`, key id length (1 byte), key id, wrap nonce (12),
//! wrapped data key (32 + 16 tag); then chunks of a length (4 bytes, little
//! endian, ciphertext with its tag; the top bit marks the last chunk) and
//! the ciphertext.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

use super::prompts::SAMPLE_RATE;

const MAGIC: &[u8; 8] = b"CTIREC01";
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Where the wrapped data key is bound to (with its key id).
const WRAP_CONTEXT: &[u8] = b"ctihost recording data key";
/// No chunk the recorder writes is larger (one second is 32,000 bytes).
pub const MAX_CHUNK: usize = 1 << 20;
/// The top bit of a chunk's length prefix: the file's last chunk.
const LAST_CHUNK: u32 = 1 << 31;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a sealed ctihost recording")]
    NotSealed { path: PathBuf },
    #[error("{path}: sealed with key {key_id:?}, which the key ring does not hold")]
    UnknownKey { path: PathBuf, key_id: String },
    #[error("{path}: key {key_id:?} does not open this file's data key (a wrong key)")]
    WrongKey { path: PathBuf, key_id: String },
    #[error("{path}: chunk {chunk} does not authenticate (changed or damaged)")]
    Damaged { path: PathBuf, chunk: u64 },
    #[error("recording keys: {0}")]
    Keys(String),
    #[error("cannot draw a data key from the system's randomness")]
    Random,
}

/// The master keys: the current one seals new files, every one listed
/// opens the files it sealed. Never printed.
#[derive(Clone)]
pub struct KeyRing {
    current: String,
    keys: BTreeMap<String, [u8; KEY_LEN]>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    current: String,
    keys: BTreeMap<String, String>,
}

impl KeyRing {
    /// From the key file's text (TOML: `current = "id"` and a `[keys]`
    /// table of id = 64 hex digits).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let f: KeyFile = toml::from_str(text).map_err(|e| SealError::Keys(e.to_string()))?;
        let mut keys = BTreeMap::new();
        for (id, hexkey) in f.keys {
            if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(SealError::Keys(format!(
                    "key id {id:?}: 1 to 64 printable characters"
                )));
            }
            let bytes = hex::decode(hexkey.trim()).ok();
            let Some(key) = bytes.and_then(|b| <[u8; KEY_LEN]>::try_from(b).ok()) else {
                return Err(SealError::Keys(format!(
                    "key {id:?}: expected 64 hex digits (256 bits)"
                )));
            };
            keys.insert(id, key);
        }
        if !keys.contains_key(&f.current) {
            return Err(SealError::Keys(format!(
                "current key {:?} is not in [keys]",
                f.current
            )));
        }
        Ok(Self {
            current: f.current,
            keys,
        })
    }

    /// A new key file's text with one fresh key.
    pub fn generate(key_id: &str) -> Result<String, SealError> {
        let key = random::<KEY_LEN>()?;
        Ok(format!(
            "# ctihost recording master keys. New recordings use `current`; keep every\n\
             # older key listed so the files it sealed still open. Keep a copy apart\n\
             # from the recordings (or serve the keys from the bank's KMS: key_command).\n\
             current = \"{key_id}\"\n\n[keys]\n\"{key_id}\" = \"{}\"\n",
            hex::encode(key)
        ))
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

fn random<const N: usize>() -> Result<[u8; N], SealError> {
    ctihost_ground::random::bytes::<N>().map_err(|_| SealError::Random)
}

fn aead(key: &[u8; KEY_LEN]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Keys("AES-256-GCM refused a 256-bit key".into()))
}

/// A chunk's nonce: its number. Unique because every file has a data key
/// of its own.
fn chunk_nonce(n: u64) -> Nonce {
    let mut b = [0u8; NONCE_LEN];
    b[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(b)
}

fn chunk_aad(header_digest: &[u8; 32], last: bool) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[..32].copy_from_slice(header_digest);
    a[32] = u8::from(last);
    a
}

/// Writes a sealed recording: `write` buffers audio, `seal_chunk` puts the
/// buffer on disk as one chunk, `finish` seals the last one.
pub struct SealedWriter {
    path: PathBuf,
    out: BufWriter<File>,
    key: LessSafeKey,
    header_digest: [u8; 32],
    key_id: String,
    /// The wrap's nonce and the wrapped data key, hex (for the index).
    wrapped_hex: String,
    chunks: u64,
    buf: Vec<u8>,
}

impl SealedWriter {
    pub fn create(path: &Path, keys: &KeyRing) -> Result<Self, SealError> {
        let io = |source| SealError::Io {
            path: path.to_owned(),
            source,
        };
        let master = keys
            .keys
            .get(&keys.current)
            .ok_or_else(|| SealError::Keys("no current key".into()))?;
        let data_key = random::<KEY_LEN>()?;
        let wrap_nonce = random::<NONCE_LEN>()?;
        let mut wrapped = data_key.to_vec();
        let mut aad = WRAP_CONTEXT.to_vec();
        aad.extend_from_slice(keys.current.as_bytes());
        aead(master)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(&aad),
                &mut wrapped,
            )
            .map_err(|_| SealError::Keys("cannot wrap a data key".into()))?;
        let mut header = MAGIC.to_vec();
        // ok: key ids are at most 64 bytes (KeyRing::parse).
        header.push(u8::try_from(keys.current.len()).unwrap_or(u8::MAX));
        header.extend_from_slice(keys.current.as_bytes());
        header.extend_from_slice(&wrap_nonce);
        header.extend_from_slice(&wrapped);
        let mut out = BufWriter::new(File::create(path).map_err(io)?);
        out.write_all(&header).map_err(io)?;
        out.flush().map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            out,
            key: aead(&data_key)?,
            header_digest: Sha256::digest(&header).into(),
            key_id: keys.current.clone(),
            wrapped_hex: format!("{}{}", hex::encode(wrap_nonce), hex::encode(&wrapped)),
            chunks: 0,
            buf: Vec::with_capacity(32_000),
        })
    }

    /// The master key this file's data key is wrapped with.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn wrapped_key(&self) -> &str {
        &self.wrapped_hex
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), SealError> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= MAX_CHUNK - TAG_LEN {
            self.seal_chunk()?;
        }
        Ok(())
    }

    /// Put what is buffered on disk as one chunk (nothing when empty).
    pub fn seal_chunk(&mut self) -> Result<(), SealError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.put_chunk(false)
    }

    fn put_chunk(&mut self, last: bool) -> Result<(), SealError> {
        let mut data = std::mem::take(&mut self.buf);
        self.key
            .seal_in_place_append_tag(
                chunk_nonce(self.chunks),
                Aad::from(chunk_aad(&self.header_digest, last)),
                &mut data,
            )
            .map_err(|_| SealError::Damaged {
                path: self.path.clone(),
                chunk: self.chunks,
            })?;
        self.chunks += 1;
        let io = |source| SealError::Io {
            path: self.path.clone(),
            source,
        };
        // A chunk is at most MAX_CHUNK bytes: its length leaves the top bit
        // for the last-chunk flag (which the associated data binds too).
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX) & !LAST_CHUNK;
        let prefix = if last { len | LAST_CHUNK } else { len };
        self.out.write_all(&prefix.to_le_bytes()).map_err(io)?;
        self.out.write_all(&data).map_err(io)?;
        self.out.flush().map_err(io)?;
        self.buf = data;
        self.buf.clear();
        Ok(())
    }

    /// Seal the rest as the last chunk and close the file.
    pub fn finish(mut self) -> Result<(), SealError> {
        self.put_chunk(true)?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|source| SealError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// What opening a sealed file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Bytes of audio (PCM) in the complete chunks.
    pub audio_bytes: u64,
    /// The last chunk was there: the recording was finished, not cut off.
    pub finished: bool,
}

/// Whether a file starts like a sealed recording.
pub fn is_sealed(path: &Path) -> bool {
    let mut head = [0u8; 8];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == MAGIC)
}

/// The key id a sealed file names (without opening it).
#[cfg(test)]
fn key_id_of(path: &Path) -> Result<String, SealError> {
    let mut r = BufReader::new(File::open(path).map_err(|source| SealError::Io {
        path: path.to_owned(),
        source,
    })?);
    Ok(read_header(path, &mut r)?.key_id)
}

struct Header {
    key_id: String,
    wrap_nonce: [u8; NONCE_LEN],
    wrapped: [u8; KEY_LEN + TAG_LEN],
    digest: [u8; 32],
}

fn read_header(path: &Path, r: &mut impl Read) -> Result<Header, SealError> {
    let not_sealed = || SealError::NotSealed {
        path: path.to_owned(),
    };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| not_sealed())?;
    if &magic != MAGIC {
        return Err(not_sealed());
    }
    let mut len = [0u8; 1];
    r.read_exact(&mut len).map_err(|_| not_sealed())?;
    let mut id = vec![0u8; usize::from(len[0])];
    r.read_exact(&mut id).map_err(|_| not_sealed())?;
    let mut wrap_nonce = [0u8; NONCE_LEN];
    r.read_exact(&mut wrap_nonce).map_err(|_| not_sealed())?;
    let mut wrapped = [0u8; KEY_LEN + TAG_LEN];
    r.read_exact(&mut wrapped).map_err(|_| not_sealed())?;
    let mut h = Sha256::new();
    h.update(magic);
    h.update(len);
    h.update(&id);
    h.update(wrap_nonce);
    h.update(wrapped);
    Ok(Header {
        key_id: String::from_utf8(id).map_err(|_| not_sealed())?,
        wrap_nonce,
        wrapped,
        digest: h.finalize().into(),
    })
}

/// The file's data key, unwrapped with the master key it names.
fn data_key(path: &Path, h: &Header, keys: &KeyRing) -> Result<LessSafeKey, SealError> {
    let Some(master) = keys.keys.get(&h.key_id) else {
        return Err(SealError::UnknownKey {
            path: path.to_owned(),
            key_id: h.key_id.clone(),
        });
    };
    let mut aad = WRAP_CONTEXT.to_vec();
    aad.extend_from_slice(h.key_id.as_bytes());
    let mut wrapped = h.wrapped;
    let key = aead(master)?
        .open_in_place(
            Nonce::assume_unique_for_key(h.wrap_nonce),
            Aad::from(&aad),
            &mut wrapped,
        )
        .map_err(|_| SealError::WrongKey {
            path: path.to_owned(),
            key_id: h.key_id.clone(),
        })?;
    let key: [u8; KEY_LEN] = key.try_into().map_err(|_| SealError::WrongKey {
        path: path.to_owned(),
        key_id: h.key_id.clone(),
    })?;
    aead(&key)
}

/// Read every complete chunk of a sealed file, handing each one's audio to
/// `each`. A chunk cut off at the end (a crash) ends the file; a chunk that
/// does not authenticate, or anything after the last chunk, is an error.
pub fn open(
    path: &Path,
    keys: &KeyRing,
    mut each: impl FnMut(&[u8]) -> Result<(), SealError>,
) -> Result<Opened, SealError> {
    let io = |source| SealError::Io {
        path: path.to_owned(),
        source,
    };
    let mut r = BufReader::new(File::open(path).map_err(io)?);
    let h = read_header(path, &mut r)?;
    let key = data_key(path, &h, keys)?;
    let mut opened = Opened {
        audio_bytes: 0,
        finished: false,
    };
    let mut n = 0u64;
    let mut buf = Vec::new();
    loop {
        let damaged = || SealError::Damaged {
            path: path.to_owned(),
            chunk: n,
        };
        let mut prefix = [0u8; 4];
        if !read_all(&mut r, &mut prefix).map_err(io)? {
            return Ok(opened);
        }
        if opened.finished {
            return Err(damaged());
        }
        let prefix = u32::from_le_bytes(prefix);
        let last = prefix & LAST_CHUNK != 0;
        let len = (prefix & !LAST_CHUNK) as usize;
        if !(TAG_LEN..=MAX_CHUNK).contains(&len) {
            return Err(damaged());
        }
        buf.resize(len, 0);
        if !read_all(&mut r, &mut buf).map_err(io)? {
            return Ok(opened); // cut off mid-chunk: the crash's last second
        }
        let plain = key
            .open_in_place(
                chunk_nonce(n),
                Aad::from(chunk_aad(&h.digest, last)),
                &mut buf,
            )
            .map_err(|_| damaged())?;
        opened.audio_bytes += plain.len() as u64;
        opened.finished = last;
        each(plain)?;
        n += 1;
    }
}

/// Fill `buf` from `r`: false if the file ended first (even part way).
fn read_all(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..])? {
            0 => return Ok(false),
            k => at += k,
        }
    }
    Ok(true)
}

/// A canonical 44-byte header of the recorder's WAV format for `data_len`
/// bytes of audio.
pub fn wav_header(data_len: u64) -> [u8; 44] {
    let data = u32::try_from(data_len).unwrap_or(u32::MAX);
    let mut h = [0u8; 44];
    h[..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data.saturating_add(36).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&2u16.to_le_bytes()); // stereo
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(SAMPLE_RATE * 4).to_le_bytes());
    h[32..34].copy_from_slice(&4u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// The recording as a WAV file (the recorder's format) written to `out`:
/// the audio of every complete chunk, after a header that says its length.
pub fn export_wav(path: &Path, keys: &KeyRing, out: &mut impl Write) -> Result<Opened, SealError> {
    let io = |source| SealError::Io {
        path: path.to_owned(),
        source,
    };
    // The length first (the header leads the WAV); a file still being
    // written may grow meanwhile, so the second pass stops there.
    let counted = open(path, keys, |_| Ok(()))?;
    out.write_all(&wav_header(counted.audio_bytes))
        .map_err(io)?;
    let mut left = counted.audio_bytes;
    open(path, keys, |chunk| {
        let take = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        left -= take as u64;
        out.write_all(&chunk[..take]).map_err(io)
    })?;
    Ok(counted)
}

/// SHA-256 (hex) of the WAV that [`export_wav`] writes, and what it found.
pub fn export_sha256(path: &Path, keys: &KeyRing) -> Result<(Opened, String), SealError> {
    struct Hashing(Sha256);
    impl Write for Hashing {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.update(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(Sha256::new());
    let opened = export_wav(path, keys, &mut h)?;
    Ok((opened, hex::encode(h.0.finalize())))
}

#[cfg(test)]
mod tests;
