//! ctihost's driver: runs the call-center core (`ctihost-acd`).
//!
//! It feeds the core its events one at a time, sleeps until the core's next
//! timer deadline, puts the core's asks to the plugins (the answers come
//! back as events with the plugin's version), records what the core
//! reports, and hands call-control and media commands to the SIP room
//! through a channel.
//!
//! # Map
//!
//! * [`spawn`] - the loop, and the [`CenterHandle`] the API and the SIP
//!   room talk to it through (events in, snapshots, call control, the
//!   event stream [`Published`]).
//! * [`ScreenPop`] - the cards built for agents a call is offered to.
//! * `recording.rs` - the recording policy's questions, one per call at a
//!   time ([`PolicyAnswer`], [`PolicyRefusal`]).
//! * `watchers.rs` - who watches which agent's cards ([`Watchers`]).
//! * The record writer: call records and logs to the store in group
//!   commits; [`CenterHandle::flushed`] says when all ended calls are on
//!   disk.
//! * [`CenterMetrics`] - what it counts, as a trait the host implements.
//!
//! Arrows: the core, the plugin runtime, the store and the ground floor;
//! never SIP, media or the web (it talks to SIP through a channel of the
//! core's commands).

use std::collections::HashMap;
use std::sync::Arc;

mod admission;
mod recording;
mod watchers;
use admission::Admission;
pub use admission::MAX_UNREAD_ARRIVALS;
pub use recording::{PolicyAnswer, PolicyRefusal};
pub use watchers::{Watchers, Watching};

use tokio::sync::{broadcast, mpsc};

use serde::Serialize;
use tokio::sync::oneshot;

use ctihost_acd::{Acd, AcdEvent, AcdSnapshot, Ask, CallEvent, CallId, Command, Output, Refusal};
use ctihost_acd::{AgentCandidate, AgentInfo, CallInfo, Card, CardField, Rejection, RouteDecision};
use ctihost_ground::clock::{now_ms, now_us};
use ctihost_plugins::PluginHost;
use ctihost_store::{QueueLogEntry, Store};

/// What the center counts for `/metrics`, as a trait it owns: the host's
/// metrics implement it.
pub trait CenterMetrics: Send + Sync {
    /// A call ended, with this disposition.
    fn call_ended(&self, disposition: &str);
    /// A new call was refused at the door: [`MAX_UNREAD_ARRIVALS`] were
    /// waiting unread.
    fn arrival_refused(&self);
}

/// What the center tells its listeners (the API's event stream).
#[derive(Debug, Clone)]
pub enum Published {
    Acd(AcdEvent),
    Card(Box<ScreenPop>),
}

/// A screen-pop card for the agent a call is offered to. The first one is
/// built by the host from what it knows (`provisional`) and sent before the
/// phone rings; the screen-pop plugin's card replaces it when it is ready.
#[derive(Debug, Clone, Serialize)]
pub struct ScreenPop {
    pub call_id: CallId,
    pub agent: String,
    pub provisional: bool,
    pub card: Card,
    /// The plugin failed and `card` is its fallback (why, in words).
    pub failure: Option<String>,
    /// Plugin that built the card, and its content hash (absent if provisional).
    pub plugin: Option<String>,
    pub plugin_version: Option<String>,
    /// When the call's INVITE reached the center, microseconds since the epoch
    /// (latency of the card = arrival on the desktop - this).
    pub call_arrived_us: u64,
}

type ControlRequest = (CallEvent, oneshot::Sender<Result<(), Refusal>>);

enum Query {
    Snapshot(oneshot::Sender<AcdSnapshot>),
    CallInfo(CallId, oneshot::Sender<Option<CallInfo>>),
    /// An agent's "pause"/"resume" for the recording policy.
    Recording(CallId, String, recording::PolicyReply),
    /// Answered once every record of calls ended so far is on disk.
    Flushed(oneshot::Sender<()>),
}

/// What the record writer thread is given.
enum ToWriter {
    Event(u64, AcdEvent),
    /// Write everything before this, flush, then answer.
    Barrier(oneshot::Sender<()>),
}

/// Talks to a running center.
#[derive(Clone)]
pub struct CenterHandle {
    tx: mpsc::UnboundedSender<CallEvent>,
    events: broadcast::Sender<Published>,
    /// Only the records of ended calls: listeners that need no more are not
    /// woken for every event of every call.
    ended: broadcast::Sender<Arc<ctihost_acd::CallRecord>>,
    queries: mpsc::UnboundedSender<Query>,
    control: mpsc::UnboundedSender<ControlRequest>,
    watchers: Arc<Watchers>,
    /// New calls not yet read by the loop (the channel itself is unbounded
    /// so that no other event is ever refused).
    admission: Arc<Admission>,
    metrics: Arc<dyn CenterMetrics>,
}

