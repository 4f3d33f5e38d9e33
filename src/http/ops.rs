//! For operators: request ids, one access-log line per request, and `/metrics`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::Instrument;

#[allow(unused_imports)] // named in the OpenAPI attributes
use super::error::{ErrorBody, errors};
use super::{AppError, AppState};
use crate::metrics::Snapshot;

pub const REQUEST_ID: &str = "x-request-id";

/// Makes the id of a request that came without a sane one of its own: a random prefix (so ids
/// from several nodes do not collide) and a counter.
#[derive(Clone, Copy)]
pub struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        static PREFIX: OnceLock<String> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let prefix = PREFIX.get_or_init(|| {
            let mut bytes = [0u8; 4];
            let _ = getrandom::fill(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        });
        let id = format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed));
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// Before the id is set: a client's `X-Request-Id` goes into every log line, so only a sane one
/// (1–64 of `A-Za-z0-9-_.:`) is kept; any other is replaced by one of ours.
pub async fn drop_odd_request_id(mut request: Request) -> Request {
    let sane = request.headers().get(REQUEST_ID).is_none_or(|v| {
        (1..=64).contains(&v.len())
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    });
    if !sane {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

/// Middleware: every log line written while serving a request carries its id and route, one
/// access line says how it ended, and `/metrics` counts it by route. The route is the one it
/// matched (`/choice/{id}`), never the path: a choice's URL is a capability, and logs travel.
pub async fn access_log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-")
        .to_string();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_string();
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        let status = status.as_u16();
        if status >= 500 {
            tracing::error!(target: "choiceboard::access", status, ms, "answered");
        } else {
            tracing::info!(target: "choiceboard::access", status, ms, "answered");
        }
    });
    state.metrics.request(&method, route, status);
    response
}

/// The route of a request that matched none.
pub const UNMATCHED: &str = "(none)";

impl AppState {
    /// Counts a command or create for `/metrics`: its action, how it ended, how long it took.
    pub fn record_command<T>(&self, action: &str, result: &Result<T, AppError>, started: Instant) {
        let code = result.as_ref().err().map(AppError::code);
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
    let frames = state.streams.stats();
    let snapshot = Snapshot {
        choices_by_status,
        open_sse,
        open_websockets,
        viewers: state.streams.open_streams(),
        pending_deadlines: state.engine.pending_deadlines(),
        frames_sent: frames.frames_sent.load(Ordering::Relaxed),
        frames_skipped: frames.frames_skipped.load(Ordering::Relaxed),
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
