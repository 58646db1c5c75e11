//! The call recorder: stereo 8 kHz 16-bit WAV, caller on the left, what the
//! caller hears (agent, prompts, music) on the right. The relay feeds it the
//! decoded audio of each side and ticks it every 20 ms; each tick writes one
//! 20 ms frame per channel, so the file's length is the call's wall-clock
//! length whatever the network did. A paused span is written as silence and
//! noted. The WAV header is rewritten every second, so a crash loses at most
//! the last second. With the bank's keys the same audio is written sealed
//! instead ([`super::sealed`]: AES-256-GCM, one chunk a second).

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::prompts::SAMPLE_RATE;
use super::sealed::{KeyRing, SealError, SealedWriter};
pub use ctihost_acd::{Legs, RecordingPlan};

/// Samples per 20 ms frame.
pub const FRAME: usize = 160;
/// Samples kept per channel before the oldest are dropped (jitter allowance).
const MAX_BUFFERED: usize = 4 * FRAME;
const TICKS_PER_FLUSH: u32 = 50;

/// Why a span is silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SilenceReason {
    /// The policy (or an agent through it) paused the recording.
    Paused,
    /// A sensitive IVR step: the caller's audio is never recorded.
    SensitiveStep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilentSpan {
    /// Milliseconds from the start of the recording.
    pub start_ms: u64,
    pub end_ms: u64,
    pub reason: SilenceReason,
}

/// The index entry of one recording (kept in sled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingEntry {
    pub call_id: String,
    pub file: PathBuf,
    pub started_ms: u64,
    pub duration_ms: u64,
    pub legs: Legs,
    pub silent_spans: Vec<SilentSpan>,
    pub policy: String,
    pub policy_version: String,
    pub reason: String,
    pub retention_days: u32,
    /// When the purge deletes it (None: kept until deleted by hand).
    pub expires_ms: Option<u64>,
    /// SHA-256 of the finished file, hex; of a sealed one, of the WAV its
    /// export gives (what an auditor checks an export against).
    pub sha256: String,
    /// When the retention purge deleted the file.
    pub purged_ms: Option<u64>,
    /// Whether the file is whole (older entries, written finished, are).
    #[serde(default)]
    pub state: RecordingState,
    /// Sealed (encrypted at rest): the master key's id and the file's
    /// wrapped data key. None: a plain WAV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealInfo>,
}

/// How a sealed recording's data key is kept (its copy in the file's header
/// is what opens it; the index names it for audits and key rotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealInfo {
    pub key_id: String,
    /// The wrap's nonce and the wrapped data key, hex.
    pub wrapped_key: String,
}

/// Where a recording stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingState {
    /// Being written: indexed when it starts, so a crash cannot orphan it.
    Recording,
    /// Finished and closed; the hash covers the whole file.
    #[default]
    Complete,
    /// The host stopped mid-call: at the next start the WAV header was
    /// repaired to the audio that reached the disk, then hashed.
    Interrupted,
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("recording {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recording {path}: {source}")]
    Wav { path: PathBuf, source: hound::Error },
    #[error("recording: {0}")]
    Sealed(#[from] SealError),
    #[error("recording {path}: sealed, and no recording keys were given to open it")]
    NoKeys { path: PathBuf },
}

/// Where the audio goes: a WAV, or a sealed file.
enum Sink {
    Wav(hound::WavWriter<BufWriter<File>>),
    Sealed(Box<SealedWriter>),
}

pub struct Recorder {
    call_id: String,
    path: PathBuf,
    sink: Sink,
    /// Keys that opened the sealed file (for its hash at the end).
    keys: Option<std::sync::Arc<KeyRing>>,
    plan: RecordingPlan,
    started_ms: u64,
    caller: VecDeque<i16>,
    heard: VecDeque<i16>,
    /// Sample frames written so far.
    frames: u64,
    ticks: u32,
    paused_since: Option<u64>,
    sensitive_since: Option<u64>,
    spans: Vec<SilentSpan>,
}

/// A file name from a call id (Call-IDs hold '@', '/' and worse).
fn file_name(call_id: &str, started_ms: u64) -> String {
    let safe: String = call_id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{started_ms}-{safe}.wav")
}