impl CenterHandle {
    /// Register an event-stream watcher (see [`Watchers`]).
    pub fn watch(&self, agent: Option<&str>) -> Watching {
        self.watchers.watch(agent)
    }

    /// Feed an event (from SIP, media, the agent API...). Always taken; a
    /// new call from the network goes through [`CenterHandle::arrive`].
    pub fn send(&self, event: CallEvent) {
        if matches!(event, CallEvent::Arrived { .. }) {
            self.admission.enter();
        }
        if self.tx.send(event).is_err() {
            tracing::error!("call center loop has stopped; event dropped");
        }
    }

    /// Feed a new call from the network, unless [`MAX_UNREAD_ARRIVALS`]
    /// wait unread already: then it is refused (false) and the caller is
    /// to be turned away.
    pub fn arrive(&self, event: CallEvent) -> bool {
        if !self.admission.try_enter() {
            self.metrics.arrival_refused();
            ctihost_ground::log_limit::warn_every_second(
                "center-arrivals-full",
                &format!(
                    "new call refused: {MAX_UNREAD_ARRIVALS} new calls wait unread at the call center (it is behind)"
                ),
            );
            return false;
        }
        if self.tx.send(event).is_err() {
            tracing::error!("call center loop has stopped; event dropped");
            self.admission.leave();
            return false;
        }
        true
    }

    /// Queues and agents as they are now (None if the center has stopped).
    pub async fn snapshot(&self) -> Option<AcdSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.queries.send(Query::Snapshot(tx)).ok()?;
        rx.await.ok()
    }

    /// A live call as plugins see it (None: no such call, or stopped).
    pub async fn call_info(&self, call_id: &str) -> Option<CallInfo> {
        let (tx, rx) = oneshot::channel();
        self.queries
            .send(Query::CallInfo(call_id.to_owned(), tx))
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Ask the call's recording policy for a pause or resume; the answer
    /// says what it decided (Err: no live call or no policy, in words).
    pub async fn recording_request(
        &self,
        call_id: &str,
        request: &str,
    ) -> Result<PolicyAnswer, PolicyRefusal> {
        let (tx, rx) = oneshot::channel();
        self.queries
            .send(Query::Recording(call_id.to_owned(), request.to_owned(), tx))
            .map_err(|_| PolicyRefusal::Stopped)?;
        rx.await.map_err(|_| PolicyRefusal::Stopped)?
    }

    /// Apply a request of the API if the center's state allows it; the
    /// refusal says why not.
    pub async fn control(&self, event: CallEvent) -> Result<(), Refusal> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send((event, tx))
            .map_err(|_| Refusal::Stopped)?;
        rx.await.map_err(|_| Refusal::Stopped)?
    }

    /// Wait until the record of every call that ended before this call is
    /// durable (false: the center or its writer has stopped).
    pub async fn flushed(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.queries.send(Query::Flushed(tx)).is_err() {
            return false;
        }
        rx.await.is_ok()
    }

    /// What the center reports (for the API's event stream).
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.events.subscribe()
    }

    /// The record of every call as it ends.
    pub fn subscribe_ended(&self) -> broadcast::Receiver<Arc<ctihost_acd::CallRecord>> {
        self.ended.subscribe()
    }
}

/// Plugins the center asks besides the router.
#[derive(Debug, Clone, Default)]
pub struct CenterPlugins {
    pub router: String,
    /// Builds the screen-pop card; None: the host's provisional card only.
    pub screen_pop: Option<String>,
    /// Decides what is recorded; None: nothing is.
    pub recording_policy: Option<String>,
}

