//! The prompt library: 8 kHz mono 16-bit WAV files by name. A default set
//! (speech from espeak-ng, synthesised music; `host/media/prompts/make_prompts.py`)
//! is embedded in the binary; files in the configured prompt directory add to
//! it or replace prompts of the same name. Files are checked at start-up so a
//! wrong format stops the host with the file's name, not a silent call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const SAMPLE_RATE: u32 = 8000;

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: hound::Error },
    #[error(
        "{path}: prompts must be 8000 Hz mono 16-bit PCM WAV; this one is {rate} Hz, {channels} channel(s), {bits}-bit"
    )]
    Format {
        path: PathBuf,
        rate: u32,
        channels: u16,
        bits: u16,
    },
    #[error("prompt directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One prompt's audio.
#[derive(Debug)]
pub struct Prompt {
    pub name: String,
    pub samples: Vec<i16>,
}

#[derive(Debug, Clone, Default)]
pub struct Prompts {
    by_name: HashMap<String, Arc<Prompt>>,
}

const EMBEDDED: &[(&str, &[u8])] = &[
    ("digit-0", include_bytes!("../prompts/digit-0.wav")),
    ("digit-1", include_bytes!("../prompts/digit-1.wav")),
    ("digit-2", include_bytes!("../prompts/digit-2.wav")),
    ("digit-3", include_bytes!("../prompts/digit-3.wav")),
    ("digit-4", include_bytes!("../prompts/digit-4.wav")),
    ("digit-5", include_bytes!("../prompts/digit-5.wav")),
    ("digit-6", include_bytes!("../prompts/digit-6.wav")),
    ("digit-7", include_bytes!("../prompts/digit-7.wav")),
    ("digit-8", include_bytes!("../prompts/digit-8.wav")),
    ("digit-9", include_bytes!("../prompts/digit-9.wav")),
    ("enter-card", include_bytes!("../prompts/enter-card.wav")),
    ("enter-pin", include_bytes!("../prompts/enter-pin.wav")),
    (
        "estimated-wait",
        include_bytes!("../prompts/estimated-wait.wav"),
    ),
    ("goodbye", include_bytes!("../prompts/goodbye.wav")),
    (
        "in-the-queue",
        include_bytes!("../prompts/in-the-queue.wav"),
    ),
    (
        "less-than-a-minute",
        include_bytes!("../prompts/less-than-a-minute.wav"),
    ),
    ("main-menu", include_bytes!("../prompts/main-menu.wav")),
    (
        "main-menu-invalid",
        include_bytes!("../prompts/main-menu-invalid.wav"),
    ),
    ("minutes", include_bytes!("../prompts/minutes.wav")),
    (
        "music-on-hold",
        include_bytes!("../prompts/music-on-hold.wav"),
    ),
    ("number-10", include_bytes!("../prompts/number-10.wav")),
    ("number-11", include_bytes!("../prompts/number-11.wav")),
    ("number-12", include_bytes!("../prompts/number-12.wav")),
    ("number-13", include_bytes!("../prompts/number-13.wav")),
    ("number-14", include_bytes!("../prompts/number-14.wav")),
    ("number-15", include_bytes!("../prompts/number-15.wav")),
    ("number-16", include_bytes!("../prompts/number-16.wav")),
    ("number-17", include_bytes!("../prompts/number-17.wav")),
    ("number-18", include_bytes!("../prompts/number-18.wav")),
    ("number-19", include_bytes!("../prompts/number-19.wav")),
    ("number-20", include_bytes!("../prompts/number-20.wav")),
    ("number-30", include_bytes!("../prompts/number-30.wav")),
    ("number-40", include_bytes!("../prompts/number-40.wav")),
    ("number-50", include_bytes!("../prompts/number-50.wav")),
    ("number-60", include_bytes!("../prompts/number-60.wav")),
    ("number-70", include_bytes!("../prompts/number-70.wav")),
    ("number-80", include_bytes!("../prompts/number-80.wav")),
    ("number-90", include_bytes!("../prompts/number-90.wav")),
    ("please-hold", include_bytes!("../prompts/please-hold.wav")),
    ("thank-you", include_bytes!("../prompts/thank-you.wav")),
    ("welcome", include_bytes!("../prompts/welcome.wav")),
    (
        "you-are-number",
        include_bytes!("../prompts/you-are-number.wav"),
    ),
];