impl Recorder {
    /// Start a recording under `dir/YYYY-MM-DD/`: a WAV, or with `keys`
    /// a sealed file (`.wav.sealed`).
    pub fn create(
        dir: &Path,
        call_id: &str,
        started_ms: u64,
        plan: RecordingPlan,
        keys: Option<std::sync::Arc<KeyRing>>,
    ) -> Result<Self, RecorderError> {
        let stamp = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(started_ms),
        )
        .to_string();
        let folder = dir.join(stamp.get(..10).unwrap_or("undated"));
        std::fs::create_dir_all(&folder).map_err(|source| RecorderError::Io {
            path: folder.clone(),
            source,
        })?;
        let name = file_name(call_id, started_ms);
        if let Some(keys) = keys {
            let path = folder.join(format!("{name}.sealed"));
            let sink = Sink::Sealed(Box::new(SealedWriter::create(&path, &keys)?));
            return Ok(Self::with_sink(
                call_id,
                path,
                sink,
                Some(keys),
                plan,
                started_ms,
            ));
        }
        let path = folder.join(name);
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer =
            hound::WavWriter::create(&path, spec).map_err(|source| RecorderError::Wav {
                path: path.clone(),
                source,
            })?;
        // The header on disk from the start: a crash leaves a WAV file.
        writer.flush().map_err(|source| RecorderError::Wav {
            path: path.clone(),
            source,
        })?;
        Ok(Self::with_sink(
            call_id,
            path,
            Sink::Wav(writer),
            None,
            plan,
            started_ms,
        ))
    }

    fn with_sink(
        call_id: &str,
        path: PathBuf,
        sink: Sink,
        keys: Option<std::sync::Arc<KeyRing>>,
        plan: RecordingPlan,
        started_ms: u64,
    ) -> Self {
        Self {
            call_id: call_id.to_owned(),
            path,
            sink,
            keys,
            plan,
            started_ms,
            caller: VecDeque::new(),
            heard: VecDeque::new(),
            frames: 0,
            ticks: 0,
            paused_since: None,
            sensitive_since: None,
            spans: Vec::new(),
        }
    }

    fn seal_info(&self) -> Option<SealInfo> {
        match &self.sink {
            Sink::Sealed(w) => Some(SealInfo {
                key_id: w.key_id().to_owned(),
                wrapped_key: w.wrapped_key().to_owned(),
            }),
            Sink::Wav(_) => None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn now_ms(&self) -> u64 {
        self.frames * 1000 / SAMPLE_RATE as u64
    }

    /// Audio the caller sent.
    pub fn caller_audio(&mut self, samples: impl Iterator<Item = i16>) {
        push(&mut self.caller, samples);
    }

    /// Audio the caller heard (the agent, or the host's prompts).
    pub fn heard_audio(&mut self, samples: impl Iterator<Item = i16>) {
        push(&mut self.heard, samples);
    }

    pub fn paused(&self) -> bool {
        self.paused_since.is_some()
    }

    pub fn set_paused(&mut self, paused: bool) {
        let now = self.now_ms();
        toggle(
            &mut self.paused_since,
            paused,
            now,
            SilenceReason::Paused,
            &mut self.spans,
        );
    }

    /// A sensitive IVR step began or ended: the caller's channel is silent meanwhile.
    pub fn set_sensitive(&mut self, sensitive: bool) {
        let now = self.now_ms();
        toggle(
            &mut self.sensitive_since,
            sensitive,
            now,
            SilenceReason::SensitiveStep,
            &mut self.spans,
        );
    }

    /// Write the next 20 ms.
    pub fn tick(&mut self) -> Result<(), RecorderError> {
        let paused = self.paused_since.is_some();
        let caller_silent =
            paused || self.sensitive_since.is_some() || self.plan.legs == Legs::Agent;
        let heard_silent = paused || self.plan.legs == Legs::Caller;
        let mut frame = [0i16; 2 * FRAME];
        for pair in frame.chunks_exact_mut(2) {
            let l = self.caller.pop_front().unwrap_or(0);
            let r = self.heard.pop_front().unwrap_or(0);
            pair[0] = if caller_silent { 0 } else { l };
            pair[1] = if heard_silent { 0 } else { r };
        }
        let wav = |source| RecorderError::Wav {
            path: self.path.clone(),
            source,
        };
        let flush = (self.ticks + 1).is_multiple_of(TICKS_PER_FLUSH);
        match &mut self.sink {
            Sink::Wav(w) => {
                for s in frame {
                    w.write_sample(s).map_err(wav)?;
                }
                if flush {
                    w.flush().map_err(wav)?;
                }
            }
            Sink::Sealed(w) => {
                let mut bytes = [0u8; 4 * FRAME];
                for (b, s) in bytes.chunks_exact_mut(2).zip(frame) {
                    b.copy_from_slice(&s.to_le_bytes());
                }
                w.write(&bytes)?;
                if flush {
                    w.seal_chunk()?;
                }
            }
        }
        self.frames += FRAME as u64;
        self.ticks += 1;
        Ok(())
    }

    /// Close the file and build its index entry (hashing the file: call it
    /// off the async threads for long recordings).
    pub fn finish(mut self) -> Result<RecordingEntry, RecorderError> {
        let end = self.now_ms();
        toggle(
            &mut self.paused_since,
            false,
            end,
            SilenceReason::Paused,
            &mut self.spans,
        );
        toggle(
            &mut self.sensitive_since,
            false,
            end,
            SilenceReason::SensitiveStep,
            &mut self.spans,
        );
        self.spans.sort_by_key(|s| s.start_ms);
        let path = self.path.clone();
        let sealed = self.seal_info();
        let sha256 = match self.sink {
            Sink::Wav(w) => {
                w.finalize().map_err(|source| RecorderError::Wav {
                    path: path.clone(),
                    source,
                })?;
                hash_file(&path)?
            }
            Sink::Sealed(w) => {
                w.finish()?;
                let keys = self
                    .keys
                    .as_deref()
                    .ok_or_else(|| RecorderError::NoKeys { path: path.clone() })?;
                super::sealed::export_sha256(&path, keys)?.1
            }
        };
        let retention = self.plan.retention_days;
        Ok(RecordingEntry {
            call_id: self.call_id,
            file: path,
            started_ms: self.started_ms,
            duration_ms: end,
            legs: self.plan.legs,
            silent_spans: self.spans,
            policy: self.plan.policy,
            policy_version: self.plan.policy_version,
            reason: self.plan.reason,
            retention_days: retention,
            expires_ms: (retention > 0).then(|| self.started_ms + retention as u64 * 86_400_000),
            sha256,
            purged_ms: None,
            state: RecordingState::Complete,
            sealed,
        })
    }

    /// The index entry of the recording as it starts (no audio, no hash
    /// yet): written at once, so that a crash leaves the file indexed.
    pub fn started_entry(&self) -> RecordingEntry {
        let retention = self.plan.retention_days;
        RecordingEntry {
            call_id: self.call_id.clone(),
            file: self.path.clone(),
            started_ms: self.started_ms,
            duration_ms: 0,
            legs: self.plan.legs,
            silent_spans: Vec::new(),
            policy: self.plan.policy.clone(),
            policy_version: self.plan.policy_version.clone(),
            reason: self.plan.reason.clone(),
            retention_days: retention,
            expires_ms: (retention > 0).then(|| self.started_ms + retention as u64 * 86_400_000),
            sha256: String::new(),
            purged_ms: None,
            state: RecordingState::Recording,
            sealed: self.seal_info(),
        }
    }
}

/// A recording the host was writing when it died, made readable as far as
/// it reached the disk: its length (ms) and the hash of what it now holds
/// (a WAV's header repaired; a sealed file's complete chunks, as exported).
pub fn recover(path: &Path, keys: Option<&KeyRing>) -> Result<(u64, String), RecorderError> {
    if super::sealed::is_sealed(path) {
        let keys = keys.ok_or_else(|| RecorderError::NoKeys {
            path: path.to_owned(),
        })?;
        let (opened, sha) = super::sealed::export_sha256(path, keys)?;
        return Ok((opened.audio_bytes / 4 * 1000 / u64::from(SAMPLE_RATE), sha));
    }
    let ms = repair(path)?;
    Ok((ms, hash_file(path)?))
}

/// Make a WAV that was never closed (the host died while writing it)
/// readable: RIFF and data sizes set to the whole frames on disk. Returns
/// the audio's length in milliseconds.
pub fn repair(path: &Path) -> Result<u64, RecorderError> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let io = |source| RecorderError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut head = vec![0u8; 512.min(len as usize)];
    f.read_exact(&mut head).map_err(io)?;
    let bad = || {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a WAV file this host wrote",
        ))
    };
    if len < 44 && (head.is_empty() || b"RIFF".starts_with(&head[..head.len().min(4)])) {
        // Cut off before its header reached the disk: an empty recording.
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&36u32.to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // PCM
        h.extend_from_slice(&2u16.to_le_bytes()); // stereo
        h.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
        h.extend_from_slice(&(SAMPLE_RATE * 4).to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&0u32.to_le_bytes());
        f.set_len(0).map_err(io)?;
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        f.write_all(&h).map_err(io)?;
        f.sync_all().map_err(io)?;
        return Ok(0);
    }
    if head.len() < 12 || &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(bad());
    }
    // Walk the chunks to "data".
    let mut at = 12usize;
    let data_start = loop {
        let Some(chunk) = head.get(at..at + 8) else {
            return Err(bad());
        };
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]) as usize;
        if &chunk[..4] == b"data" {
            break at + 8;
        }
        at = at + 8 + size + (size & 1);
    };
    let frame = 4u64; // stereo, 16 bits
    let data_len = (len.saturating_sub(data_start as u64) / frame) * frame;
    let riff_len = u32::try_from(data_start as u64 - 8 + data_len).map_err(|_| bad())?;
    let data_len32 = u32::try_from(data_len).map_err(|_| bad())?;
    f.set_len(data_start as u64 + data_len).map_err(io)?;
    f.seek(SeekFrom::Start(4)).map_err(io)?;
    f.write_all(&riff_len.to_le_bytes()).map_err(io)?;
    f.seek(SeekFrom::Start(data_start as u64 - 4)).map_err(io)?;
    f.write_all(&data_len32.to_le_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(data_len / frame * 1000 / u64::from(SAMPLE_RATE))
}