/// Start the center's loop: it feeds the core its events, wakes it at its
/// next timer deadline, puts its asks to the plugins named in `which` and
/// sends `calls` what the SIP side carries out (call control and media).
pub fn spawn(
    mut acd: Acd,
    plugins: PluginHost,
    store: Store,
    which: CenterPlugins,
    calls: mpsc::UnboundedSender<Command>,
    metrics: Arc<dyn CenterMetrics>,
    mut shutdown: ctihost_ground::shutdown::Shutdown,
) -> CenterHandle {
    let (tx, mut rx) = mpsc::unbounded_channel::<CallEvent>();
    let (queries, mut query_rx) = mpsc::unbounded_channel();
    let (control, mut control_rx) = mpsc::unbounded_channel::<ControlRequest>();
    let (events, _) = broadcast::channel(4096);
    let (ended, _) = broadcast::channel(4096);
    let watchers = Arc::new(Watchers::default());
    let admission = Arc::new(Admission::default());
    let handle = CenterHandle {
        tx: tx.clone(),
        events: events.clone(),
        queries,
        control,
        watchers: watchers.clone(),
        ended: ended.clone(),
        admission: admission.clone(),
        metrics: metrics.clone(),
    };
    let (recorder, writer) = spawn_recorder(store);
    let router = which.router.clone();
    let mut policies =
        recording::Policies::new(plugins.clone(), which.recording_policy.clone(), tx.clone());
    tokio::spawn(async move {
        // When each live call's INVITE reached the center (screen-pop latency).
        let mut arrivals: HashMap<CallId, u64> = HashMap::new();
        loop {
            let wake = acd.next_deadline();
            let event = tokio::select! {
                () = shutdown.recv() => break,
                e = rx.recv() => match e {
                    Some(e) => {
                        if matches!(e, CallEvent::Arrived { .. }) {
                            admission.leave();
                        }
                        Some(e)
                    }
                    None => break,
                },
                () = sleep_until_ms(wake) => None,
                Some(query) = query_rx.recv() => {
                    match query {
                        Query::Snapshot(reply) => {
                            let _ = reply.send(acd.snapshot(now_ms()));
                            continue;
                        }
                        Query::CallInfo(call_id, reply) => {
                            let _ = reply.send(acd.call_info(now_ms(), &call_id));
                            continue;
                        }
                        Query::Flushed(reply) => {
                            if recorder.send(ToWriter::Barrier(reply)).is_err() {
                                tracing::error!("call record writer is gone");
                            }
                            continue;
                        }
                        // The core puts the request to the policy in turn;
                        // the reply waits for that question's answer.
                        Query::Recording(call_id, request, reply) => {
                            match acd.recording_request(&call_id) {
                                Ok(()) => {
                                    policies.expect_request(&call_id, reply);
                                    Some(CallEvent::RecordingRequested { call_id, request })
                                }
                                Err(why) => {
                                    let _ = reply.send(Err(why.into()));
                                    continue;
                                }
                            }
                        }
                    }
                }
                Some((event, reply)) = control_rx.recv() => {
                    match acd.check(&event) {
                        Ok(()) => {
                            let _ = reply.send(Ok(()));
                            Some(event)
                        }
                        Err(refusal) => {
                            let _ = reply.send(Err(refusal));
                            continue;
                        }
                    }
                }
            };
            if let Some(CallEvent::Arrived { call_id, .. }) = &event {
                arrivals.insert(call_id.clone(), now_us());
            }
            let outputs = match event {
                Some(event) => acd.handle(now_ms(), event),
                None => acd.handle_timeout(now_ms()),
            };
            for out in outputs {
                match out {
                    Output::Ask(Ask::RecordingPolicy {
                        call_id,
                        info,
                        event,
                        paused,
                    }) => policies.ask(call_id, *info, event, paused),
                    Output::Ask(Ask::Router { call_id, info }) => {
                        ask_router(&plugins, &router, &tx, call_id, *info)
                    }
                    Output::Ask(Ask::Ranking {
                        call_id,
                        queue,
                        info,
                        candidates,
                    }) => ask_ranking(&plugins, &router, &tx, call_id, queue, *info, candidates),
                    Output::Call(c) => to_sip(&calls, Command::Call(c)),
                    Output::Media(m) => to_sip(&calls, Command::Media(m)),
                    Output::Event(e) => {
                        if let AcdEvent::CallEnded(r) = &e {
                            metrics.call_ended(r.disposition.as_str());
                            if ended.receiver_count() > 0 {
                                let _ = ended.send(Arc::new((**r).clone()));
                            }
                            arrivals.remove(&r.call_id);
                            policies.ended(&r.call_id);
                        }
                        if matches!(
                            e,
                            AcdEvent::CallEnded(_)
                                | AcdEvent::QueueLog { .. }
                                | AcdEvent::AgentStateChanged { .. }
                                | AcdEvent::CallArrived { .. }
                                | AcdEvent::CallQueued { .. }
                                | AcdEvent::CallOffered { .. }
                                | AcdEvent::CallConnected { .. }
                        ) && recorder.send(ToWriter::Event(now_ms(), e.clone())).is_err()
                        {
                            tracing::error!("call record writer is gone; record dropped");
                        }
                        if let AcdEvent::Warning { call_id, message } = &e {
                            tracing::warn!(
                                call_id = call_id.as_deref().unwrap_or("-"),
                                "{message}"
                            );
                        }
                        let offered = match &e {
                            AcdEvent::CallOffered {
                                call_id,
                                agent,
                                call,
                                agent_info,
                                ..
                            } => Some((
                                call_id.clone(),
                                agent.clone(),
                                call.clone(),
                                agent_info.clone(),
                            )),
                            _ => None,
                        };
                        let _ = events.send(Published::Acd(e));
                        if let Some((call_id, agent, call, agent_info)) =
                            offered.filter(|(_, agent, _, _)| watchers.wants(agent))
                        {
                            let arrived = arrivals.get(&call_id).copied().unwrap_or_else(now_us);
                            screen_pop(
                                &plugins,
                                which.screen_pop.as_deref(),
                                &events,
                                &tx,
                                ScreenPop {
                                    call_id,
                                    agent,
                                    provisional: true,
                                    card: provisional_card(&call),
                                    failure: None,
                                    plugin: None,
                                    plugin_version: None,
                                    call_arrived_us: arrived,
                                },
                                *call,
                                agent_info,
                            );
                        }
                    }
                }
            }
        }
        // What was queued for the writer is written before the host exits:
        // the thread ends when its channel closes, after its last batch.
        drop(recorder);
        if let Some(writer) = writer
            && tokio::task::spawn_blocking(move || writer.join())
                .await
                .is_err()
        {
            tracing::error!("the call record writer did not finish");
        }
        drop(shutdown);
    });
    handle
}

