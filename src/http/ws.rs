//! The WebSocket face: `/ws/{id}` for two-way clients of one choice, and `/ws` for the event
//! log. One more encoder of the same core: it reads the hub's ready messages and sends its
//! commands through the engine like any HTTP command.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use governor::RateLimiter;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::commands::{Action, CommandBody};
use super::limits::{self, ClientIp, StreamKind, StreamPermit};
use super::{AppError, AppState, Params, PathIds, log, viewer_of};
use crate::choice::{Actor, Status, Via};
use crate::live::ChoiceWatch;

/// Larger messages are refused (axum's default would be 64 MB).
pub const MAX_MESSAGE: usize = 64 * 1024;
const READ_BUFFER: usize = 4 * 1024;
const PING_EVERY: Duration = Duration::from_secs(20);
/// A socket silent this long (no message, no pong) is dead.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Commands per second a socket may send, and the burst it may save up.
const RATE: f64 = 10.0;
const BURST: f64 = 20.0;

pub async fn choice_socket(
    State(state): State<AppState>,
    PathIds { id, .. }: PathIds,
    client: ClientIp,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let permit = state.guards.open_stream(client.0, StreamKind::WebSocket)?;
    let viewer = viewer_of(&headers);
    let by = viewer.name.clone();
    let metered = !state.settings.unmetered(&headers);
    // Subscribe before announcing, so no change falls between the two; unknown ids are
    // refused before the upgrade.
    let watch = state
        .engine
        .live()
        .watch(&id, viewer)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(limit(upgrade)
        .on_upgrade(move |socket| {
            serve_choice(socket, state, id, by, watch, (client, metered, permit))
        })
        .into_response())
}

pub async fn log_socket(
    State(state): State<AppState>,
    client: ClientIp,
    params: Params,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let permit = state.guards.open_stream(client.0, StreamKind::WebSocket)?;
    let since = params.since_or(|| state.engine.last_seq())?;
    Ok(limit(upgrade)
        .on_upgrade(move |socket| async move {
            let _permit = permit;
            let (mut sink, mut incoming) = socket.split();
            let events = log::follow(state.engine.clone(), since, state.streams.shutdown_signal());
            tokio::pin!(events);
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(event) => {
                            let text = serde_json::to_string(&event).unwrap_or_default();
                            if sink.send(Message::Text(text.into())).await.is_err() {
                                return;
                            }
                        }
                        None => break,
                    },
                    message = incoming.next() => match message {
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => {}
                    },
                }
            }
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: close_code::AWAY,
                    reason: "shutting down".into(),
                })))
                .await;
        })
        .into_response())
}

/// Message limits, and small buffers: tungstenite's default 128 KiB read buffer, zeroed per
/// socket, would cost every viewer 128 KiB of memory; its messages here are a few hundred bytes.
fn limit(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
}

fn text(value: serde_json::Value) -> Message {
    Message::Text(value.to_string().into())
}

fn ready(bytes: &axum::body::Bytes) -> Message {
    Message::Text(Utf8Bytes::try_from(bytes.clone()).unwrap_or_default())
}

