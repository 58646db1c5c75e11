//! The supervisor's figures: live queue and agent state every second, with
//! today's service level and abandon rate per queue kept as calls end (not
//! re-read from the store on every tick).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::acd::{AgentSnapshot, QueueSnapshot};
use crate::center::CenterHandle;
use crate::clock::now_ms;
use crate::reports::{Calendar, Interval, QueueRow, QueueTally, interval_of};
use crate::store::Store;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Wallboard {
    pub at_ms: u64,
    /// The zone whose midnight starts "today" (IANA name).
    pub time_zone: String,
    pub queues: Vec<QueueBoard>,
    pub agents: Vec<AgentSnapshot>,
    pub agents_by_state: BTreeMap<&'static str, u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueBoard {
    /// The queue now.
    #[serde(flatten)]
    pub live: QueueSnapshot,
    /// Since local midnight (the center's `timezone`).
    pub today: QueueRow,
}

/// Today's tallies per queue; a new day starts them again.
struct Today {
    calendar: Calendar,
    day_start_ms: u64,
    tallies: HashMap<String, QueueTally>,
    thresholds: HashMap<String, u32>,
}

impl Today {
    fn add(&mut self, r: &crate::acd::CallRecord) {
        let Some(q) = r.queue.as_deref() else { return };
        if interval_of(r, Interval::Day, &self.calendar) != self.day_start_ms {
            return;
        }
        let threshold = self.thresholds.get(q).copied().unwrap_or(20);
        let start = self.day_start_ms;
        self.tallies
            .entry(q.to_owned())
            .or_insert_with(|| QueueTally::new(q, start, threshold))
            .add(r);
    }

    fn roll(&mut self, now_ms: u64) {
        let day = self.calendar.start_of(Interval::Day, now_ms);
        if day != self.day_start_ms {
            self.day_start_ms = day;
            self.tallies.clear();
        }
    }

    fn row(&self, queue: &str) -> QueueRow {
        self.tallies
            .get(queue)
            .map(QueueTally::row)
            .unwrap_or_else(|| {
                QueueTally::new(
                    queue,
                    self.day_start_ms,
                    self.thresholds.get(queue).copied().unwrap_or(20),
                )
                .row()
            })
    }
}

/// Start the wallboard task; the receiver always holds the latest board.
pub fn spawn(
    center: Option<CenterHandle>,
    store: Store,
    thresholds: HashMap<String, u32>,
    calendar: Calendar,
    mut shutdown: crate::shutdown::Shutdown,
) -> watch::Receiver<Arc<Wallboard>> {
    let (tx, rx) = watch::channel(Arc::new(Wallboard::default()));
    let Some(center) = center else { return rx };
    let mut ended = center.subscribe_ended();
    let now = now_ms();
    let mut today = Today {
        day_start_ms: calendar.start_of(Interval::Day, now),
        calendar,
        tallies: HashMap::new(),
        thresholds,
    };
    // Calls that ended earlier today, before this start.
    match store.calls_since(today.day_start_ms, usize::MAX) {
        Ok(records) => records.iter().for_each(|r| today.add(r)),
        Err(e) => tracing::error!(error = %e, "wallboard: cannot read today's call records"),
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.recv() => break,
                _ = tick.tick() => {
                    let now = now_ms();
                    today.roll(now);
                    let Some(snap) = center.snapshot().await else { break };
                    let board = Wallboard {
                        at_ms: snap.at_ms,
                        time_zone: today.calendar.name(),
                        queues: snap
                            .queues
                            .into_iter()
                            .map(|q| QueueBoard {
                                today: today.row(&q.name),
                                live: q,
                            })
                            .collect(),
                        agents: snap.agents,
                        agents_by_state: snap.agents_by_state,
                    };
                    if tx.send(Arc::new(board)).is_err() {
                        break;
                    }
                }
                e = ended.recv() => match e {
                    Ok(r) => {
                        today.roll(now_ms());
                        today.add(&r);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "wallboard fell behind the event stream; today's figures may be short");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    });
    rx
}