/// Sleep until `at_ms` (ms since the epoch); None: for ever.
async fn sleep_until_ms(at_ms: Option<u64>) {
    match at_ms {
        Some(at) => {
            tokio::time::sleep(std::time::Duration::from_millis(
                at.saturating_sub(now_ms()),
            ))
            .await
        }
        None => std::future::pending().await,
    }
}

/// Send the provisional card now and ask the screen-pop plugin for the full
/// one; it follows as an update (within the plugin's deadline, or its fallback).
fn screen_pop(
    plugins: &PluginHost,
    plugin: Option<&str>,
    events: &broadcast::Sender<Published>,
    center: &mpsc::UnboundedSender<CallEvent>,
    provisional: ScreenPop,
    call: CallInfo,
    agent: AgentInfo,
) {
    let _ = events.send(Published::Card(Box::new(provisional.clone())));
    let Some(name) = plugin else { return };
    let (plugins, name, events, center) = (
        plugins.clone(),
        name.to_owned(),
        events.clone(),
        center.clone(),
    );
    tokio::spawn(async move {
        let (card, failure, version) = match plugins.build_card(&name, call, agent).await {
            Ok((card, inv)) => {
                // The card decided what the agent saw: its version goes into the record.
                let _ = center.send(CallEvent::CardBuilt {
                    call_id: provisional.call_id.clone(),
                    plugin: name.clone(),
                    plugin_version: inv.hash.clone(),
                });
                (card, inv.failure.map(|f| f.message), Some(inv.hash))
            }
            Err(e) => {
                tracing::warn!(call_id = provisional.call_id, plugin = name, error = %e, "no screen-pop card");
                return;
            }
        };
        let _ = events.send(Published::Card(Box::new(ScreenPop {
            provisional: false,
            card,
            failure,
            plugin: Some(name),
            plugin_version: version,
            ..provisional
        })));
    });
}

/// The card the host can build at once, with no CRM: who calls, for what.
fn provisional_card(call: &CallInfo) -> Card {
    let mut fields = vec![CardField {
        label: "Caller".into(),
        value: call.caller.clone(),
    }];
    fields.push(CardField {
        label: "Dialed".into(),
        value: call.dialed.clone(),
    });
    for step in call
        .ivr
        .iter()
        .filter(|s| !s.sensitive && !s.digits.is_empty())
    {
        fields.push(CardField {
            label: format!("IVR {}", step.step),
            value: step.digits.clone(),
        });
    }
    Card {
        title: match &call.customer {
            Some(c) => c.name.clone(),
            None => format!("Call from {}", call.caller),
        },
        fields,
        links: vec![],
        notes: vec!["Looking the caller up...".into()],
    }
}

