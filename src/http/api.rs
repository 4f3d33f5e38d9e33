//! The JSON API under `/api`: create, read, list, long poll, and the polling view of the log.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

#[allow(unused_imports)] // named in the OpenAPI attributes
use super::error::{ErrorBody, errors};
use super::{AppError, AppState, Body, Params, PathIds, parse_json};
use crate::choice::names::Source;
use crate::choice::{Choice, NewChoice};
use crate::clock::now_ms;
use crate::engine::ListenState;
use crate::json::request::CreateRequest;
use crate::json::{ChoiceList, Health, NoteList, StatusPage};
use crate::note::{Note, NoteRequest};
use crate::store::ListFilter;

pub const MAX_LIST: i64 = 1000;

impl AppState {
    /// A choice as the API shows it, at this moment, with who is watching it.
    pub fn choice_json(&self, choice: &Choice) -> crate::json::ChoiceBody {
        crate::json::choice(
            choice,
            now_ms(),
            &self.settings.public_url,
            &self.engine.live().presence(&choice.id),
        )
    }
}

/// Create a choice.
#[utoipa::path(
    post,
    path = "/api/choices",
    tag = "choices",
    security(("bearer" = [])),
    request_body(content = CreateRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created.", body = crate::json::CreatedBody,
            headers(("location" = String, description = "/api/choices/{id}"))),
        (status = 400, description = "The body is not valid JSON or form data.", body = ErrorBody),
        errors::Unauthorized,
        errors::ForeignOrigin,
        errors::SlowBody,
        errors::TooLarge,
        errors::Invalid,
        errors::RateLimited,
        errors::Unavailable,
    )
)]
pub async fn create(State(state): State<AppState>, Body(body): Body) -> Result<Response, AppError> {
    let started = std::time::Instant::now();
    let created = async {
        let request: CreateRequest = parse_json(&body)?;
        let mut new = NewChoice::try_from(request)?;
        let keys = new.issue_approver_keys(crate::ids::new_key)?;
        Ok::<_, AppError>((state.engine.create(new).await?, keys))
    }
    .await;
    state.record_command("create", &created, started);
    let (choice, keys) = created?;
    let location = format!("/api/choices/{}", choice.id);
    let page = crate::paths::choice_url(&state.settings.public_url, &choice.id);
    let body = crate::json::CreatedBody {
        choice: state.choice_json(&choice),
        approver_links: keys
            .into_iter()
            .map(|(name, key)| (name, format!("{page}?as={key}")))
            .collect(),
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// One choice.
#[utoipa::path(
    get,
    path = "/api/choices/{id}",
    tag = "choices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The choice's id")),
    responses(
        (status = 200, description = "The choice.", body = crate::json::ChoiceBody),
        errors::Unauthorized,
        errors::NoSuchChoice,
        errors::Unavailable,
    )
)]
pub async fn one(
    State(state): State<AppState>,
    PathIds { id, .. }: PathIds,
) -> Result<Json<crate::json::ChoiceBody>, AppError> {
    let choice = state.engine.get(&id).await?;
    Ok(Json(state.choice_json(&choice)))
}

/// Choices, newest first.
#[utoipa::path(
    get,
    path = "/api/choices",
    tag = "choices",
    security(("bearer" = [])),
    params(
        ("status" = Option<String>, Query, description = "active (default), final or all", pattern = "^(active|final|all)?$"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 100", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "The choices.", body = crate::json::ChoiceList),
        errors::BadQuery,
        errors::Unauthorized,
        errors::Invalid,
        errors::Unavailable,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<ChoiceList>, AppError> {
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
    let choices: Vec<std::sync::Arc<Choice>> = match filter {
        ListFilter::Active => state.engine.live().active(),
        // History is the store's.
        _ => {
            let rows = state.engine.store().list(filter, limit).await?;
            rows.into_iter().map(std::sync::Arc::new).collect()
        }
    };
    Ok(Json(ChoiceList {
        choices: choices
            .iter()
            .take(limit as usize)
            .map(|c| state.choice_json(c))
            .collect(),
    }))
}

/// Long poll: answers as soon as the choice is final, or after `timeout` seconds.
#[utoipa::path(
    get,
    path = "/api/choices/{id}/wait",
    tag = "choices",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The choice's id"),
        ("timeout" = Option<f64>, Query, description = "Seconds, 0 to 3600, default 60", minimum = 0, maximum = 3600),
    ),
    responses(
        (status = 200, description = "The choice, final or as it stands at the timeout.", body = crate::json::ChoiceBody),
        errors::BadQuery,
        errors::Unauthorized,
        errors::NoSuchChoice,
        errors::Invalid,
        errors::Unavailable,
    )
)]
pub async fn wait(
    State(state): State<AppState>,
    PathIds { id, .. }: PathIds,
    params: Params,
) -> Result<Json<crate::json::ChoiceBody>, AppError> {
    let timeout = params.seconds("timeout", 0.0, 3600.0, 60.0)?;
    let mut shutdown = state.streams.shutdown_signal();
    let choice = tokio::select! {
        choice = state.engine.wait_final(&id, Duration::from_secs_f64(timeout)) => choice?,
        // The server is stopping: answer with the state as it stands, as at the timeout.
        _ = async { shutdown.wait_for(|down| *down).await.map(|_| ()) } => state.engine.get(&id).await?,
    };
    Ok(Json(state.choice_json(&choice)))
}

