//! The JSON API under `/api`: create, read, list, long poll, and the polling view of the log.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AppError, AppState, Body, Params, parse_json};
use crate::choice::{Choice, CreateRequest, NewChoice};
use crate::clock::now_ms;
use crate::engine::ListenState;
use crate::note::{Note, NoteRequest};
use crate::store::ListFilter;

pub const MAX_LIST: i64 = 1000;

impl AppState {
    /// A choice as the API shows it, at this moment, with who is watching it.
    pub fn choice_json(&self, choice: &Choice) -> Value {
        crate::json::choice(
            choice,
            now_ms(),
            &self.settings.public_url,
            &self.hub.presence(&choice.id),
        )
    }
}

pub async fn create(State(state): State<AppState>, Body(body): Body) -> Result<Response, AppError> {
    let started = std::time::Instant::now();
    let created = async {
        let request: CreateRequest = parse_json(&body)?;
        let new = NewChoice::try_from(request)?;
        Ok::<_, AppError>(state.engine.create(new).await?)
    }
    .await;
    state.record_command("create", &created, started);
    let choice = created?;
    let location = format!("/api/choices/{}", choice.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(state.choice_json(&choice)),
    )
        .into_response())
}

pub async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let choice = state.engine.get(&id).await?;
    Ok(Json(state.choice_json(&choice)))
}

pub async fn list(State(state): State<AppState>, params: Params) -> Result<Json<Value>, AppError> {
    let filter = match params.text("status").unwrap_or("active") {
        "active" => ListFilter::Active,
        "final" => ListFilter::Final,
        "all" => ListFilter::All,
        _ => {
            return Err(AppError::invalid(
                "status",
                "status must be active, final or all",
            ));
        }
    };
    let limit = params.int("limit", 1, MAX_LIST, 100)?;
    let choices = state.engine.store().list(filter, limit).await?;
    Ok(Json(
        json!({ "choices": choices.iter().map(|c| state.choice_json(c)).collect::<Vec<_>>() }),
    ))
}

pub async fn wait(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, AppError> {
    let timeout = params.seconds("timeout", 0.0, 3600.0, 60.0)?;
    let mut shutdown = state.hub.shutdown_signal();
    let choice = tokio::select! {
        choice = state.engine.wait_final(&id, Duration::from_secs_f64(timeout)) => choice?,
        // The server is stopping: answer with the state as it stands, as at the timeout.
        _ = async { shutdown.wait_for(|down| *down).await.map(|_| ()) } => state.engine.get(&id).await?,
    };
    Ok(Json(state.choice_json(&choice)))
}

/// Polling: the events after `since`, oldest first, and the active choices now. Passing the
/// returned cursor as the next `since` never skips or repeats an event.
pub async fn status(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, AppError> {
    let since = params.int("since", 0, i64::MAX, 0)?;
    let limit = params.int("limit", 1, MAX_LIST, 100)?;
    let store = state.engine.store();
    let events = store.events_after(since, limit).await?;
    let active = store.list(ListFilter::Active, MAX_LIST).await?;
    let cursor = events.last().map_or(since, |e| e.seq);
    Ok(Json(json!({
        "cursor": cursor,
        "events": events,
        "active": active.iter().map(|c| state.choice_json(c)).collect::<Vec<_>>(),
    })))
}

/// 200 while the store answers. On PostgreSQL it also says whether this node hears the other
/// nodes: while its LISTEN connection is being re-established it is `degraded` (still 200:
/// reads and writes work, only other nodes' changes arrive late).
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.engine.store().ping().await {
        Ok(()) => match state.engine.listen_state() {
            ListenState::Alone => Json(json!({"status": "ok"})).into_response(),
            listen @ ListenState::Connected => {
                Json(json!({"status": "ok", "listen": listen.as_str()})).into_response()
            }
            listen @ ListenState::Reconnecting => {
                Json(json!({"status": "degraded", "listen": listen.as_str()})).into_response()
            }
        },
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "health check: the store does not answer");
            AppError::Unavailable("the database does not answer".into()).into_response()
        }
    }
}

pub async fn not_found() -> AppError {
    AppError::NotFound
}

/// `POST /api/notes`: a program's activity note, appended to the log.
pub async fn create_note(
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Response, AppError> {
    let request: NoteRequest = parse_json(&body)?;
    let note = Note::try_from(request)?;
    let event = state.engine.note(note).await?;
    Ok((StatusCode::CREATED, Json(event)).into_response())
}

/// `GET /api/notes?source=&since=&limit=`: notes, oldest first, after `since`.
pub async fn notes(State(state): State<AppState>, params: Params) -> Result<Json<Value>, AppError> {
    let since = params.int("since", 0, i64::MAX, 0)?;
    let limit = params.int("limit", 1, MAX_LIST, 100)?;
    let source = params.text("source");
    if source.is_some_and(|s| s.chars().count() > crate::choice::MAX_SOURCE) {
        return Err(AppError::invalid(
            "source",
            "source is at most 64 characters",
        ));
    }
    let notes = state
        .engine
        .store()
        .notes_after(since, source, limit)
        .await?;
    let cursor = notes.last().map_or(since, |e| e.seq);
    Ok(Json(json!({ "cursor": cursor, "notes": notes })))
}
