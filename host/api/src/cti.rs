//! The CTI API for desktops: agents log in and change state, calls are listed,
//! hung up, transferred and their recording paused; queues and agents are
//! watched live. Every endpoint but login needs a session (or the admin token).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::session::{LoginError, Principal, Sessions};
use super::wallboard::Wallboard;
use crate::acd::{
    AgentSnapshot, CallEvent, CallSnapshot, RecordingAction, RecordingRefusal, Refusal,
    TransferTarget,
};
use crate::center::{CenterHandle, PolicyRefusal};
use crate::clock::now_ms;
use crate::plugins::PluginHost;
use crate::store::AuditEntry;

/// What the CTI endpoints reach.
#[derive(Clone)]
pub struct ApiState {
    pub sessions: Arc<Sessions>,
    pub center: Option<CenterHandle>,
    pub plugins: PluginHost,
    pub store: crate::store::Store,
    /// The recording-policy plugin asked on a secure pause.
    pub recording_policy: Option<String>,
    pub wallboard: tokio::sync::watch::Receiver<Arc<Wallboard>>,
    /// Where password checks run (argon2 takes 19 MiB each): a few threads
    /// and a bounded queue, so a flood of logins is refused, not served
    /// with the host's memory.
    pub logins: Arc<super::login_pool::LoginPool>,
    /// Audit rows each principal may add a minute.
    pub audit_budget: Arc<super::audit_budget::AuditBudget>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Opens sealed recordings for supervisors (None: plain WAV).
    pub recording_keys: Option<Arc<crate::media::sealed::KeyRing>>,
}

/// Longest not-ready reason an agent may give.
pub const MAX_REASON_BYTES: usize = 64;

/// An error answer: status and a message in `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({"error": self.1}))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = match r {
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
            Refusal::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, r.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError(r.status(), format!("bad request body: {}", r.body_text()))
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(super::auth::bearer)
        .map(str::trim)
}

/// The authenticated caller of a request.
pub struct Auth(pub Principal);

impl FromRequestParts<ApiState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> ApiResult<Self> {
        let Some(token) = bearer(parts) else {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "session required (Authorization: Bearer <token from POST /api/login>)".into(),
            ));
        };
        state
            .sessions
            .authenticate(token, now_ms())
            .map(Auth)
            .ok_or_else(|| {
                ApiError(
                    StatusCode::UNAUTHORIZED,
                    "session unknown or expired; log in again".into(),
                )
            })
    }
}

impl ApiState {
    fn center(&self) -> ApiResult<&CenterHandle> {
        self.center.as_ref().ok_or_else(|| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the call center is not running (no SIP configured)".into(),
            )
        })
    }

    async fn snapshot(&self) -> ApiResult<crate::acd::AcdSnapshot> {
        self.center()?
            .snapshot()
            .await
            .ok_or_else(|| Refusal::Stopped.into())
    }

    fn audit(&self, who: &Principal, action: &str, call_id: Option<&str>, outcome: &str) {
        use super::audit_budget::{Admit, ROWS_PER_MINUTE};
        let label = who.label();
        let now = now_ms();
        let (action, call_id, outcome) = match self.audit_budget.admit(&label, now) {
            Admit::Write => (action.to_owned(), call_id, outcome.to_owned()),
            Admit::WriteSuppressedNotice => (
                "audit-suppressed".to_owned(),
                None,
                format!(
                    "more than {ROWS_PER_MINUTE} entries this minute: the rest of the minute's are not written"
                ),
            ),
            Admit::Drop => {
                self.metrics.bound_hit("audit_rows_per_principal");
                crate::log_limit::warn_every_second(
                    "audit_rows_per_principal",
                    "audit rows over the per-principal budget not written",
                );
                return;
            }
        };
        let action = action.as_str();
        let outcome = outcome.as_str();
        let entry = AuditEntry {
            at_ms: now,
            who: label,
            action: action.to_owned(),
            call_id: call_id.map(str::to_owned),
            outcome: outcome.to_owned(),
        };
        tracing::info!(
            who = entry.who,
            action,
            call_id = call_id.unwrap_or("-"),
            outcome,
            "audit"
        );
        if let Err(e) = self.store.audit(&entry) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }

    /// The live call, if `who` may act on it: supervisors any, agents their own.
    async fn call_for(&self, who: &Principal, call_id: &str) -> ApiResult<CallSnapshot> {
        let snap = self.snapshot().await?;
        let Some(call) = snap.calls.into_iter().find(|c| c.call_id == call_id) else {
            return Err(Refusal::NotFound(format!("no live call with id {call_id:?}")).into());
        };
        match who {
            Principal::Agent(me) if !is_agents_call(&snap.agents, me, &call) => Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("call {call_id} is not yours"),
            )),
            _ => Ok(call),
        }
    }
}

