//! Admin endpoints for plugins: list, reload, rollback, history.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::auth::{AdminToken, require_admin};
use crate::plugins::{PluginHost, Trigger};
use crate::sip::endpoint::SipEndpoint;

/// What the admin endpoints reach.
#[derive(Clone)]
pub struct AdminState {
    pub plugins: PluginHost,
    pub store: crate::store::Store,
    pub sip: Option<std::sync::Arc<SipEndpoint>>,
    pub center: Option<crate::center::CenterHandle>,
    pub media: Option<std::sync::Arc<crate::media::Media>>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Service-level threshold seconds by queue (reports).
    pub thresholds: std::collections::HashMap<String, u32>,
    /// Where report intervals begin.
    pub calendar: crate::calendar::Calendar,
    /// Agents by queue (a report for one queue keeps its agents).
    pub members: std::collections::HashMap<String, std::collections::BTreeSet<String>>,
    /// The watched plugin directory, if any (named in answers that need it).
    pub plugin_dir: Option<std::path::PathBuf>,
    /// Asks for the host's stop (`POST /admin/drain`).
    pub stop: crate::stop_request::StopHandle,
    /// Opens sealed recordings (None: recordings are plain WAV).
    pub recording_keys: Option<std::sync::Arc<crate::media::sealed::KeyRing>>,
}

#[derive(Deserialize)]
struct By {
    /// "cli" when the CLI calls; recorded in the version history.
    by: Option<String>,
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
    /// Comma-separated outcomes to keep: loaded, rejected, rolled-back, unloaded, unchanged.
    outcome: Option<String>,
    /// Entries older than this, ms since the epoch (the next page back).
    before_ms: Option<u64>,
}

