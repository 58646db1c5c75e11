//! The event stream over WebSocket. A browser cannot put a bearer token on a
//! WebSocket request, so the first message must carry it: `{"token": "..."}`.
//! Agents get their own calls (offer, screen-pop card, connect, end) and state,
//! and the queues' figures; supervisors and the admin get everything and the
//! full wallboard every second.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::cti::ApiState;
use super::session::Principal;
use crate::acd::AcdEvent;
use crate::center::Published;
use crate::clock::now_ms;

/// Close codes in the application range (RFC 6455 7.4.2).
const CLOSE_UNAUTHORIZED: u16 = 4401;

pub async fn upgrade(
    State(state): State<ApiState>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    use axum::response::IntoResponse;
    match ws {
        Ok(ws) => ws
            .max_message_size(64 * 1024)
            .on_upgrade(move |socket| serve(socket, state)),
        // Every answer of the API is JSON, this one too.
        Err(e) => (
            e.status(),
            axum::Json(serde_json::json!({
                "error": format!("{e}: /api/events is a WebSocket (GET with Upgrade: websocket)")
            })),
        )
            .into_response(),
    }
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

async fn send(socket: &mut WebSocket, v: &Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn serve(mut socket: WebSocket, state: ApiState) {
    let first = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    let token = match first {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Value>(&t)
            .ok()
            .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned)),
        _ => None,
    };
    let Some(token) = token else {
        return close(
            socket,
            CLOSE_UNAUTHORIZED,
            "first message must be {\"token\": ...}",
        )
        .await;
    };
    let Some(who) = state.sessions.authenticate(&token, now_ms()) else {
        return close(socket, CLOSE_UNAUTHORIZED, "session unknown or expired").await;
    };
    if !send(&mut socket, &json!({"type": "hello", "who": who.label()})).await {
        return;
    }
    // Without a call center (no SIP configured) there are no events, only the hello.
    let mut events = state.center.as_ref().map(|c| c.subscribe());
    // Cards are built only for agents someone watches: this stream counts.
    let _watching = state.center.as_ref().map(|c| match &who {
        Principal::Agent(id) => c.watch(Some(id)),
        _ => c.watch(None),
    });
    let mut board = state.wallboard.clone();
    board.mark_changed();
    let mut board_alive = true;
    // Calls offered to this agent: their later events are the agent's too.
    let mut mine: HashSet<String> = HashSet::new();
    let mut recheck = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            e = recv_event(&mut events), if events.is_some() => {
                let msg = match e {
                    Ok(p) => event_for(&who, &p, &mut mine),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        Some(json!({"type": "lagged", "missed": n}))
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        events = None;
                        continue;
                    }
                };
                if let Some(m) = msg
                    && !send(&mut socket, &m).await
                {
                    break;
                }
            }
            changed = board.changed(), if board_alive => {
                if changed.is_err() {
                    // The wallboard task is gone (no call center): stop polling it.
                    board_alive = false;
                    continue;
                }
                let b = board.borrow_and_update().clone();
                let msg = if who.oversees() {
                    json!({"type": "wallboard", "board": b.as_ref()})
                } else {
                    let queues: Vec<Value> = b.queues.iter().map(|q| json!({
                        "name": q.live.name,
                        "waiting": q.live.waiting,
                        "longest_wait_ms": q.live.longest_wait_ms,
                        "agents_ready": q.live.agents_ready,
                    })).collect();
                    json!({"type": "queues", "at_ms": b.at_ms, "queues": queues})
                };
                if !send(&mut socket, &msg).await {
                    break;
                }
            }
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            },
            _ = recheck.tick() => {
                // A logout (or expiry) ends the stream too.
                if state.sessions.authenticate(&token, now_ms()).is_none() {
                    return close(socket, CLOSE_UNAUTHORIZED, "session ended").await;
                }
            }
        }
    }
}

async fn recv_event(
    events: &mut Option<broadcast::Receiver<Published>>,
) -> Result<Published, broadcast::error::RecvError> {
    match events {
        Some(e) => e.recv().await,
        None => std::future::pending().await,
    }
}

/// The JSON of an event for `who`, or None if it is not theirs to see.
fn event_for(who: &Principal, p: &Published, mine: &mut HashSet<String>) -> Option<Value> {
    let me = match who {
        Principal::Agent(id) => Some(id.as_str()),
        _ => None,
    };
    let (msg, agent, call_id): (Value, Option<&str>, Option<&str>) = match p {
        Published::Card(card) => {
            let mut v = serde_json::to_value(&**card).ok()?;
            v["type"] = "card".into();
            (v, Some(card.agent.as_str()), Some(card.call_id.as_str()))
        }
        Published::Acd(e) => match e {
            AcdEvent::CallArrived {
                call_id,
                caller,
                dialed,
            } => (
                json!({"type": "call-arrived", "call_id": call_id, "caller": caller, "dialed": dialed}),
                None,
                None,
            ),
            AcdEvent::CallQueued {
                call_id,
                queue,
                position,
            } => (
                json!({"type": "call-queued", "call_id": call_id, "queue": queue, "position": position}),
                None,
                None,
            ),
            AcdEvent::CallOffered {
                call_id,
                agent,
                queue,
                call,
                ..
            } => {
                if me == Some(agent.as_str()) {
                    mine.insert(call_id.clone());
                }
                (
                    json!({
                        "type": "call-offered",
                        "call_id": call_id,
                        "agent": agent,
                        "queue": queue,
                        "caller": call.caller,
                        "dialed": call.dialed,
                        "trunk": call.trunk,
                        "attributes": call.attributes,
                        "arrived_at_ms": call.arrived_at_ms,
                    }),
                    Some(agent.as_str()),
                    Some(call_id.as_str()),
                )
            }
            AcdEvent::CallConnected { call_id, agent } => (
                json!({"type": "call-connected", "call_id": call_id, "agent": agent}),
                Some(agent.as_str()),
                Some(call_id.as_str()),
            ),
            AcdEvent::CallTransferred {
                call_id,
                target,
                by,
            } => (
                json!({"type": "call-transferred", "call_id": call_id, "target": target, "by": by}),
                None,
                Some(call_id.as_str()),
            ),
            AcdEvent::CallEnded(r) => {
                let v = json!({
                    "type": "call-ended",
                    "call_id": r.call_id,
                    "agent": r.agent,
                    "queue": r.queue,
                    "disposition": r.disposition,
                    "cause": r.cause,
                });
                let was_mine = mine.remove(&r.call_id);
                return (who.oversees() || was_mine).then_some(v);
            }
            AcdEvent::AgentStateChanged { agent, state } => {
                let mut v = serde_json::to_value(state).ok()?;
                v["type"] = "agent-state".into();
                v["agent"] = agent.clone().into();
                v["since_ms"] = now_ms().into();
                (v, Some(agent.as_str()), None)
            }
            AcdEvent::QueueLog { .. } | AcdEvent::Warning { .. } => return None,
        },
    };
    if who.oversees() {
        return Some(msg);
    }
    let for_me = agent.is_some() && agent == me || call_id.is_some_and(|c| mine.contains(c));
    for_me.then_some(msg)
}
