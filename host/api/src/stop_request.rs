//! Asking the host to stop (`POST /admin/drain`, `ctihost drain`) and
//! reading where the stop stands. The API owns this port; the binary's stop
//! procedure (drain, end the calls, settle) takes the requests and says how
//! it goes.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

/// A request to stop, draining for at most `drain` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopRequest {
    pub drain: Duration,
}

/// Where a stop stands, as `GET /admin/drain` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Running,
    Draining,
    EndingCalls,
    Stopped,
}

#[derive(Debug, Clone, Serialize)]
pub struct StopStatus {
    pub phase: Phase,
    /// Calls live when the status was last updated.
    pub live_calls: usize,
    /// When the drain ends and the calls left are ended (ms since the epoch).
    pub drain_deadline_ms: Option<u64>,
    /// The Retry-After new calls get while draining.
    pub retry_after_secs: u32,
}

/// Asks for a stop and tells where it stands (the admin API's side).
#[derive(Clone)]
pub struct StopHandle {
    requests: mpsc::Sender<StopRequest>,
    status: watch::Receiver<StopStatus>,
}

#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("the host is already stopping")]
    Busy,
}

impl StopHandle {
    pub fn request(&self, drain: Duration) -> Result<(), StopError> {
        self.requests
            .try_send(StopRequest { drain })
            .map_err(|_| StopError::Busy)
    }

    /// Ask for a stop and return the status once the stop has begun (at
    /// most a second later): the asker learns how many calls it waits for.
    pub async fn request_and_status(&self, drain: Duration) -> Result<StopStatus, StopError> {
        self.request(drain)?;
        let mut status = self.status.clone();
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            status.wait_for(|s| s.phase != Phase::Running),
        )
        .await;
        Ok(self.status())
    }

    pub fn status(&self) -> StopStatus {
        self.status.borrow().clone()
    }
}

/// The side that carries a stop out: the requests, and where to say how
/// the stop goes.
pub struct StopRequests {
    requests: mpsc::Receiver<StopRequest>,
    status: watch::Sender<StopStatus>,
}

impl StopRequests {
    /// The next request (None: every handle is gone).
    pub async fn recv(&mut self) -> Option<StopRequest> {
        self.requests.recv().await
    }

    /// Say where the stop stands.
    pub fn set(&self, f: impl FnOnce(&mut StopStatus)) {
        self.status.send_modify(f);
    }
}

pub fn channel(retry_after_secs: u32) -> (StopHandle, StopRequests) {
    // A few requests at once are plenty: each only shortens the drain.
    let (tx, rx) = mpsc::channel(8);
    let (status_tx, status_rx) = watch::channel(StopStatus {
        phase: Phase::Running,
        live_calls: 0,
        drain_deadline_ms: None,
        retry_after_secs,
    });
    (
        StopHandle {
            requests: tx,
            status: status_rx,
        },
        StopRequests {
            requests: rx,
            status: status_tx,
        },
    )
}
