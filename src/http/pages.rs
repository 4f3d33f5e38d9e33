//! Pages for people: the dashboard, a choice, the board fragment for polling, static files.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppError, AppState, VIEWER_COOKIE, cookie, viewer_of, wants_json};
use crate::clock::now_ms;
use crate::views::{self, assets};

pub async fn dashboard(State(state): State<AppState>) -> Response {
    let board = state.hub.board().await;
    html(views::dashboard::page(&board, now_ms()))
}

/// The board alone, for polling and the Refresh button.
pub async fn board(State(state): State<AppState>) -> Response {
    let board = state.hub.board().await;
    html(views::dashboard::board(&board, now_ms()))
}

/// The choice page; a program asking for JSON gets the choice JSON at the same address.
pub async fn choice(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let choice = match state.engine.get(&id).await {
        Ok(choice) => choice,
        Err(e) if wants_json(&headers) => return AppError::from(e).into_response(),
        Err(e) => return page_error(AppError::from(e), None),
    };
    if wants_json(&headers) {
        return Json(state.choice_json(&choice)).into_response();
    }
    let mut response = html(views::choice::page(
        &choice,
        now_ms(),
        &state.hub.presence(&id),
    ));
    if cookie(&headers, VIEWER_COOKIE).is_none() || viewer_of(&headers).key.is_none() {
        // A stable viewer id lets a reconnecting stream count as the same person.
        if let Ok(key) = crate::engine::new_id() {
            let cookie =
                format!("{VIEWER_COOKIE}={key}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
    }
    response
}

pub fn page_error(e: AppError, back: Option<&str>) -> Response {
    let back = back.map(str::to_string);
    e.into_html(|e| views::error_page(e.code(), &e.message(), e.field(), back.as_deref()))
}

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", assets::CSS)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", assets::BUNDLE)
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
