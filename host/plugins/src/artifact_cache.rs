//! Compiled components cached on disk by content hash and engine fingerprint,
//! so a restart or a reload of a known version does not recompile (seconds
//! for a Python or JS component).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ArtifactCache {
    dir: Option<PathBuf>,
    fingerprint: String,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CompileInfo {
    pub cached: bool,
    pub millis: f64,
}

impl ArtifactCache {
    /// `dir = None` compiles every time (used by `plugin check` to report compile time).
    pub fn new(dir: Option<PathBuf>, fingerprint: String) -> Self {
        if let Some(d) = &dir
            && let Err(e) = std::fs::create_dir_all(d)
        {
            tracing::warn!(dir = %d.display(), error = %e, "artifact cache disabled");
            return Self {
                dir: None,
                fingerprint,
            };
        }
        Self { dir, fingerprint }
    }

    fn path_for(&self, hash: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{hash}-{}.cwasm", self.fingerprint)))
    }

    /// Load the compiled artifact of `bytes` (whose sha256 is `hash`), compiling
    /// on a blocking thread when it is not cached.
    pub async fn load(
        &self,
        engine: &Engine,
        hash: &str,
        bytes: std::sync::Arc<Vec<u8>>,
    ) -> Result<(Component, CompileInfo), CompileError> {
        let started = Instant::now();
        if let Some(path) = self.path_for(hash)
            && path.exists()
        {
            match deserialize(engine, &path) {
                Ok(c) => return Ok((c, info(true, started.elapsed()))),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "dropping unreadable cached artifact");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let engine2 = engine.clone();
        let serialized = tokio::task::spawn_blocking(move || engine2.precompile_component(&bytes))
            .await
            .map_err(CompileError::Task)?
            .map_err(CompileError::Compile)?;
        if let Some(path) = self.path_for(hash) {
            let tmp = path.with_extension("tmp");
            if let Err(e) =
                std::fs::write(&tmp, &serialized).and_then(|_| std::fs::rename(&tmp, &path))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot write artifact cache");
            }
        }
        let component = deserialize_bytes(engine, &serialized).map_err(CompileError::Load)?;
        Ok((component, info(false, started.elapsed())))
    }
}

/// Why a component could not be compiled or its artifact loaded.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("compiler task failed: {0}")]
    Task(tokio::task::JoinError),
    #[error("compile failed: {0:#}")]
    Compile(wasmtime::Error),
    #[error("cannot load compiled artifact: {0:#}")]
    Load(wasmtime::Error),
}

fn info(cached: bool, d: Duration) -> CompileInfo {
    CompileInfo {
        cached,
        millis: d.as_secs_f64() * 1000.0,
    }
}

// Deserializing is unsafe because a crafted artifact could run arbitrary code;
// these bytes are ones this host's own engine produced (the file name carries
// the engine fingerprint, and wasmtime checks the header), stored in the
// host's private data directory.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    unsafe { Component::deserialize_file(engine, path) }
}

#[allow(unsafe_code)]
fn deserialize_bytes(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    unsafe { Component::deserialize(engine, bytes) }
}
