//! Pages for people: the dashboard, a choice, the board fragment for polling, static files.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use cookie::CookieBuilder;

use super::{
    AppError, AppState, Asks, Body, NAME_COOKIE, Params, PathIds, VIEWER_COOKIE, Wants, viewer_of,
};
use crate::choice::names::{DisplayName, Source};
use crate::choice::{Mode, NewChoice, Rejection};
use crate::clock::now_ms;
use crate::json::request::CreateRequest;
use crate::note::Level;
use crate::views::{self, assets};

pub async fn dashboard(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, AppError> {
    let filter = filter(&params)?;
    let board = state.streams.dashboard().board().await;
    Ok(html(views::dashboard::page(&board, now_ms(), &filter)))
}

/// The board alone, for polling and the Refresh button.
pub async fn board(State(state): State<AppState>, params: Params) -> Result<Response, AppError> {
    let filter = filter(&params)?;
    let board = state.streams.dashboard().board().await;
    Ok(html(views::dashboard::board(&board, now_ms(), &filter)))
}

/// `?source=&level=` on the dashboard.
fn filter(params: &Params) -> Result<views::dashboard::Filter, AppError> {
    let source = params
        .text("source")
        .map(Source::parse)
        .transpose()?
        .flatten()
        .map(String::from);
    let level = match params.text("level") {
        None => None,
        Some("info") => Some(Level::Info),
        Some("warn") => Some(Level::Warn),
        Some("error") => Some(Level::Error),
        Some(_) => return Err(AppError::invalid("level", "level is info, warn or error")),
    };
    Ok(views::dashboard::Filter { source, level })
}

/// The choice page; a program asking for JSON gets the choice JSON at the same address.
pub async fn choice(
    State(state): State<AppState>,
    PathIds { id, .. }: PathIds,
    params: Params,
    asks: Asks,
    headers: HeaderMap,
) -> Response {
    // The whole page even for HTMX: nothing swaps a part of it in.
    let wants = match asks.or(Wants::Page) {
        Wants::Json => Wants::Json,
        Wants::Fragment | Wants::Page => Wants::Page,
    };
    let entry = match state.engine.entry(&id).await {
        Ok(entry) => entry,
        Err(e) => return AppError::from(e).render(wants, None),
    };
    let choice = &entry.choice;
    if wants == Wants::Json {
        return Json(state.choice_json(choice)).into_response();
    }
    let url = crate::paths::choice_url(&state.settings.public_url, &id);
    let fixed = entry
        .page
        .get_or_init(|| views::choice::Fixed::render(choice, &url));
    let viewer = viewer_of(&headers);
    let ballot = match (&choice.spec.approval, params.text("as")) {
        (Some(approval), Some(key)) => match approval.approver_of(key) {
            Some(name) => views::choice::Ballot::As { name, key },
            None => views::choice::Ballot::Refused,
        },
        _ => views::choice::Ballot::Watch,
    };
    let context = views::choice::PageContext {
        url: &url,
        presence: &state.engine.live().presence(&id),
        name: viewer.name.as_deref(),
        ballot,
    };
    let page = html(views::choice::page(choice, fixed, now_ms(), &context));
    let mut jar = CookieJar::new();
    if viewer.key.is_none() {
        // A stable viewer id lets a reconnecting stream count as the same person.
        if let Ok(key) = crate::ids::new_key() {
            jar = jar.add(lasting_cookie(VIEWER_COOKIE, key).http_only(true));
        }
    }
    (jar, page).into_response()
}

/// A cookie of this site kept for a year, sent along when following a link from elsewhere.
fn lasting_cookie(name: &'static str, value: String) -> CookieBuilder<'static> {
    Cookie::build((name, value))
        .path("/")
        .max_age(cookie::time::Duration::days(365))
        .same_site(SameSite::Lax)
}

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", assets::CSS)
}

pub async fn htmx() -> Response {
    asset("text/javascript; charset=utf-8", assets::HTMX)
}

/// `/static/{version}/{file}`: one of our modules. Under another build's version it is still
/// served (a tab open across a deploy), but not to be kept.
pub async fn module(Path((version, file)): Path<(String, String)>) -> Response {
    let Some(js) = assets::module(&file) else {
        return AppError::NotFound.into_response();
    };
    if version == assets::version() {
        asset("text/javascript; charset=utf-8", js)
    } else {
        fresh("text/javascript; charset=utf-8", js.as_bytes())
    }
}

pub async fn manifest() -> Response {
    fresh("application/manifest+json", assets::MANIFEST.as_bytes())
}

/// At the root, so that it may control every page (a worker's scope is its own folder).
pub async fn service_worker() -> Response {
    fresh(
        "text/javascript; charset=utf-8",
        assets::SERVICE_WORKER.as_bytes(),
    )
}

pub async fn icon_192() -> Response {
    fresh("image/png", assets::ICON_192)
}

pub async fn icon_512() -> Response {
    fresh("image/png", assets::ICON_512)
}

pub async fn offline() -> Response {
    html(views::offline_page())
}

/// Files addressed without a content hash: the browser asks again each time whether they
/// changed (a new service worker must reach it with the next build).
fn fresh(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Static files are addressed with a content hash (`?v=`), so they may be cached for good.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

fn html(markup: maud::Markup) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// `POST /name`: this browser's display name, kept in a cookie and shown to everyone watching.
pub async fn set_name(
    State(state): State<AppState>,
    asks: Asks,
    headers: HeaderMap,
    Body(body): Body,
) -> Response {
    let mut name = String::new();
    let mut back = "/".to_string();
    for (key, value) in form_urlencoded::parse(&body) {
        match &*key {
            "name" => name = value.trim().to_string(),
            "back" => {
                if let Some(path) = super::access::local_path(&value) {
                    back = path.to_string();
                }
            }
            _ => {}
        }
    }
    let wants = asks.or(Wants::Page);
    let name = match DisplayName::parse("name", &name) {
        Ok(name) => name.map(String::from).unwrap_or_default(),
        Err(e) => return AppError::from(e).render(wants, Some(&back)),
    };
    if let Some(key) = viewer_of(&headers).key {
        state
            .engine
            .live()
            .rename(&key, (!name.is_empty()).then_some(name.as_str()));
    }
    let encoded: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    let mut cookie = lasting_cookie(NAME_COOKIE, encoded);
    if name.is_empty() {
        cookie = cookie.max_age(cookie::time::Duration::ZERO);
    }
    let jar = CookieJar::new().add(cookie);
    if wants == Wants::Fragment {
        (StatusCode::NO_CONTENT, jar).into_response()
    } else {
        (StatusCode::SEE_OTHER, jar, [(header::LOCATION, back)]).into_response()
    }
}

/// `POST /choice/{id}/events/leave`: a choice page's beacon as its tab goes away. This browser
/// stops counting as a viewer a moment after that tab's stream ends (time for a reload to come
/// back), not after the grace period kept for a stream that blips.
pub async fn leave(
    State(state): State<AppState>,
    PathIds { id, .. }: PathIds,
    headers: HeaderMap,
) -> Result<StatusCode, AppError> {
    state.engine.entry(&id).await?;
    if let Some(key) = viewer_of(&headers).key {
        state.engine.live().closing(&id, &key);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /timers`: the dashboard's "New timer" form.
pub async fn new_timer(State(state): State<AppState>, Body(body): Body) -> Response {
    let mut request = CreateRequest {
        mode: Some(Mode::Timer),
        ..CreateRequest::default()
    };
    let mut minutes = None;
    let started = std::time::Instant::now();
    for (key, value) in form_urlencoded::parse(&body) {
        match &*key {
            "title" => request.title = value.into_owned(),
            "minutes" => minutes = Some(value.trim().parse::<f64>()),
            "start" => request.start_paused = value == "paused",
            _ => {}
        }
    }
    let created = async {
        request.timeout_seconds = match minutes {
            Some(Ok(m)) => Some(m * 60.0),
            Some(Err(_)) => return Err(AppError::invalid("minutes", "minutes must be a number")),
            None => None,
        };
        let new = NewChoice::try_from(request).map_err(|e| match e {
            Rejection::Invalid { field, message } if field == "timeout_seconds" => {
                AppError::invalid(
                    "minutes",
                    message.replace(
                        "timeout_seconds must be between 1 and 604800 seconds",
                        "a timer runs from 1 second to 7 days",
                    ),
                )
            }
            other => other.into(),
        })?;
        Ok(state.engine.create(new).await?)
    }
    .await;
    state.record_command("create", &created, started);
    match created {
        Ok(timer) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, crate::paths::choice(&timer.id))],
        )
            .into_response(),
        Err(e) => e.into_page(None),
    }
}