fn history_answer(
    host: &crate::plugins::PluginHost,
    plugin: Option<&str>,
    q: &HistoryQuery,
) -> Response {
    let filter = crate::store::HistoryFilter {
        plugin,
        outcomes: q.outcome.as_deref().map(|o| {
            o.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        }),
        before_ms: q.before_ms,
    };
    match host.history_where(&filter, q.limit.unwrap_or(100).min(10_000)) {
        Ok(h) => Json(h).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn trigger(by: &By) -> Trigger {
    match by.by.as_deref() {
        Some("cli") => Trigger::Cli,
        _ => Trigger::Admin,
    }
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

pub fn router(state: AdminState, token: AdminToken) -> axum::Router {
    axum::Router::new()
        .route("/admin/plugins", get(list))
        .route("/admin/plugins/history", get(all_history))
        .route("/admin/plugins/{name}/reload", post(reload))
        .route("/admin/plugins/{name}/rollback", post(rollback))
        .route("/admin/plugins/{name}/history", get(history))
        .route("/admin/cdr", get(cdr))
        .route("/admin/queue-log", get(queue_log))
        .route("/metrics", get(metrics))
        .route("/admin/reports", get(reports))
        .route("/admin/sip/registrations", get(registrations))
        .route("/admin/media", get(media))
        .route("/admin/recordings", get(recordings))
        .route("/admin/recordings/purge", post(purge_recordings))
        .route("/admin/recordings/{call_id}", get(recording))
        .route("/admin/recordings/{call_id}/audio", get(recording_audio))
        .route("/admin/drain", get(drain_status).post(drain))
        .layer(axum::middleware::from_fn_with_state(token, require_admin))
        .with_state(state)
}

async fn list(State(AdminState { plugins: host, .. }): State<AdminState>) -> Response {
    Json(host.list()).into_response()
}

async fn reload(
    State(AdminState {
        plugins: host,
        plugin_dir,
        ..
    }): State<AdminState>,
    Path(name): Path<String>,
    Query(by): Query<By>,
) -> Response {
    let loaded: Vec<String> = host.list().into_iter().map(|p| p.name).collect();
    if !loaded.contains(&name) {
        let how = match &plugin_dir {
            Some(d) => format!(
                "put {name}.toml and its component into the plugin directory {} (the host loads it by itself)",
                d.display()
            ),
            None => "this host has no plugin directory: set [plugins] dir in its config, put the plugin's manifest and component there, and restart".to_owned(),
        };
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no plugin named {name:?} is loaded (loaded: {}); to add one, {how}",
                loaded.join(", ")
            ),
        );
    }
    match host.reload(&name, trigger(&by)).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn rollback(
    State(AdminState { plugins: host, .. }): State<AdminState>,
    Path(name): Path<String>,
    Query(by): Query<By>,
) -> Response {
    use crate::plugins::registry::RollbackError;
    let t = match trigger(&by) {
        Trigger::Cli => Trigger::Cli,
        _ => Trigger::Rollback,
    };
    match host.rollback(&name, t) {
        Ok(report) => Json(report).into_response(),
        Err(e @ RollbackError::NoSuchPlugin(_)) => error(StatusCode::NOT_FOUND, e),
        Err(e @ RollbackError::NoPrevious(_)) => error(StatusCode::CONFLICT, e),
    }
}

async fn history(
    State(AdminState { plugins: host, .. }): State<AdminState>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    history_answer(&host, Some(&name), &q)
}

async fn all_history(
    State(AdminState { plugins: host, .. }): State<AdminState>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    history_answer(&host, None, &q)
}

#[derive(Deserialize)]
struct CdrQuery {
    /// Calls that ended at or after this time, ms since the epoch.
    since_ms: Option<u64>,
    /// At most this many (10,000 a page at most).
    limit: Option<usize>,
    /// The next page: records after this call id's (which ended at since_ms).
    after: Option<String>,
    /// json (default) or csv.
    format: Option<String>,
}

async fn cdr(
    State(AdminState { store, .. }): State<AdminState>,
    Query(q): Query<CdrQuery>,
) -> Response {
    let records = match store.calls_page(
        q.since_ms.unwrap_or(0),
        q.after.as_deref(),
        q.limit.unwrap_or(10_000).min(10_000),
    ) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    json_or_csv(q.format.as_deref(), &records, |r| {
        crate::store::export::to_csv(r)
    })
}

/// `format=json` (the default) or `format=csv`, for endpoints that offer both.
fn json_or_csv<T: serde::Serialize>(
    format: Option<&str>,
    value: &T,
    to_csv: impl FnOnce(&T) -> Result<String, csv::Error>,
) -> Response {
    match format.unwrap_or("json") {
        "json" => Json(value).into_response(),
        "csv" => match to_csv(value) {
            Ok(text) => (
                [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                text,
            )
                .into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        other => error(
            StatusCode::BAD_REQUEST,
            format!("format {other:?} is not json or csv"),
        ),
    }
}

#[derive(Deserialize)]
struct SinceQuery {
    /// Entries at or after this time, ms since the epoch.
    since_ms: Option<u64>,
    limit: Option<usize>,
}

/// The queue event log: enter queue, offered, ring-no-answer, connect, abandon, complete.
async fn queue_log(
    State(AdminState { store, .. }): State<AdminState>,
    Query(q): Query<SinceQuery>,
) -> Response {
    match store.queue_log_since(q.since_ms.unwrap_or(0), q.limit.unwrap_or(10_000)) {
        Ok(entries) => Json(entries).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Deserialize)]
struct ReportQuery {
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    /// 15m, 1h (default) or 1d.
    interval: Option<String>,
    queue: Option<String>,
    /// json (default) or csv (queue rows).
    format: Option<String>,
}

/// Queue and agent figures per interval, computed from the call records.
async fn reports(State(state): State<AdminState>, Query(q): Query<ReportQuery>) -> Response {
    let Some(interval) = crate::reports::Interval::parse(q.interval.as_deref().unwrap_or("1h"))
    else {
        return error(StatusCode::BAD_REQUEST, "interval must be 15m, 1h or 1d");
    };
    if let Some(queue) = q.queue.as_deref()
        && !state.thresholds.contains_key(queue)
    {
        return error(StatusCode::NOT_FOUND, format!("no queue named {queue:?}"));
    }
    let mut records = match state.store.calls_since(q.since_ms.unwrap_or(0), usize::MAX) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if let Some(until) = q.until_ms {
        records.retain(|r| r.ended_ms < until);
    }
    let mut report = crate::reports::report(
        &records,
        &state.thresholds,
        interval,
        q.queue.as_deref(),
        &state.calendar,
    );
    let since = q.since_ms.unwrap_or(0);
    match state.store.agent_log_since(since, usize::MAX) {
        Ok(log) => crate::reports::add_occupancy(
            &mut report,
            &log,
            interval,
            since,
            q.until_ms.unwrap_or_else(crate::clock::now_ms),
            &state.calendar,
        ),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
    if let Some(queue) = q.queue.as_deref() {
        crate::reports::keep_agents_of_queue(
            &mut report,
            state.members.get(queue).unwrap_or(&Default::default()),
        );
    }
    json_or_csv(q.format.as_deref(), &report, crate::reports::to_csv)
}

/// Prometheus text format; behind the admin token like every endpoint.
async fn metrics(State(state): State<AdminState>) -> Response {
    let acd = match &state.center {
        Some(c) => c.snapshot().await,
        None => None,
    };
    let mut text = state.metrics.render(acd.as_ref(), &state.plugins.list());
    text.push_str(&crate::metrics::render_store_size(state.store.disk_bytes()));
    text.push_str(&crate::metrics::render_allocator());
    if let Some(ep) = &state.sip {
        text.push_str(&crate::metrics::render_auth(&ep.auth_figures()));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The RTP relay: ports in use and every live relay with its packet counts.
async fn media(State(state): State<AdminState>) -> Response {
    match &state.media {
        Some(m) => Json(json!({
            "ports_in_use": m.ports_in_use(),
            "ports_total": m.ports_total(),
            "calls_refused_no_ports": m.refused_calls(),
            "relays": m.status(),
        }))
        .into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the RTP relay is off"),
    }
}

async fn registrations(State(state): State<AdminState>) -> Response {
    match &state.sip {
        Some(ep) => Json(ep.registrar.snapshot(crate::clock::now_ms())).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "SIP is not running"),
    }
}

async fn recordings(State(state): State<AdminState>) -> Response {
    match state.store.list_recordings() {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn entry(
    state: &AdminState,
    call_id: &str,
) -> Result<crate::media::recorder::RecordingEntry, Box<Response>> {
    match state.store.recording(call_id) {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no recording of call {call_id:?}"),
        ))),
        Err(e) => Err(Box::new(error(StatusCode::INTERNAL_SERVER_ERROR, e))),
    }
}

async fn recording(State(state): State<AdminState>, Path(call_id): Path<String>) -> Response {
    match entry(&state, &call_id) {
        Ok(e) => Json(e).into_response(),
        Err(r) => *r,
    }
}

/// The recording as a WAV (audio/wav); see [`crate::recording_audio`].
async fn recording_audio(State(state): State<AdminState>, Path(call_id): Path<String>) -> Response {
    crate::recording_audio::serve(
        &state.store,
        state.recording_keys.clone(),
        None,
        call_id,
        "admin".into(),
    )
    .await
}

#[derive(Deserialize)]
struct PurgeAsOf {
    /// Purge what has expired by this time (ms since the epoch); default now.
    as_of_ms: Option<u64>,
}

async fn purge_recordings(State(state): State<AdminState>, Query(q): Query<PurgeAsOf>) -> Response {
    let as_of = q.as_of_ms.unwrap_or_else(crate::clock::now_ms);
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.purge_recordings(as_of)).await {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainRequest {
    /// Longest drain before the calls left are ended (default: at once).
    within_secs: Option<u64>,
}

/// Stop the host: new calls get 503 with Retry-After, live ones finish
/// within `within_secs` (then they are ended), then the process exits.
async fn drain(State(state): State<AdminState>, Query(q): Query<DrainRequest>) -> Response {
    let within = q.within_secs.unwrap_or(0);
    // A day at most: a drain that outlives the operator's attention is an
    // outage of its own.
    if within > 86_400 {
        return error(
            StatusCode::BAD_REQUEST,
            "within_secs is at most 86400 (a day)",
        );
    }
    tracing::warn!(within_secs = within, "stop asked for through the admin API");
    match state
        .stop
        .request_and_status(std::time::Duration::from_secs(within))
        .await
    {
        Ok(status) => (StatusCode::ACCEPTED, Json(status)).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

async fn drain_status(State(state): State<AdminState>) -> Response {
    Json(state.stop.status()).into_response()
}