/// Polling: the events after `since`, oldest first, and the active choices now. Passing the
/// returned cursor as the next `since` never skips or repeats an event.
#[utoipa::path(
    get,
    path = "/api/status",
    tag = "log",
    security(("bearer" = [])),
    params(
        ("since" = Option<i64>, Query, description = "The last seq seen (default 0)", minimum = 0),
        ("limit" = Option<i64>, Query, description = "Events, 1 to 1000, default 100", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "Events oldest first, the cursor, and the active choices.", body = crate::json::StatusPage),
        errors::BadQuery,
        errors::Unauthorized,
        errors::Invalid,
        errors::Unavailable,
    )
)]
pub async fn status(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<StatusPage>, AppError> {
    let (since, limit) = params.page(MAX_LIST)?;
    let events = state.engine.store().events_after(since, limit).await?;
    let active = state.engine.live().active();
    let cursor = events.last().map_or(since, |e| e.seq);
    Ok(Json(StatusPage {
        cursor,
        events,
        active: active
            .iter()
            .take(MAX_LIST as usize)
            .map(|c| state.choice_json(c))
            .collect(),
    }))
}

/// 200 while the store answers. On PostgreSQL it also says whether this node hears the other
/// nodes: while its LISTEN connection is being re-established it is `degraded` (still 200:
/// reads and writes work, only other nodes' changes arrive late). Needs no token (load
/// balancers ask it).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The database answers.", body = crate::json::Health),
        errors::Unavailable,
    )
)]
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.engine.store().ping().await {
        Ok(()) => {
            let listen = state.engine.listen_state();
            Json(Health {
                status: match listen {
                    ListenState::Reconnecting => "degraded",
                    ListenState::Alone | ListenState::Connected => "ok",
                },
                listen: (listen != ListenState::Alone).then(|| listen.as_str()),
            })
            .into_response()
        }
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
#[utoipa::path(
    post,
    path = "/api/notes",
    tag = "log",
    security(("bearer" = [])),
    request_body(content = NoteRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The note, as an event of the log.", body = crate::store::LogEvent),
        errors::BadJson,
        errors::Unauthorized,
        errors::ForeignOrigin,
        errors::SlowBody,
        errors::TooLarge,
        errors::Invalid,
        errors::RateLimited,
        errors::Unavailable,
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/notes",
    tag = "log",
    security(("bearer" = [])),
    params(
        ("source" = Option<String>, Query, description = "Only this source's notes", max_length = 64),
        ("since" = Option<i64>, Query, description = "The last seq seen (default 0)", minimum = 0),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 100", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "Notes oldest first, and the cursor for the next `since`.", body = crate::json::NoteList),
        errors::BadQuery,
        errors::Unauthorized,
        errors::Invalid,
        errors::Unavailable,
    )
)]
pub async fn notes(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<NoteList>, AppError> {
    let (since, limit) = params.page(MAX_LIST)?;
    let source = params
        .text("source")
        .map(Source::parse)
        .transpose()?
        .flatten();
    let source = source.as_ref().map(Source::as_str);
    let notes = state
        .engine
        .store()
        .notes_after(since, source, limit)
        .await?;
    let cursor = notes.last().map_or(since, |e| e.seq);
    Ok(Json(NoteList { cursor, notes }))
}
