//! Runs the ACD: feeds it events one at a time, executes its plugin and timer
//! commands, records what it reports, and hands call-control commands (offer,
//! bridge, hang up...) to the SIP adapter through a channel.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

use crate::acd::{Acd, AcdEvent, AcdSnapshot, CallEvent, Command, Output, TimerId};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::plugins::bindings::RouteDecision;
use crate::plugins::{HookCall, HookOutput, PluginHost};
use crate::store::{QueueLogEntry, Store};

/// Talks to a running center.
#[derive(Clone)]
pub struct CenterHandle {
    tx: mpsc::UnboundedSender<CallEvent>,
    events: broadcast::Sender<AcdEvent>,
    queries: mpsc::UnboundedSender<tokio::sync::oneshot::Sender<AcdSnapshot>>,
}

impl CenterHandle {
    /// Feed an event (from SIP, media, the agent API...).
    pub fn send(&self, event: CallEvent) {
        if self.tx.send(event).is_err() {
            tracing::error!("call center loop has stopped; event dropped");
        }
    }

    /// Queues and agents as they are now (None if the center has stopped).
    pub async fn snapshot(&self) -> Option<AcdSnapshot> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queries.send(tx).ok()?;
        rx.await.ok()
    }

    /// What the center reports (for the API's event stream).
    pub fn subscribe(&self) -> broadcast::Receiver<AcdEvent> {
        self.events.subscribe()
    }
}

/// Start the center's loop. `calls` receives the commands the SIP adapter must
/// carry out; `router` names the router plugin asked for every decision.
pub fn spawn(
    mut acd: Acd,
    plugins: PluginHost,
    store: Store,
    router: String,
    calls: mpsc::UnboundedSender<Command>,
    metrics: Arc<Metrics>,
) -> CenterHandle {
    let (tx, mut rx) = mpsc::unbounded_channel::<CallEvent>();
    let (queries, mut query_rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(1024);
    let handle = CenterHandle {
        tx: tx.clone(),
        events: events.clone(),
        queries,
    };
    let recorder = spawn_recorder(store);
    tokio::spawn(async move {
        let mut timers: HashMap<TimerId, AbortHandle> = HashMap::new();
        loop {
            let event = tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => e,
                    None => break,
                },
                Some(reply) = query_rx.recv() => {
                    let _ = reply.send(acd.snapshot(now_ms()));
                    continue;
                }
            };
            if let CallEvent::TimerFired { timer } = &event {
                timers.remove(timer);
            }
            for out in acd.handle(now_ms(), event) {
                match out {
                    Output::Command(cmd) => {
                        execute(cmd, &plugins, &router, &tx, &calls, &mut timers)
                    }
                    Output::Event(e) => {
                        if let AcdEvent::CallEnded(r) = &e {
                            metrics.call_ended(r.disposition.as_str());
                        }
                        if matches!(e, AcdEvent::CallEnded(_) | AcdEvent::QueueLog { .. })
                            && recorder.send(e.clone()).is_err()
                        {
                            tracing::error!("call record writer is gone; record dropped");
                        }
                        if let AcdEvent::Warning { call_id, message } = &e {
                            tracing::warn!(
                                call_id = call_id.as_deref().unwrap_or("-"),
                                "{message}"
                            );
                        }
                        let _ = events.send(e);
                    }
                }
            }
        }
    });
    handle
}

fn execute(
    cmd: Command,
    plugins: &PluginHost,
    router: &str,
    tx: &mpsc::UnboundedSender<CallEvent>,
    calls: &mpsc::UnboundedSender<Command>,
    timers: &mut HashMap<TimerId, AbortHandle>,
) {
    match cmd {
        Command::AskRouter { call_id, info } => {
            let (plugins, router, tx) = (plugins.clone(), router.to_owned(), tx.clone());
            tokio::spawn(async move {
                let event = match plugins.route(&router, *info).await {
                    Ok((decision, inv)) => CallEvent::RouteDecided {
                        call_id,
                        decision,
                        plugin: router,
                        plugin_version: inv.hash,
                    },
                    // No such router at all: the call cannot be placed.
                    Err(e) => CallEvent::RouteDecided {
                        call_id,
                        decision: RouteDecision::Reject(crate::plugins::bindings::Rejection {
                            code: 503,
                            reason: "Service Unavailable".into(),
                        }),
                        plugin: router,
                        plugin_version: format!("unavailable: {e}"),
                    },
                };
                let _ = tx.send(event);
            });
        }
        Command::AskRanking {
            call_id,
            queue,
            info,
            candidates,
        } => {
            let (plugins, router, tx) = (plugins.clone(), router.to_owned(), tx.clone());
            tokio::spawn(async move {
                let ranking = match plugins
                    .invoke(
                        &router,
                        HookCall::RankAgents {
                            call: *info,
                            queue,
                            candidates,
                        },
                    )
                    .await
                {
                    Ok(inv) => match inv.output {
                        HookOutput::RankAgents(r) => r,
                        _ => vec![],
                    },
                    Err(_) => vec![],
                };
                let _ = tx.send(CallEvent::AgentsRanked { call_id, ranking });
            });
        }
        Command::StartTimer { timer, at_ms } => {
            let tx = tx.clone();
            let fire = timer.clone();
            let delay = std::time::Duration::from_millis(at_ms.saturating_sub(now_ms()));
            let task = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(CallEvent::TimerFired { timer: fire });
            });
            timers.insert(timer, task.abort_handle());
        }
        Command::CancelTimer { timer } => {
            if let Some(t) = timers.remove(&timer) {
                t.abort();
            }
        }
        other => {
            if calls.send(other).is_err() {
                tracing::error!("SIP adapter is gone; call command dropped");
            }
        }
    }
}

/// Call records and the queue log are written by their own thread: a
/// flush (fsync) per call on the center's task would stall every call behind
/// the disk. The thread takes everything queued, writes it and flushes once
/// (group commit), so a record is durable a few milliseconds after its call
/// ended, and the center never waits.
fn spawn_recorder(store: Store) -> std::sync::mpsc::Sender<AcdEvent> {
    let (tx, rx) = std::sync::mpsc::channel::<AcdEvent>();
    let spawned = std::thread::Builder::new()
        .name("call-records".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut ended = 0;
                for e in std::iter::once(first).chain(rx.try_iter()) {
                    let result = match &e {
                        AcdEvent::CallEnded(r) => {
                            ended += 1;
                            store.insert_call(r)
                        }
                        AcdEvent::QueueLog {
                            at_ms,
                            call_id,
                            queue,
                            agent,
                            kind,
                        } => store.log_queue_event(&QueueLogEntry {
                            at_ms: *at_ms,
                            call_id: call_id.clone(),
                            queue: queue.clone(),
                            agent: agent.clone(),
                            kind: *kind,
                        }),
                        _ => Ok(()),
                    };
                    if let Err(err) = result {
                        tracing::error!(error = %err, "cannot store call center record");
                    }
                }
                if ended > 0
                    && let Err(err) = store.flush_calls()
                {
                    tracing::error!(error = %err, "cannot flush call records");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the call record writer");
    }
    tx
}
