//! Hot reload on file change. The plugin directory is watched; after a quiet
//! period the directory is fingerprinted (each manifest's bytes and its
//! component's bytes) and only the manifests whose fingerprint changed are
//! loaded again; a manifest that disappeared unloads its plugin.
//!
//! Two things make this a loop-free watch: reads are not changes (inotify
//! reports every open and close of a file, including the host's own reads
//! during a load, and those are dropped here), and a file that did not change
//! is never tried again, whatever happened to it last time (a rejected file
//! stays rejected, a rolled-back version is not reloaded from the same bytes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::manifest::Manifest;
use super::registry::{PluginHost, PluginSource};
use super::version::Trigger;

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {dir}: {source}")]
pub struct WatchError {
    dir: PathBuf,
    source: notify::Error,
}

/// Keeps the watch alive; dropping it stops watching.
pub struct DirWatch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the watcher last saw of each manifest: a hash over the manifest's
/// bytes and its component's bytes (or the reason they could not be read).
pub type Fingerprints = BTreeMap<PathBuf, [u8; 32]>;

/// Fingerprint every `*.toml` in `dir`.
pub fn fingerprint_dir(dir: &Path) -> Fingerprints {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Fingerprints::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let f = fingerprint(&p);
            (p, f)
        })
        .collect()
}

fn fingerprint(manifest: &Path) -> [u8; 32] {
    let mut h = Sha256::new();
    match std::fs::read(manifest) {
        Ok(text) => {
            h.update(b"manifest");
            h.update((text.len() as u64).to_le_bytes());
            h.update(&text);
            let parsed = std::str::from_utf8(&text)
                .ok()
                .and_then(|t| Manifest::parse(t, manifest).ok());
            if let Some(m) = parsed {
                let dir = manifest.parent().unwrap_or(Path::new("."));
                match std::fs::read(m.component_path(dir)) {
                    Ok(bytes) => {
                        h.update(b"component");
                        h.update(&bytes);
                    }
                    Err(e) => h.update(format!("unreadable component: {e}")),
                }
            }
        }
        Err(e) => h.update(format!("unreadable manifest: {e}")),
    }
    h.finalize().into()
}

/// What changed between two fingerprints of a directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DirChanges {
    /// New or changed manifests (or their components), sorted.
    pub changed: Vec<PathBuf>,
    /// Manifests that are gone.
    pub removed: Vec<PathBuf>,
}

impl DirChanges {
    pub fn between(before: &Fingerprints, now: &Fingerprints) -> Self {
        Self {
            changed: now
                .iter()
                .filter(|(p, f)| before.get(*p) != Some(f))
                .map(|(p, _)| p.clone())
                .collect(),
            removed: before
                .keys()
                .filter(|p| !now.contains_key(*p))
                .cloned()
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Watch `dir`. The fingerprints taken now are the baseline: what start-up
/// just loaded is not loaded again.
pub fn watch_dir(
    host: PluginHost,
    dir: PathBuf,
    debounce: Duration,
) -> Result<DirWatch, WatchError> {
    let wake = Arc::new(Notify::new());
    let signal = wake.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        match res {
            // Opening and reading a file is not changing it.
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
            Ok(_) => signal.notify_one(),
            Err(e) => tracing::warn!(error = %e, "plugin directory watch error"),
        }
    })
    .map_err(|source| WatchError {
        dir: dir.clone(),
        source,
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError {
            dir: dir.clone(),
            source,
        })?;
    let mut seen = fingerprint_dir(&dir);
    let task = tokio::spawn(async move {
        loop {
            wake.notified().await;
            // Quiet period: a copy in progress raises many events.
            while tokio::time::timeout(debounce, wake.notified())
                .await
                .is_ok()
            {}
            let scan_dir = dir.clone();
            let Ok(now) = tokio::task::spawn_blocking(move || fingerprint_dir(&scan_dir)).await
            else {
                continue;
            };
            let changes = DirChanges::between(&seen, &now);
            seen = now;
            if changes.is_empty() {
                continue;
            }
            tracing::info!(
                dir = %dir.display(),
                changed = changes.changed.len(),
                removed = changes.removed.len(),
                "plugin directory changed"
            );
            for path in changes.changed {
                if let Err(e) = host
                    .load(PluginSource::Manifest(path.clone()), Trigger::Watch)
                    .await
                {
                    tracing::warn!(manifest = %path.display(), error = %e, "reload from directory rejected; it is not tried again until its files change");
                }
            }
            for path in changes.removed {
                host.unload_manifest(&path, Trigger::Watch).await;
            }
        }
    });
    Ok(DirWatch {
        _watcher: watcher,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_and_removed_manifests_count() {
        let p = |s: &str| PathBuf::from(s);
        let before: Fingerprints = [(p("a.toml"), [1; 32]), (p("b.toml"), [2; 32])].into();
        let now: Fingerprints = [(p("a.toml"), [1; 32]), (p("c.toml"), [3; 32])].into();
        let c = DirChanges::between(&before, &now);
        assert_eq!(c.changed, vec![p("c.toml")]);
        assert_eq!(c.removed, vec![p("b.toml")]);
        assert!(DirChanges::between(&now, &now).is_empty());
    }

    #[test]
    fn a_component_change_changes_its_manifest_fingerprint() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("r.toml");
        std::fs::write(&m, "name = \"r\"\nkind = \"router\"\nfile = \"r.wasm\"\n").unwrap();
        std::fs::write(d.path().join("r.wasm"), b"one").unwrap();
        let first = fingerprint_dir(d.path());
        assert_eq!(first, fingerprint_dir(d.path()), "reading changes nothing");
        std::fs::write(d.path().join("r.wasm"), b"two").unwrap();
        let second = fingerprint_dir(d.path());
        assert_eq!(DirChanges::between(&first, &second).changed, vec![m]);
    }
}
