//! For operators: a request id and one access-log line per request, and `/metrics`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

#[allow(unused_imports)] // named in the OpenAPI attributes
use super::error::{ErrorBody, errors};
use super::{AppError, AppState};
use crate::metrics::Snapshot;

pub const REQUEST_ID: &str = "x-request-id";

/// Middleware: every request gets an id (the client's `X-Request-Id` when it is a sane one),
/// every log line written while serving it carries the id, and the response returns it.
pub async fn trace(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(new_request_id, str::to_string);
    let method = request.method().clone();
    let route = route_of(request.uri().path());
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(target: "choiceboard::access", status, ms, "answered");
        } else {
            tracing::info!(target: "choiceboard::access", status, ms, "answered");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// A process-unique id: a random prefix (so ids from several nodes do not collide) and a
/// counter.
fn new_request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        let _ = getrandom::fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The path as a route, without choice ids: a choice's URL is a capability, and logs travel.
pub fn route_of(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let known_action = |a: &str| {
        [
            "submit", "cancel", "timeout", "pause", "resume", "reset", "events",
        ]
        .contains(&a)
    };
    match segments.as_slice() {
        ["", "choice", _] => "/choice/{id}".into(),
        ["", "choice", _, action] if known_action(action) => format!("/choice/{{id}}/{action}"),
        ["", "choice", ..] => "/choice/{id}/…".into(),
        ["", "ws", id] if !id.is_empty() => "/ws/{id}".into(),
        ["", "api", "choices", id] if !id.is_empty() => "/api/choices/{id}".into(),
        ["", "api", "choices", _, rest @ ..] => format!("/api/choices/{{id}}/{}", rest.join("/")),
        _ => path.chars().take(100).collect(),
    }
}

impl AppState {
    /// Counts a command or create for `/metrics`: its action, how it ended, how long it took.
    pub fn record_command<T>(&self, action: &str, result: &Result<T, AppError>, started: Instant) {
        let code = result.as_ref().err().map(|e| e.code().as_str());
        self.metrics.command(action, code, started.elapsed());
    }
}

/// Counters, gauges and histograms in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", content_type = "text/plain", body = String),
        errors::Unauthorized,
        errors::Unavailable,
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let choices_by_status = state.engine.store().count_by_status().await?;
    let (open_sse, open_websockets) = state.guards.open_streams();
    let hub = state.hub.stats();
    let snapshot = Snapshot {
        choices_by_status,
        open_sse,
        open_websockets,
        viewers: state.hub.open_streams(),
        pending_deadlines: state.engine.pending_deadlines(),
        frames_sent: hub.frames_sent.load(Ordering::Relaxed),
        frames_skipped: hub.frames_skipped.load(Ordering::Relaxed),
        rate_limited: state.guards.rate_limited.load(Ordering::Relaxed),
        streams_refused: state.guards.streams_refused.load(Ordering::Relaxed),
        live_choices: state.engine.live().topics(),
        store_reads: state.engine.live().store_reads(),
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&snapshot),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn routes_hide_choice_ids() {
        assert_eq!(route_of("/choice/k3Jx9abc"), "/choice/{id}");
        assert_eq!(route_of("/choice/k3Jx9abc/submit"), "/choice/{id}/submit");
        assert_eq!(route_of("/choice/k3Jx9abc/evil"), "/choice/{id}/…");
        assert_eq!(route_of("/ws/k3Jx9abc"), "/ws/{id}");
        assert_eq!(route_of("/ws"), "/ws");
        assert_eq!(
            route_of("/api/choices/k3Jx9abc/wait"),
            "/api/choices/{id}/wait"
        );
        assert_eq!(route_of("/api/choices"), "/api/choices");
    }
}