fn to_sip(calls: &mpsc::UnboundedSender<Command>, cmd: Command) {
    if calls.send(cmd).is_err() {
        tracing::error!("SIP adapter is gone; call command dropped");
    }
}

/// Ask the router for a decision; it comes back as an event.
fn ask_router(
    plugins: &PluginHost,
    router: &str,
    tx: &mpsc::UnboundedSender<CallEvent>,
    call_id: CallId,
    info: CallInfo,
) {
    let (plugins, router, tx) = (plugins.clone(), router.to_owned(), tx.clone());
    tokio::spawn(async move {
        let event = match plugins.route(&router, info).await {
            Ok((decision, inv)) => CallEvent::RouteDecided {
                call_id,
                decision,
                plugin: router,
                plugin_version: inv.hash,
            },
            // No such router at all: the call cannot be placed.
            Err(e) => CallEvent::RouteDecided {
                call_id,
                decision: RouteDecision::Reject(Rejection {
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

/// Ask the router to rank a queued call's free agents; back as an event.
fn ask_ranking(
    plugins: &PluginHost,
    router: &str,
    tx: &mpsc::UnboundedSender<CallEvent>,
    call_id: CallId,
    queue: String,
    info: CallInfo,
    candidates: Vec<AgentCandidate>,
) {
    let (plugins, router, tx) = (plugins.clone(), router.to_owned(), tx.clone());
    tokio::spawn(async move {
        let (ranking, plugin_version) =
            match plugins.rank_agents(&router, info, queue, candidates).await {
                Ok((ranking, inv)) => (ranking, Some(inv.hash)),
                // The router is gone (its calls get 503 already): the
                // queue's own order serves.
                Err(_) => (vec![], None),
            };
        let _ = tx.send(CallEvent::AgentsRanked {
            call_id,
            ranking,
            plugin: router,
            plugin_version,
        });
    });
}

/// What is known of each live call, kept in the store as it changes so that
/// a crash leaves an `interrupted` record for it at the next start
/// (`ended_ms` holds the time of the last event seen). The record writer owns
/// the map: the store is only written, never read back.
#[derive(Default)]
struct LiveCalls(std::collections::HashMap<ctihost_acd::CallId, ctihost_acd::CallRecord>);

impl LiveCalls {
    fn track(
        &mut self,
        store: &Store,
        at_ms: u64,
        e: &AcdEvent,
    ) -> Result<(), ctihost_store::StoreError> {
        let (call_id, change): (&ctihost_acd::CallId, &dyn Fn(&mut ctihost_acd::CallRecord)) =
            match e {
                AcdEvent::CallArrived {
                    call_id,
                    caller,
                    dialed,
                } => {
                    let r = ctihost_acd::CallRecord {
                        call_id: call_id.clone(),
                        caller: caller.clone(),
                        dialed: dialed.clone(),
                        trunk: String::new(),
                        arrived_ms: at_ms,
                        queued_ms: None,
                        offered_ms: None,
                        answered_ms: None,
                        ended_ms: at_ms,
                        queue: None,
                        agent: None,
                        disposition: ctihost_acd::Disposition::Interrupted,
                        wait_secs: 0.0,
                        talk_secs: 0.0,
                        overflowed_from: vec![],
                        plugin_versions: Default::default(),
                        cause: String::new(),
                    };
                    store.put_live_call(&r)?;
                    self.0.insert(call_id.clone(), r);
                    return Ok(());
                }
                // The store's entry goes once the record is written (the writer
                // does both, in that order).
                AcdEvent::CallEnded(r) => {
                    self.0.remove(&r.call_id);
                    return Ok(());
                }
                AcdEvent::CallQueued { call_id, queue, .. } => (call_id, &|r| {
                    r.queue = Some(queue.clone());
                    r.queued_ms.get_or_insert(at_ms);
                }),
                AcdEvent::CallOffered { call_id, .. } => (call_id, &|r| {
                    r.offered_ms.get_or_insert(at_ms);
                }),
                AcdEvent::CallConnected { call_id, agent } => (call_id, &|r| {
                    r.agent = Some(agent.clone());
                    r.answered_ms.get_or_insert(at_ms);
                }),
                _ => return Ok(()),
            };
        match self.0.get_mut(call_id) {
            Some(r) => {
                change(r);
                r.ended_ms = at_ms;
                store.put_live_call(r)
            }
            None => Ok(()),
        }
    }
}

/// A busy writer waits this long after its last flush before the next
/// (group commit): under load one flush and a few keys cover several calls
/// instead of one each (an fsync per event, and a key per call in each of
/// three trees, which sled holds memory for). An idle writer writes at once.
const GROUP_COMMIT_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

/// Messages for one write: `first`, what is queued, and when the last
/// flush was under [`GROUP_COMMIT_WINDOW`] ago, what arrives until then.
fn gather(
    rx: &std::sync::mpsc::Receiver<ToWriter>,
    first: ToWriter,
    last_flush: std::time::Instant,
) -> Vec<ToWriter> {
    let mut batch = vec![first];
    let until = last_flush + GROUP_COMMIT_WINDOW;
    loop {
        batch.extend(rx.try_iter());
        let now = std::time::Instant::now();
        if now >= until {
            return batch;
        }
        match rx.recv_timeout(until - now) {
            Ok(msg) => batch.push(msg),
            Err(_) => return batch,
        }
    }
}

/// Call records and the queue log are written by their own thread: a
/// flush (fsync) per call on the center's task would stall every call behind
/// the disk. The thread takes everything queued, writes it and flushes once
/// (group commit), so a record is durable a few milliseconds after its call
/// ended, and the center never waits.
fn spawn_recorder(
    store: Store,
) -> (
    std::sync::mpsc::Sender<ToWriter>,
    Option<std::thread::JoinHandle<()>>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<ToWriter>();
    let spawned = std::thread::Builder::new()
        .name("call-records".into())
        .spawn(move || {
            let mut live = LiveCalls::default();
            let started = std::time::Instant::now();
            let mut last_flush = started.checked_sub(GROUP_COMMIT_WINDOW).unwrap_or(started);
            while let Ok(first) = rx.recv() {
                let batch = gather(&rx, first, last_flush);
                let mut to_flush = 0;
                let mut barriers = Vec::new();
                // One key per log for the whole batch, written before the
                // batch's records: whoever sees a record sees its log lines.
                let mut queue_log = Vec::new();
                let mut agent_log = Vec::new();
                let mut ended = Vec::new();
                for msg in batch {
                    let (at_ms, e) = match msg {
                        ToWriter::Event(at_ms, e) => (at_ms, e),
                        ToWriter::Barrier(reply) => {
                            barriers.push(reply);
                            to_flush += 1;
                            continue;
                        }
                    };
                    if let Err(err) = live.track(&store, at_ms, &e) {
                        tracing::error!(error = %err, "cannot store what is known of a live call");
                    }
                    if matches!(
                        e,
                        AcdEvent::CallArrived { .. } | AcdEvent::CallConnected { .. }
                    ) {
                        to_flush += 1; // durable at once: a crash must not lose it
                    }
                    match e {
                        AcdEvent::AgentStateChanged { agent, state } => {
                            agent_log.push(ctihost_store::AgentStateEntry {
                                at_ms,
                                agent,
                                state: state.name().to_owned(),
                            })
                        }
                        AcdEvent::CallEnded(r) => {
                            to_flush += 1;
                            ended.push(r);
                        }
                        AcdEvent::QueueLog {
                            at_ms,
                            call_id,
                            queue,
                            agent,
                            kind,
                        } => queue_log.push(QueueLogEntry {
                            at_ms,
                            call_id,
                            queue,
                            agent,
                            kind,
                        }),
                        _ => {}
                    }
                }
                if let Err(err) = store
                    .log_queue_events(&queue_log)
                    .and_then(|()| store.log_agent_states(&agent_log))
                {
                    tracing::error!(error = %err, "cannot store the queue or agent-state log");
                }
                if let Err(err) = store.insert_calls(&ended) {
                    for r in &ended {
                        tracing::error!(call_id = %r.call_id, error = %err, "cannot store call record");
                    }
                } else {
                    for r in &ended {
                        if let Err(err) = store.end_live_call(&r.call_id) {
                            tracing::error!(call_id = %r.call_id, error = %err, "cannot end the live-call entry");
                        }
                    }
                }
                if to_flush > 0 {
                    if let Err(err) = store.flush_calls() {
                        tracing::error!(error = %err, "cannot flush call records");
                    }
                    last_flush = std::time::Instant::now();
                }
                for reply in barriers {
                    let _ = reply.send(());
                }
            }
        });
    match spawned {
        Ok(thread) => (tx, Some(thread)),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the call record writer");
            (tx, None)
        }
    }
}
