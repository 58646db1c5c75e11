//! One shutdown for every long-lived loop of the host, as in mini-redis
//! (`src/shutdown.rs`): each loop holds a [`Shutdown`] and ends when it
//! fires; [`Loops::stop`] fires it and waits until every holder has
//! dropped its copy, so `ctihost run` returns only after the SIP
//! listeners, the center (and its call-record writer, drained) and the
//! periodic tasks are done, and then flushes the store.
//!
//! Per-call and per-connection tasks (relay sessions, TCP connections,
//! plugin invocations) are not held here: they end with their call or
//! connection, which the drain ends first.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// What a loop holds: `recv` resolves once the host stops.
#[derive(Clone)]
pub struct Shutdown {
    signal: watch::Receiver<bool>,
    /// Dropped with the loop: the trigger counts what is still running.
    _running: mpsc::Sender<()>,
}

impl Shutdown {
    /// Wait until the host stops (at once if it has).
    pub async fn recv(&mut self) {
        // An error means the trigger is gone: stopping as well.
        let _ = self.signal.wait_for(|stop| *stop).await;
    }

    #[cfg(test)]
    fn is_shutdown(&self) -> bool {
        *self.signal.borrow()
    }
}

/// Owned by `run`: hands out [`Shutdown`]s and fires them.
pub struct Loops {
    signal: watch::Sender<bool>,
    running: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
}

impl Default for Loops {
    fn default() -> Self {
        Self::new()
    }
}

impl Loops {
    pub fn new() -> Self {
        let (signal, _) = watch::channel(false);
        let (running, done) = mpsc::channel(1);
        Self {
            signal,
            running,
            done,
        }
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            signal: self.signal.subscribe(),
            _running: self.running.clone(),
        }
    }

    /// Fire the shutdown and wait up to `limit` for every loop to end;
    /// false if some did not.
    pub async fn stop(self, limit: Duration) -> bool {
        let Loops {
            signal,
            running,
            mut done,
        } = self;
        let _ = signal.send(true);
        drop(running);
        tokio::time::timeout(limit, done.recv()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_waits_for_every_loop_and_says_when_one_hangs() {
        let trigger = Loops::new();
        let (ended_tx, mut ended) = mpsc::unbounded_channel();
        for i in 0..3 {
            let mut s = trigger.subscribe();
            let ended_tx = ended_tx.clone();
            tokio::spawn(async move {
                s.recv().await;
                tokio::time::sleep(Duration::from_millis(20 * i)).await;
                let _ = ended_tx.send(i);
            });
        }
        assert!(trigger.stop(Duration::from_secs(5)).await);
        let mut all = Vec::new();
        while let Ok(i) = ended.try_recv() {
            all.push(i);
        }
        assert_eq!(all.len(), 3, "every loop ended before stop returned");

        let trigger = Loops::new();
        let stuck = trigger.subscribe();
        assert!(!trigger.stop(Duration::from_millis(50)).await);
        assert!(stuck.is_shutdown());
    }
}
