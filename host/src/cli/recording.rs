//! `ctihost recording`: a call's recording out of a running host (decrypted
//! there, audited), a sealed file opened offline with the key file, and new
//! master keys for rotation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::admin_client::{self, AdminArgs};
use ctihost::media::sealed::{self, KeyRing};
// Decrypted audio is cardholder data: the file is the owner's alone.
use ctihost::server::write_private;

#[derive(Subcommand)]
pub enum RecordingCommand {
    /// Write a call's recording as a WAV file. The running host decrypts it
    /// (admin token) and audits the export.
    Export {
        call_id: String,
        /// Where the WAV goes.
        #[arg(long, short)]
        out: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Decrypt a sealed recording file without a running host (a stopped
    /// host, a copy of its files): the key file is the authorisation.
    Decrypt {
        file: PathBuf,
        /// The recording master keys (TOML: `current`, `[keys]`).
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Print a new master key line for the key file. Rotation: add the line
    /// under `[keys]`, set `current` to its id and restart; keep the old
    /// keys so older recordings still open.
    NewKey { id: String },
}

pub async fn run(command: RecordingCommand) -> ExitCode {
    match command {
        RecordingCommand::Export {
            call_id,
            out,
            admin,
        } => export(&admin, &call_id, &out).await,
        RecordingCommand::Decrypt {
            file,
            key_file,
            out,
        } => decrypt(&file, &key_file, &out),
        RecordingCommand::NewKey { id } => new_key(&id),
    }
}

async fn export(admin: &AdminArgs, call_id: &str, out: &Path) -> ExitCode {
    let path = format!("/admin/recordings/{}/audio", admin_client::encode(call_id));
    let (status, body) = match admin_client::fetch_bytes(admin, reqwest::Method::GET, &path).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    if !status.is_success() {
        return admin_client::refused(status, &String::from_utf8_lossy(&body));
    }
    if let Err(e) = write_private(out, &body) {
        eprintln!("error: {}: {e}", out.display());
        return ExitCode::from(2);
    }
    println!("{}: {} bytes (WAV)", out.display(), body.len());
    ExitCode::SUCCESS
}

fn decrypt(file: &Path, key_file: &Path, out: &Path) -> ExitCode {
    let keys = match std::fs::read_to_string(key_file) {
        Ok(t) => match KeyRing::parse(&t) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("error: {}: {e}", key_file.display());
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("error: {}: {e}", key_file.display());
            return ExitCode::from(2);
        }
    };
    let mut wav = Vec::new();
    match sealed::export_wav(file, &keys, &mut wav) {
        Ok(opened) => {
            if let Err(e) = write_private(out, &wav) {
                eprintln!("error: {}: {e}", out.display());
                return ExitCode::from(2);
            }
            let state = if opened.finished {
                "finished"
            } else {
                "cut off (the host stopped while writing it): every complete second is here"
            };
            println!(
                "{}: {} bytes of audio (WAV), {state}",
                out.display(),
                opened.audio_bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn new_key(id: &str) -> ExitCode {
    match KeyRing::generate(id).and_then(|text| KeyRing::parse(&text).map(|_| text)) {
        Ok(text) => {
            match text.lines().last() {
                Some(line) => println!("{line}"),
                None => return ExitCode::from(1),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