async fn serve_choice(
    socket: WebSocket,
    state: AppState,
    id: String,
    by: Option<String>,
    mut watch: ChoiceWatch,
    (client, metered, _permit): (ClientIp, bool, StreamPermit),
) {
    let (mut sink, mut incoming) = socket.split();
    let (replies, mut to_send) = mpsc::channel::<Message>(16);
    let state_shutdown = state.streams.shutdown_signal();

    let send = async move {
        if sink
            .send(text(json!({"type": "status", "status": "connected"})))
            .await
            .is_err()
        {
            return;
        }
        let (mut sent_status, first_status) = {
            let first = watch.frames.borrow();
            (first.ws_status.count, first.choice.status)
        };
        // Old status messages are history; a client starts from `sync` (and the final status).
        let mut sent_sync = 0;
        if first_status.is_final() {
            if let Some(message) = crate::json::ws_status(Status::Pending, first_status) {
                let _ = sink.send(Message::Text(message.into())).await;
            }
        }
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let shutdown = super::sse::until_shutdown(state_shutdown);
        tokio::pin!(shutdown);
        loop {
            let frames = watch.frames.borrow_and_update().clone();
            if frames.ws_status.count != sent_status {
                sent_status = frames.ws_status.count;
                if sink.send(ready(&frames.ws_status.bytes)).await.is_err() {
                    return;
                }
            }
            if frames.ws_sync.count != sent_sync && !frames.closed {
                sent_sync = frames.ws_sync.count;
                if sink.send(ready(&frames.ws_sync.bytes)).await.is_err() {
                    return;
                }
            }
            if frames.closed {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: close_code::NORMAL,
                        reason: "final".into(),
                    })))
                    .await;
                return;
            }
            tokio::select! {
                changed = watch.frames.changed() => if changed.is_err() { return },
                Some(message) = to_send.recv() => if sink.send(message).await.is_err() { return },
                _ = ping.tick() => if sink.send(Message::Ping(Default::default())).await.is_err() { return },
                _ = &mut shutdown => {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: close_code::AWAY, reason: "shutting down".into() }))).await;
                    return;
                }
            }
        }
    };

    let receive = async move {
        let per_socket = limits::quota(RATE, BURST).map(RateLimiter::direct);
        loop {
            let message = match tokio::time::timeout(IDLE_LIMIT, incoming.next()).await {
                Ok(Some(Ok(message))) => message,
                // Silent for a minute, broken, or gone: drop it.
                _ => return,
            };
            let body = match message {
                Message::Text(body) => body,
                Message::Binary(_) => {
                    let error = AppError::Malformed("send JSON text messages".into());
                    let _ = replies.send(error_message(&error)).await;
                    continue;
                }
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if let Some(Err(refused)) = per_socket.as_ref().map(RateLimiter::check) {
                let error = AppError::RateLimited {
                    retry_after_secs: limits::retry_after(&refused),
                };
                let _ = replies.send(error_message(&error)).await;
                continue;
            }
            // The client's own bucket too: many sockets are not a way around the rate limit.
            let refused = if metered {
                state.guards.take(client.0)
            } else {
                Ok(())
            };
            if let Err(error) = refused {
                let _ = replies.send(error_message(&error)).await;
                continue;
            }
            if let Some(reply) = handle(&state, &id, &by, body.as_str()).await {
                if replies.send(reply).await.is_err() {
                    return;
                }
            }
        }
    };

    // Either side ending ends the socket (and drops the watch: the viewer leaves).
    tokio::select! {
        _ = send => {}
        _ = receive => {}
    }
}

/// One client message: a ping gets a pong, a command goes through the engine, anything wrong
/// gets an error message and the socket stays open.
async fn handle(state: &AppState, id: &str, by: &Option<String>, body: &str) -> Option<Message> {
    let parsed: Result<(String, CommandBody), AppError> = (|| {
        let mut value: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| AppError::Malformed(format!("not JSON: {e}")))?;
        // Parsed once: the type is taken out, the rest are the command's fields.
        let kind = match value.as_object_mut().and_then(|o| o.remove("type")) {
            Some(serde_json::Value::String(kind)) => kind,
            _ => return Err(AppError::invalid("type", "every message needs a type")),
        };
        Ok((kind, super::from_json(value)?))
    })();
    let (kind, fields) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return Some(error_message(&e)),
    };
    let action = match kind.as_str() {
        "ping" => return Some(text(json!({"type": "pong"}))),
        "update_timeout" => Some(Action::Timeout),
        // A socket says update_timeout for it.
        "timeout" => None,
        other => Action::parse(other).ok(),
    };
    let Some(action) = action else {
        return Some(error_message(&AppError::invalid(
            "type",
            format!("unknown message type {kind:?}"),
        )));
    };
    let started = std::time::Instant::now();
    let result = async {
        let command = fields.into_command(action)?;
        let actor = Actor {
            via: Via::Ws,
            by: by.clone(),
        };
        state
            .engine
            .command(id, command, actor)
            .await
            .map_err(AppError::from)
    }
    .await;
    state.record_command(action.name(), &result, started);
    result.err().map(|e| error_message(&e))
}

fn error_message(e: &AppError) -> Message {
    let mut message = json!({"type": "error", "code": e.code(), "message": e.message()});
    if let Some(field) = e.field() {
        message["field"] = json!(field);
    }
    text(message)
}
