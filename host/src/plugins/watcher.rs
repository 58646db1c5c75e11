//! Hot reload on file change: the plugin directory is watched and, after a
//! quiet period, every manifest in it is loaded again (unchanged ones are
//! recognised by hash and skipped).

use std::path::PathBuf;
use std::time::Duration;

use notify_debouncer_mini::{DebounceEventResult, new_debouncer, notify::RecursiveMode};
use tokio::sync::mpsc;

use super::registry::PluginHost;
use super::version::Trigger;

/// Keeps the watch alive; dropping it stops watching.
pub struct DirWatch {
    _debouncer: notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn watch_dir(host: PluginHost, dir: PathBuf, debounce: Duration) -> Result<DirWatch, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut debouncer = new_debouncer(debounce, move |res: DebounceEventResult| match res {
        Ok(events) if !events.is_empty() => {
            let _ = tx.send(());
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "plugin directory watch error"),
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    debouncer
        .watcher()
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            while rx.try_recv().is_ok() {}
            tracing::info!(dir = %dir.display(), "plugin directory changed; reloading");
            for (path, result) in host.load_dir(&dir, Trigger::Watch).await {
                if let Err(e) = result {
                    tracing::warn!(manifest = %path.display(), error = %e, "reload from directory rejected");
                }
            }
        }
    });
    Ok(DirWatch {
        _debouncer: debouncer,
        task,
    })
}
