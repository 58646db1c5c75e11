//! The host's stop, in three steps, so that an upgrade behind a load
//! balancer loses nothing:
//!
//! 1. **Drain**: new calls and OPTIONS probes get `503` with `Retry-After`
//!    (the balancer or a dispatcher takes the host out) while live calls go
//!    on, until none is left or the drain period ends.
//! 2. **End what is left**: each remaining call is ended both ways (BYE to
//!    the caller and the agent; a caller not yet answered gets `503`), and
//!    the host waits, at most [`ANSWER_WAIT`], for the peers' answers.
//! 3. **Settle**: the relays finish and index their recordings and the
//!    record writer has every call's record on disk (at most [`SETTLE_WAIT`]).
//!
//! A stop is asked for by a signal (SIGTERM, SIGINT: `[shutdown]
//! drain_secs`) or by `POST /admin/drain` (`ctihost drain`). A later request
//! with a shorter drain shortens it (a second signal ends it at once).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctihost_api::stop_request::StopRequests;
pub use ctihost_api::stop_request::{Phase, StopError, StopHandle, StopRequest, StopStatus};

use crate::acd::CallEvent;
use crate::center::CenterHandle;
use crate::media::Media;
use crate::sip::endpoint::SipEndpoint;

/// Longest wait for the answers to the host's BYEs and CANCELs.
pub const ANSWER_WAIT: Duration = Duration::from_secs(4);
/// Longest wait for recordings to be indexed and records written.
pub const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// The run loop's side: the requests the API (or a signal) makes, and
/// where to say how the stop goes.
pub struct StopControl {
    asks: StopRequests,
    retry_after_secs: u32,
}

pub fn channel(retry_after_secs: u32) -> (StopHandle, StopControl) {
    let (handle, asks) = ctihost_api::stop_request::channel(retry_after_secs);
    (
        handle,
        StopControl {
            asks,
            retry_after_secs,
        },
    )
}

/// What a stop touches: the SIP side and the center, when SIP runs.
pub struct Parts {
    pub endpoint: Arc<SipEndpoint>,
    pub center: CenterHandle,
    pub media: Option<Arc<Media>>,
}

/// What the stop did, for the last log lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Calls that finished on their own during the drain.
    pub drained: usize,
    /// Calls the host ended.
    pub ended: usize,
    /// Legs, requests or relays still open when the waits ran out.
    pub unsettled: usize,
}

impl StopControl {
    /// Wait for the first stop request.
    pub async fn requested(&mut self) -> Option<StopRequest> {
        self.asks.recv().await
    }

    fn set(&self, f: impl FnOnce(&mut StopStatus)) {
        self.asks.set(f);
    }

    /// Carry out a stop that `first` asked for.
    pub async fn stop(&mut self, first: StopRequest, parts: Option<&Parts>) -> Summary {
        let Some(p) = parts else {
            self.set(|s| s.phase = Phase::Stopped);
            return Summary::default();
        };
        // New calls are refused before the first look, and the look is
        // subscribed to endings first: no call arrives or ends unseen.
        p.endpoint.set_draining(Some(self.retry_after_secs));
        let mut ended = p.center.subscribe_ended();
        let mut live = live_calls(&p.center).await;
        let live_at_start = live.len();
        let mut deadline = Instant::now() + first.drain;
        self.set(|s| {
            s.phase = Phase::Draining;
            s.live_calls = live_at_start;
            s.drain_deadline_ms = Some(crate::clock::now_ms() + first.drain.as_millis() as u64);
        });
        tracing::warn!(
            live_calls = live_at_start,
            drain_secs = first.drain.as_secs(),
            retry_after_secs = self.retry_after_secs,
            "stopping: new calls get 503 while live calls finish; the calls left at the end of the drain are ended"
        );
        while !live.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::select! {
                _ = ended.recv() => {}
                Some(r) = self.asks.recv() => {
                    let sooner = Instant::now() + r.drain;
                    if sooner < deadline {
                        deadline = sooner;
                        tracing::warn!(drain_secs = r.drain.as_secs(), "stop asked again: the drain is shortened");
                    }
                }
                _ = tokio::time::sleep(left) => {}
            }
            live = live_calls(&p.center).await;
            let n = live.len();
            self.set(|s| s.live_calls = n);
        }
        let drained = live_at_start.saturating_sub(live.len());
        self.set(|s| {
            s.phase = Phase::EndingCalls;
            s.live_calls = live.len();
        });
        if !live.is_empty() {
            tracing::warn!(
                calls = live.len(),
                "ending the calls still live: BYE to both sides"
            );
        }
        for call_id in &live {
            p.center.send(CallEvent::HostStopping {
                call_id: call_id.clone(),
            });
        }
        // The ACD turns each into hang-up commands; wait until the B2BUA has
        // no leg left and the peers have answered what the host sent.
        let media_live = || p.media.as_ref().map_or(0, |m| m.live_relays());
        let answered = wait_until(ANSWER_WAIT, || {
            p.endpoint.live_legs() == 0 && p.endpoint.awaiting_answers() == 0
        })
        .await;
        let settled = wait_until(SETTLE_WAIT, || media_live() == 0).await;
        let written = tokio::time::timeout(SETTLE_WAIT, p.center.flushed())
            .await
            .unwrap_or(false);
        let unsettled = if answered && settled && written {
            0
        } else {
            let n = p.endpoint.live_legs() + p.endpoint.awaiting_answers() + media_live();
            tracing::error!(
                open_legs = p.endpoint.live_legs(),
                unanswered_requests = p.endpoint.awaiting_answers(),
                relays = media_live(),
                records_written = written,
                "stopping with work unfinished: the waits ran out"
            );
            n.max(1)
        };
        self.set(|s| {
            s.phase = Phase::Stopped;
            s.live_calls = 0;
        });
        Summary {
            drained,
            ended: live.len(),
            unsettled,
        }
    }
}

async fn live_calls(center: &CenterHandle) -> Vec<String> {
    center
        .snapshot()
        .await
        .map(|s| s.calls.into_iter().map(|c| c.call_id).collect())
        .unwrap_or_default()
}

/// Check `done` every 20 ms until it holds (true) or `limit` passes (false):
/// the legs, transactions and relays have no event to wait on together.
async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