/// The agent's connected call, or the one ringing their phone.
fn is_agents_call(agents: &[AgentSnapshot], me: &str, call: &CallSnapshot) -> bool {
    if call.agent.as_deref() == Some(me) {
        return true;
    }
    agents.iter().any(|a| {
        a.id == me
            && matches!(&a.state, crate::acd::AgentState::Ringing { call_id } if *call_id == call.call_id)
    })
}

pub fn router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/me/state", post(set_state))
        .route("/api/calls", get(calls))
        .route("/api/calls/{id}/hangup", post(hangup))
        .route("/api/calls/{id}/transfer", post(transfer))
        .route("/api/calls/{id}/recording", post(recording))
        .route("/api/queues", get(queues))
        .route("/api/agents", get(agents))
        .route("/api/audit", get(audit))
        .route("/api/recordings/{id}/audio", get(recording_audio))
        .route("/api/events", get(super::events::upgrade))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    id: String,
    password: String,
}

#[derive(Serialize)]
struct LoginAnswer {
    token: String,
    id: String,
    name: String,
    role: super::session::Role,
}

async fn login(
    State(state): State<ApiState>,
    parts: Parts,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> ApiResult<Json<LoginAnswer>> {
    let Json(body) = body?;
    if body.id.len() > 64 || body.password.len() > 1024 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "id (64 bytes) or password (1024 bytes) too long".into(),
        ));
    }
    let source = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    // An id that failed often (from anywhere) is slowed, never locked.
    let delay = state.sessions.delay_for(&body.id, now_ms());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let sessions = state.sessions.clone();
    let id = body.id.clone();
    // argon2 costs tens of milliseconds of CPU: off the async workers, on
    // the password threads.
    let password = body.password.clone();
    let Ok(result) = state
        .logins
        .run(move || sessions.login(&id, &password, source, now_ms()))
        .await
    else {
        crate::log_limit::warn_every_second(
            "login-busy",
            "desktop logins refused: every password check is busy and the queue is full",
        );
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many logins at once; try again in a moment".into(),
        ));
    };
    let principal_label = match &result {
        Ok(_) => "logged in".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    let account = state.sessions.account(&body.id);
    // Refused unchecked: no audit row (the store would grow at the
    // attacker's rate); the log line is rate-limited.
    if let Err(LoginError::Throttled(_)) = &result {
        crate::log_limit::warn_every_second(
            "login-throttled",
            "desktop login refused unchecked: too many failures from the source",
        );
    } else if let Some(a) = account {
        let who = match a.role {
            super::session::Role::Agent => Principal::Agent(a.id.clone()),
            super::session::Role::Supervisor => Principal::Supervisor(a.id.clone()),
        };
        state.audit(&who, "login", None, &principal_label);
    }
    match result {
        Ok(token) => {
            let Some(a) = account else {
                return Err(ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "account vanished".into(),
                ));
            };
            Ok(Json(LoginAnswer {
                token,
                id: a.id.clone(),
                name: a.name.clone(),
                role: a.role,
            }))
        }
        Err(e @ LoginError::Wrong) => Err(ApiError(StatusCode::UNAUTHORIZED, e.to_string())),
        // Said in the log, not to the client: an answer of its own would
        // tell a prober which ids exist.
        Err(e @ LoginError::NoPassword(_)) => {
            tracing::warn!(error = %e, "desktop login refused");
            Err(ApiError(
                StatusCode::UNAUTHORIZED,
                LoginError::Wrong.to_string(),
            ))
        }
        Err(e @ LoginError::Throttled(_)) => {
            Err(ApiError(StatusCode::TOO_MANY_REQUESTS, e.to_string()))
        }
    }
}