/// The samples of a WAV file's bytes (`path` names it in errors).
fn read(path: &Path, bytes: &[u8]) -> Result<Vec<i16>, PromptError> {
    let err = |source| PromptError::Read {
        path: path.to_owned(),
        source,
    };
    let r = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(err)?;
    let spec = r.spec();
    if spec.sample_rate != SAMPLE_RATE
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(PromptError::Format {
            path: path.to_owned(),
            rate: spec.sample_rate,
            channels: spec.channels,
            bits: spec.bits_per_sample,
        });
    }
    r.into_samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(err)
}

impl Prompts {
    /// The embedded set, then every `*.wav` of `dir` (if given) over it.
    pub fn load(dir: Option<&Path>) -> Result<Self, PromptError> {
        let mut by_name = HashMap::new();
        for (name, bytes) in EMBEDDED {
            let path = PathBuf::from(format!("(embedded) {name}.wav"));
            let samples = read(&path, bytes)?;
            by_name.insert(
                (*name).to_owned(),
                Arc::new(Prompt {
                    name: (*name).to_owned(),
                    samples,
                }),
            );
        }
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|source| PromptError::Dir {
                path: dir.to_owned(),
                source,
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some("wav") {
                    continue;
                }
                let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                let bytes = std::fs::read(&path).map_err(|e| PromptError::Read {
                    path: path.clone(),
                    source: hound::Error::IoError(e),
                })?;
                let samples = read(&path, &bytes)?;
                by_name.insert(
                    name.to_owned(),
                    Arc::new(Prompt {
                        name: name.to_owned(),
                        samples,
                    }),
                );
            }
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<Arc<Prompt>> {
        self.by_name.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.keys().cloned().collect();
        v.sort();
        v
    }

    /// "You are number 3 in the queue. Your estimated waiting time is 4
    /// minutes." from the number prompts; missing pieces are skipped.
    pub fn announcement(&self, position: u32, wait_secs: u32) -> Vec<Arc<Prompt>> {
        let mut names = vec!["you-are-number".to_owned()];
        names.extend(number_names(position));
        names.push("in-the-queue".into());
        names.push("estimated-wait".into());
        let minutes = wait_secs.div_ceil(60);
        if minutes <= 1 && wait_secs < 60 {
            names.push("less-than-a-minute".into());
        } else {
            names.extend(number_names(minutes));
            names.push("minutes".into());
        }
        names.iter().filter_map(|n| self.get(n)).collect()
    }
}

/// Prompt names that say `n` (0-99 in words; above, digit by digit).
fn number_names(n: u32) -> Vec<String> {
    match n {
        0..=9 => vec![format!("digit-{n}")],
        10..=19 => vec![format!("number-{n}")],
        20..=99 => {
            let mut v = vec![format!("number-{}", n / 10 * 10)];
            if !n.is_multiple_of(10) {
                v.push(format!("digit-{}", n % 10));
            }
            v
        }
        _ => n
            .to_string()
            .chars()
            .map(|c| format!("digit-{c}"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_set_loads_and_says_numbers() {
        let p = Prompts::load(None).expect("embedded prompts");
        assert!(p.get("main-menu").is_some_and(|m| m.samples.len() > 8000));
        assert!(p.get("music-on-hold").is_some());
        let names: Vec<String> = p
            .announcement(23, 125)
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "you-are-number",
                "number-20",
                "digit-3",
                "in-the-queue",
                "estimated-wait",
                "digit-3",
                "minutes"
            ]
        );
    }

    #[test]
    fn a_wrong_format_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hello.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("create");
        w.write_sample(0i16).expect("left");
        w.write_sample(0i16).expect("right");
        w.finalize().expect("finalize");
        let e = Prompts::load(Some(dir.path()))
            .expect_err("refused")
            .to_string();
        assert!(e.contains("hello.wav") && e.contains("44100"), "{e}");
    }
}
