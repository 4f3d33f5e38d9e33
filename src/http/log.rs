//! The event log, live: `GET /api/events` (SSE). Every event after `since`, exactly once and in
//! seq order, then live. The broadcast only wakes a reader; the events themselves always come
//! from the store, so a reader that falls behind is caught up from the database, never dropped,
//! and an event committed late on another node is read in its place.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use tokio::sync::{broadcast, watch};

#[allow(unused_imports)] // named in the OpenAPI attributes
use super::error::{ErrorBody, errors};
use super::limits::{ClientIp, StreamKind};
use super::{AppError, AppState, Params};
use crate::engine::Engine;
use crate::store::LogEvent;

const PAGE: i64 = 500;

/// The event log as Server-Sent Events: every event after `since` (default: now), exactly
/// once and in seq order, then live. Each message is `id: SEQ` and `data: EVENT-JSON`;
/// reconnect with `Last-Event-ID` to resume.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "log",
    security(("bearer" = [])),
    params(
        ("since" = Option<i64>, Query, description = "Start after this seq (default: now)", minimum = 0),
        ("last-event-id" = Option<String>, Header, description = "Resume after this seq"),
    ),
    responses(
        (status = 200, description = "An endless stream; each `data:` line is one event of the log.", content_type = "text/event-stream", body = String),
        errors::BadQuery,
        errors::Unauthorized,
        errors::Invalid,
        errors::RateLimited,
        errors::Unavailable,
    )
)]
pub async fn events(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, AppError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let asked = params.since_or(|| state.engine.last_seq())?;
    // A reconnecting EventSource's Last-Event-ID wins over the URL it reconnects to.
    let since = resume.filter(|seq| *seq >= 0).unwrap_or(asked);
    let permit = state.guards.open_stream(client.0, StreamKind::Sse)?;
    let frames =
        follow(state.engine.clone(), since, state.streams.shutdown_signal()).map(move |event| {
            // Held as long as the stream is.
            let _ = &permit;
            let json = serde_json::to_string(&event).unwrap_or_default();
            Ok::<_, Infallible>(Bytes::from(format!("id: {}\ndata: {json}\n\n", event.seq)))
        });
    let mut response = Response::new(Body::from_stream(frames));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Every event after `since`, in order, then live until shutdown.
pub fn follow(
    engine: Engine,
    since: i64,
    mut shutdown: watch::Receiver<bool>,
) -> impl Stream<Item = LogEvent> + Send {
    async_stream::stream! {
        // Subscribed before the first read, so nothing committed in between is missed.
        let mut wake = engine.subscribe();
        let mut cursor = since;
        loop {
            let page = match engine.store().events_after(cursor, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "reading the event log failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            let full = page.len() as i64 == PAGE;
            for event in page {
                cursor = event.seq;
                yield event;
            }
            if full {
                continue;
            }
            tokio::select! {
                woke = wake.recv() => match woke {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Many changes at once make one read.
                        while wake.try_recv().is_ok() {}
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = async { shutdown.wait_for(|down| *down).await.map(|_| ()) } => break,
            }
        }
    }
}