async fn logout(State(state): State<ApiState>, parts: Parts) -> ApiResult<StatusCode> {
    let token = bearer(&parts).unwrap_or_default().to_owned();
    let Some(who) = state.sessions.logout(&token) else {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "no session to end (the admin token has none)".into(),
        ));
    };
    // The agent leaves the queues with the desktop (not while on a call).
    if let (Principal::Agent(id), Some(center)) = (&who, &state.center) {
        let _ = center
            .control(CallEvent::AgentLogout { agent: id.clone() })
            .await;
    }
    state.audit(&who, "logout", None, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct MeAnswer {
    id: String,
    name: String,
    role: super::session::Role,
    /// The agent's state (agents only).
    agent: Option<AgentSnapshot>,
    /// The agent's current call (ringing or connected).
    call: Option<CallSnapshot>,
}

async fn me(State(state): State<ApiState>, Auth(who): Auth) -> ApiResult<Json<MeAnswer>> {
    let id = match &who {
        Principal::Agent(id) | Principal::Supervisor(id) => id.clone(),
        Principal::Admin => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "the admin token is nobody's session; log in as an agent or supervisor".into(),
            ));
        }
    };
    let Some(account) = state.sessions.account(&id) else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no account {id}")));
    };
    let (agent, call) = match &who {
        Principal::Agent(me) => {
            let snap = state.snapshot().await?;
            let agent = snap.agents.iter().find(|a| &a.id == me).cloned();
            let call = snap
                .calls
                .iter()
                .find(|c| is_agents_call(&snap.agents, me, c))
                .cloned();
            (agent, call)
        }
        _ => (None, None),
    };
    Ok(Json(MeAnswer {
        id,
        name: account.name.clone(),
        role: account.role,
        agent,
        call,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    /// "ready", "not-ready" or "wrap-up-done".
    state: String,
    reason: Option<String>,
}

async fn set_state(
    State(state): State<ApiState>,
    Auth(who): Auth,
    body: Result<Json<StateBody>, JsonRejection>,
) -> ApiResult<Json<AgentSnapshot>> {
    let Json(body) = body?;
    // The reason is broadcast to every wallboard and kept in the state log.
    if let Some(r) = &body.reason
        && (r.len() > MAX_REASON_BYTES || r.chars().any(char::is_control) || r.trim().is_empty())
    {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("reason: 1 to {MAX_REASON_BYTES} bytes of printable text"),
        ));
    }
    let Principal::Agent(agent) = &who else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "only an agent's session has a state".into(),
        ));
    };
    let center = state.center()?;
    let agent = agent.clone();
    match body.state.as_str() {
        "ready" => {
            // Logged out (no phone registered yet, or after logout): log in first.
            center
                .control(CallEvent::AgentLogin {
                    agent: agent.clone(),
                })
                .await?;
            center
                .control(CallEvent::AgentReady {
                    agent: agent.clone(),
                })
                .await?;
        }
        "not-ready" => {
            center
                .control(CallEvent::AgentNotReady {
                    agent: agent.clone(),
                    reason: body.reason.unwrap_or_else(|| "break".into()),
                })
                .await?
        }
        "wrap-up-done" => {
            center
                .control(CallEvent::WrapUpDone {
                    agent: agent.clone(),
                })
                .await?
        }
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("unknown state {other:?}: use ready, not-ready or wrap-up-done"),
            ));
        }
    }
    let snap = state.snapshot().await?;
    snap.agents
        .into_iter()
        .find(|a| a.id == agent)
        .map(Json)
        .ok_or_else(|| Refusal::NotFound(format!("no agent with id {agent:?}")).into())
}

async fn calls(
    State(state): State<ApiState>,
    Auth(who): Auth,
) -> ApiResult<Json<Vec<CallSnapshot>>> {
    let snap = state.snapshot().await?;
    let mut calls = snap.calls.clone();
    if let Principal::Agent(me) = &who {
        calls.retain(|c| is_agents_call(&snap.agents, me, c));
    }
    calls.sort_by_key(|c| c.arrived_ms);
    Ok(Json(calls))
}

async fn hangup(
    State(state): State<ApiState>,
    Auth(who): Auth,
    Path(call_id): Path<String>,
) -> ApiResult<StatusCode> {
    state.call_for(&who, &call_id).await?;
    let result = state
        .center()?
        .control(CallEvent::HangUp {
            call_id: call_id.clone(),
            by: who.label(),
        })
        .await;
    state.audit(&who, "hangup", Some(&call_id), &outcome(&result));
    result?;
    Ok(StatusCode::ACCEPTED)
}

