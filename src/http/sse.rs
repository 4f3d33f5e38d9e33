//! The SSE streams: `/choice/{id}/events` and `/events`. Each connection only copies the hub's
//! ready frames onto its socket; it never renders for itself.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use futures_util::Stream;

use super::limits::{ClientIp, StreamKind};
use super::{AppError, AppState, PathIds, viewer_of};
use crate::hub::Part;

/// A comment line; proxies and browsers keep the connection open.
const KEEPALIVE: &[u8] = b": keepalive\n\n";
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

pub async fn choice_events(
    State(state): State<AppState>,
    PathIds { id, .. }: PathIds,
    client: ClientIp,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let permit = state.guards.open_stream(client.0, StreamKind::Sse)?;
    let seq = state.engine.last_seq();
    let choice = state.engine.get(&id).await?;
    let watch = state.hub.watch(choice, seq, viewer_of(&headers));
    let stats = state.hub.clone();
    let stream = async_stream::stream! {
        let _permit = permit;
        let mut watch = watch;
        let shutdown = until_shutdown(watch.shutdown.clone());
        tokio::pin!(shutdown);
        let mut sent = [0u64; 3];
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE_EVERY, KEEPALIVE_EVERY);
        loop {
            // Only the parts this viewer has not sent are cloned: the rest of the frames are
            // shared by every viewer of the choice, and touching their counters costs on every tick.
            let (fresh_parts, close) = {
                let frames = watch.frames.borrow_and_update();
                let mut parts: [Option<Bytes>; 3] = Default::default();
                for ((part, last), out) in [&frames.status, &frames.remaining, &frames.viewers].into_iter().zip(sent.iter_mut()).zip(parts.iter_mut()) {
                    *out = fresh(part, last, &stats);
                }
                let close = frames.closed.then(|| format!("id: {}\nevent: close\ndata:\n\n", seq_of(&frames.status.bytes)));
                (parts, close)
            };
            for bytes in fresh_parts.into_iter().flatten() {
                yield bytes;
            }
            if let Some(close) = close {
                yield Bytes::from(close);
                break;
            }
            tokio::select! {
                changed = watch.frames.changed() => if changed.is_err() { break },
                _ = keepalive.tick() => yield Bytes::from_static(KEEPALIVE),
                _ = &mut shutdown => break,
            }
        }
    };
    Ok(event_stream(stream))
}

pub async fn dashboard_events(
    State(state): State<AppState>,
    client: ClientIp,
) -> Result<Response, AppError> {
    let permit = state.guards.open_stream(client.0, StreamKind::Sse)?;
    let (mut frames, shutdown) = state.hub.watch_dashboard().await;
    let stats = state.hub.clone();
    let stream = async_stream::stream! {
        let _permit = permit;
        let shutdown = until_shutdown(shutdown);
        tokio::pin!(shutdown);
        let mut sent = [0u64; 2];
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE_EVERY, KEEPALIVE_EVERY);
        loop {
            let now = frames.borrow_and_update().clone();
            for (part, last) in [&now.board, &now.remaining].into_iter().zip(sent.iter_mut()) {
                if let Some(bytes) = fresh(part, last, &stats) {
                    yield bytes;
                }
            }
            tokio::select! {
                changed = frames.changed() => if changed.is_err() { break },
                _ = keepalive.tick() => yield Bytes::from_static(KEEPALIVE),
                _ = &mut shutdown => break,
            }
        }
    };
    Ok(event_stream(stream))
}

/// Resolves when the server shuts down. Made once per stream and polled by reference: a fresh
/// `wait_for` in every loop would join and leave the one shutdown channel's waiter list (a lock
/// every viewer shares) twice per tick.
pub(super) async fn until_shutdown(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}

/// The part's frame if it is newer than what this viewer last sent, counting skipped ones.
fn fresh(part: &Part, last: &mut u64, hub: &crate::hub::Hub) -> Option<Bytes> {
    if part.count == *last || part.bytes.is_empty() {
        return None;
    }
    let stats = hub.stats();
    if *last > 0 && part.count > *last + 1 {
        stats
            .frames_skipped
            .fetch_add(part.count - *last - 1, std::sync::atomic::Ordering::Relaxed);
    }
    stats
        .frames_sent
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    *last = part.count;
    Some(part.bytes.clone())
}

/// The `id:` of a rendered frame, reused for the `close` message.
fn seq_of(frame: &[u8]) -> &str {
    std::str::from_utf8(frame)
        .ok()
        .and_then(|f| f.strip_prefix("id: "))
        .and_then(|f| f.split('\n').next())
        .unwrap_or("0")
}

fn event_stream(stream: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    use futures_util::StreamExt;
    let mut response = Response::new(Body::from_stream(stream.map(Ok::<_, Infallible>)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