fn push(buf: &mut VecDeque<i16>, samples: impl Iterator<Item = i16>) {
    buf.extend(samples);
    if buf.len() > MAX_BUFFERED {
        let excess = buf.len() - MAX_BUFFERED;
        buf.drain(..excess);
    }
}

fn toggle(
    since: &mut Option<u64>,
    on: bool,
    now: u64,
    reason: SilenceReason,
    spans: &mut Vec<SilentSpan>,
) {
    match (since.take(), on) {
        (None, true) => *since = Some(now),
        (Some(start), false) => spans.push(SilentSpan {
            start_ms: start,
            end_ms: now,
            reason,
        }),
        (kept, _) => *since = kept,
    }
}

pub fn hash_file(path: &Path) -> Result<String, RecorderError> {
    let mut file = File::open(path).map_err(|source| RecorderError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h).map_err(|source| RecorderError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(legs: Legs) -> RecordingPlan {
        RecordingPlan {
            legs,
            retention_days: 1,
            policy: "p".into(),
            policy_version: "v".into(),
            reason: "test".into(),
        }
    }

    #[test]
    fn a_recording_cut_off_mid_write_is_repaired_to_the_frames_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), "cut@x", 1_000, plan(Legs::Both), None).unwrap();
        let path = r.path().to_owned();
        assert_eq!(r.started_entry().state, RecordingState::Recording);
        for _ in 0..50 {
            r.caller_audio(std::iter::repeat_n(1000i16, 160));
            r.tick().unwrap();
        }
        // The host dies: the writer is never finalized (hound's header
        // still says no data), and a half frame is on the disk.
        let _leaked = std::mem::ManuallyDrop::new(r);
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[1, 2]));
        let ms = repair(&path).unwrap();
        let wav = hound::WavReader::open(&path).unwrap();
        assert_eq!(wav.spec().channels, 2);
        assert!(wav.duration() > 0);
        assert_eq!(ms, u64::from(wav.duration()) * 1000 / 8000);
        assert!(repair(&dir.path().join("none.wav")).is_err());
        // Cut off before the header reached the disk: an empty WAV.
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(repair(&empty).unwrap(), 0);
        assert_eq!(hound::WavReader::open(&empty).unwrap().duration(), 0);
        for junk in [
            &b"this is not a WAV file, and it is longer than a header"[..],
            &[b'R'; 64][..],
        ] {
            std::fs::write(dir.path().join("junk.wav"), junk).unwrap();
            assert!(repair(&dir.path().join("junk.wav")).is_err());
        }
        let mut no_data = b"RIFF\0\0\0\0WAVE".to_vec();
        no_data.extend_from_slice(&[b'x'; 64]);
        std::fs::write(dir.path().join("junk.wav"), &no_data).unwrap();
        assert!(repair(&dir.path().join("junk.wav")).is_err());
    }

    #[test]
    fn length_follows_ticks_and_pauses_are_silent_and_noted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Recorder::create(
            dir.path(),
            "a@b/c",
            1_700_000_000_000,
            plan(Legs::Both),
            None,
        )
        .expect("create");
        for i in 0..100 {
            r.caller_audio(std::iter::repeat_n(1000, FRAME));
            r.heard_audio(std::iter::repeat_n(-1000, FRAME));
            if i == 50 {
                r.set_paused(true);
            }
            if i == 75 {
                r.set_paused(false);
            }
            r.tick().expect("tick");
        }
        let e = r.finish().expect("finish");
        assert_eq!(e.duration_ms, 2000);
        assert_eq!(
            e.silent_spans,
            vec![SilentSpan {
                start_ms: 1000,
                end_ms: 1500,
                reason: SilenceReason::Paused
            }]
        );
        assert!(
            e.file
                .to_string_lossy()
                .ends_with("1700000000000-a_b_c.wav")
        );
        let samples: Vec<i16> = hound::WavReader::open(&e.file)
            .expect("wav")
            .into_samples::<i16>()
            .collect::<Result<_, _>>()
            .expect("samples");
        assert_eq!(samples.len(), 2 * 16000);
        assert_eq!(&samples[0..2], &[1000, -1000]);
        let paused = &samples[2 * 8000 + 2..2 * 12000 - 2];
        assert!(paused.iter().all(|&s| s == 0));
        assert_eq!(e.sha256, hash_file(&e.file).expect("hash"));
        assert_eq!(e.expires_ms, Some(1_700_000_000_000 + 86_400_000));
    }

    #[test]
    fn a_sealed_recording_holds_the_same_audio_as_the_wav_and_its_hash_is_the_exports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = std::sync::Arc::new(
            KeyRing::parse(&format!(
                "current = \"k\"\n[keys]\nk = \"{}\"\n",
                "11".repeat(32)
            ))
            .expect("keys"),
        );
        let record = |keys: Option<std::sync::Arc<KeyRing>>, sub: &str| {
            let d = dir.path().join(sub);
            let mut r = Recorder::create(&d, "c@x", 1_700_000_000_000, plan(Legs::Both), keys)
                .expect("create");
            for i in 0..120i16 {
                r.caller_audio((0..FRAME as i16).map(|k| k.wrapping_mul(i)));
                r.heard_audio(std::iter::repeat_n(-i, FRAME));
                if i == 60 {
                    r.set_paused(true);
                }
                if i == 90 {
                    r.set_paused(false);
                }
                r.tick().expect("tick");
            }
            r.finish().expect("finish")
        };
        let plain = record(None, "plain");
        let sealed = record(Some(keys.clone()), "sealed");
        assert!(plain.sealed.is_none());
        let info = sealed.sealed.clone().expect("sealed");
        assert_eq!(info.key_id, "k");
        assert_eq!(info.wrapped_key.len(), 2 * (12 + 48));
        assert!(sealed.file.to_string_lossy().ends_with(".wav.sealed"));
        assert_eq!(
            (sealed.duration_ms, &sealed.silent_spans),
            (plain.duration_ms, &plain.silent_spans)
        );
        let mut wav = Vec::new();
        let opened =
            super::super::sealed::export_wav(&sealed.file, &keys, &mut wav).expect("export");
        assert!(opened.finished);
        let plain_wav = std::fs::read(&plain.file).expect("wav");
        assert_eq!(&wav[44..], &plain_wav[44..], "the same samples");
        use sha2::Digest;
        assert_eq!(sealed.sha256, hex::encode(sha2::Sha256::digest(&wav)));
        // Recovery after a crash reads it the same way.
        let (ms, sha) = recover(&sealed.file, Some(&keys)).expect("recover");
        assert_eq!((ms, sha), (sealed.duration_ms, sealed.sha256.clone()));
        assert!(matches!(
            recover(&sealed.file, None),
            Err(RecorderError::NoKeys { .. })
        ));
    }
}