async fn transfer(
    State(state): State<ApiState>,
    Auth(who): Auth,
    Path(call_id): Path<String>,
    body: Result<Json<TransferTarget>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let Json(target) = body?;
    state.call_for(&who, &call_id).await?;
    let result = state
        .center()?
        .control(CallEvent::Transfer {
            call_id: call_id.clone(),
            target: target.clone(),
            by: who.label(),
        })
        .await;
    state.audit(
        &who,
        &format!("transfer to {target}"),
        Some(&call_id),
        &outcome(&result),
    );
    result?;
    Ok(StatusCode::ACCEPTED)
}

fn outcome(r: &Result<(), Refusal>) -> String {
    match r {
        Ok(()) => "done".into(),
        Err(e) => format!("refused: {e}"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingBody {
    /// "pause" or "resume".
    action: String,
}

#[derive(Serialize)]
struct RecordingAnswer {
    call_id: String,
    paused: bool,
    /// What the policy answered: "keep", "pause" or "resume".
    policy_action: &'static str,
    plugin: String,
    plugin_version: String,
    /// The policy failed and its fallback decided.
    failure: Option<String>,
}

/// The agent's secure pause: the recording-policy plugin decides (it may
/// refuse to resume, say, during a card-number step); every request is audited.
async fn recording(
    State(state): State<ApiState>,
    Auth(who): Auth,
    Path(call_id): Path<String>,
    body: Result<Json<RecordingBody>, JsonRejection>,
) -> ApiResult<Json<RecordingAnswer>> {
    let Json(body) = body?;
    if body.action != "pause" && body.action != "resume" {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("unknown action {:?}: use pause or resume", body.action),
        ));
    }
    let call = state.call_for(&who, &call_id).await?;
    if call.state != "connected" {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("call {call_id} is {}, not connected", call.state),
        ));
    }
    let Some(policy) = state.recording_policy.clone() else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            RecordingRefusal::NoPolicy.to_string(),
        ));
    };
    let answer = state
        .center()?
        .recording_request(&call_id, &body.action)
        .await
        .map_err(|e| {
            let code = match e {
                PolicyRefusal::Refused(RecordingRefusal::NoCall(_)) => StatusCode::NOT_FOUND,
                PolicyRefusal::Refused(RecordingRefusal::NotConnected(_)) => StatusCode::CONFLICT,
                PolicyRefusal::Refused(RecordingRefusal::NoPolicy)
                | PolicyRefusal::Failed(_)
                | PolicyRefusal::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            };
            ApiError(code, e.to_string())
        })?;
    let policy_action = match answer.action {
        RecordingAction::Keep => "keep",
        RecordingAction::Pause => "pause",
        RecordingAction::Resume => "resume",
    };
    state.audit(
        &who,
        &format!("recording {}", body.action),
        Some(&call_id),
        &format!(
            "policy {policy} ({}) answered {policy_action}; recording {}",
            answer.plugin_version,
            if answer.paused { "paused" } else { "running" }
        ),
    );
    Ok(Json(RecordingAnswer {
        call_id,
        paused: answer.paused,
        policy_action,
        plugin: policy,
        plugin_version: answer.plugin_hash,
        failure: answer.failure,
    }))
}

async fn queues(State(state): State<ApiState>, Auth(_): Auth) -> ApiResult<Json<Wallboard>> {
    let board = Wallboard::clone(&state.wallboard.borrow());
    Ok(Json(board))
}

async fn agents(
    State(state): State<ApiState>,
    Auth(who): Auth,
) -> ApiResult<Json<Vec<AgentSnapshot>>> {
    if !who.oversees() {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "agents' states are for supervisors".into(),
        ));
    }
    Ok(Json(state.snapshot().await?.agents))
}

#[derive(Deserialize)]
struct Since {
    since_ms: Option<u64>,
    limit: Option<usize>,
}

/// A call's recording, for supervisors only (decrypted, audited).
async fn recording_audio(
    State(state): State<ApiState>,
    Auth(who): Auth,
    axum::extract::Path(call_id): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !who.oversees() {
        return ApiError(
            StatusCode::FORBIDDEN,
            "recordings are for supervisors".into(),
        )
        .into_response();
    }
    crate::recording_audio::serve(
        &state.store,
        state.recording_keys.clone(),
        Some(&state.audit_budget),
        call_id,
        who.label(),
    )
    .await
}

async fn audit(
    State(state): State<ApiState>,
    Auth(who): Auth,
    Query(q): Query<Since>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    if !who.oversees() {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "the audit log is for supervisors".into(),
        ));
    }
    state
        .store
        .audit_since(q.since_ms.unwrap_or(0), q.limit.unwrap_or(1000))
        .map(Json)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
