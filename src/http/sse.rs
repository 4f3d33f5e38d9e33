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
use super::{AppError, AppState, Asks, PathIds, Wants, viewer_of};
use crate::frame::{self, Part};

/// A comment line; proxies and browsers keep the connection open.
const KEEPALIVE: &[u8] = b": keepalive\n\n";
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);
/// How long a client waits before reconnecting (SSE `retry:`), drawn from this range per
/// stream, so a wave of reconnects after a restart spreads out instead of arriving at once.
const RETRY_MS: std::ops::RangeInclusive<u64> = 500..=2500;

pub async fn choice_events(
    State(state): State<AppState>,
    PathIds { id, .. }: PathIds,
    client: ClientIp,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let permit = state.guards.open_stream(client.0, StreamKind::Sse)?;
    let dialect = Dialect::of(&headers);
    // Subscribed and read as one step: the first frames are the choice as it is now.
    let watch = state
        .engine
        .live()
        .watch(&id, viewer_of(&headers))
        .await?
        .ok_or(AppError::NotFound)?;
    let stats = state.streams.clone();
    let shutdown = until_shutdown(state.streams.shutdown_signal());
    let stream = async_stream::stream! {
        let _permit = permit;
        // The whole watch moves in (not only the field used): dropping it is leaving.
        let mut watch = watch;
        tokio::pin!(shutdown);
        // A field of the first message (the status frame follows without a blank line).
        let mut preamble = Some(retry_field());
        let mut sent = [0u64; 3];
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE_EVERY, KEEPALIVE_EVERY);
        loop {
            // Only the parts this viewer has not sent are cloned: the rest of the frames are
            // shared by every viewer of the choice, and touching their counters costs on every tick.
            let (fresh_parts, close) = {
                let frames = watch.frames.borrow_and_update();
                let mut parts = Vec::with_capacity(6);
                for (part, last) in [&frames.status, &frames.remaining, &frames.viewers].into_iter().zip(sent.iter_mut()) {
                    if let Some(bytes) = fresh(part, last, &stats) {
                        dialect.push(&mut parts, bytes);
                    }
                }
                let close = frames.closed.then(|| format!("id: {}\nevent: close\ndata:\n\n", frames.seq));
                (parts, close)
            };
            // One write for what is ready together (at connect: retry and three frames).
            let mut ready: Vec<Bytes> = preamble.take().into_iter().chain(fresh_parts).collect();
            match ready.len() {
                0 => {}
                1 => yield ready.remove(0),
                _ => yield Bytes::from(ready.concat()),
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
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let permit = state.guards.open_stream(client.0, StreamKind::Sse)?;
    let dialect = Dialect::of(&headers);
    let mut frames = state.streams.dashboard().watch().await;
    let shutdown = state.streams.shutdown_signal();
    let stats = state.streams.clone();
    let stream = async_stream::stream! {
        let _permit = permit;
        let shutdown = until_shutdown(shutdown);
        tokio::pin!(shutdown);
        yield retry_field();
        let mut sent = [0u64; 2];
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE_EVERY, KEEPALIVE_EVERY);
        loop {
            let now = frames.borrow_and_update().clone();
            let mut ready = Vec::with_capacity(4);
            for (part, last) in [&now.board, &now.remaining].into_iter().zip(sent.iter_mut()) {
                if let Some(bytes) = fresh(part, last, &stats) {
                    dialect.push(&mut ready, bytes);
                }
            }
            for bytes in ready {
                yield bytes;
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

/// How a stream names its fragments: by their part (`event: status`), as API.md gives them, or
/// unnamed for htmx on our own pages, whose SSE extension swaps only unnamed messages.
#[derive(Clone, Copy)]
enum Dialect {
    Named,
    Htmx,
}

impl Dialect {
    fn of(headers: &HeaderMap) -> Dialect {
        match Asks::of(headers).or(Wants::Json) {
            Wants::Fragment => Dialect::Htmx,
            Wants::Json | Wants::Page => Dialect::Named,
        }
    }

    fn push(self, out: &mut Vec<Bytes>, frame: Bytes) {
        match self {
            Dialect::Named => out.push(frame),
            Dialect::Htmx => out.extend(frame::unnamed(&frame)),
        }
    }
}

/// Resolves when the server shuts down. Made once per stream and polled by reference: a fresh
/// `wait_for` in every loop would join and leave the one shutdown channel's waiter list (a lock
/// every viewer shares) twice per tick.
pub(super) async fn until_shutdown(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}

/// The part's frame if it is newer than what this viewer last sent, counting skipped ones.
fn fresh(part: &Part, last: &mut u64, streams: &crate::streams::Streams) -> Option<Bytes> {
    if part.count == *last || part.bytes.is_empty() {
        return None;
    }
    let stats = streams.stats();
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

/// `retry: N`, N drawn from `RETRY_MS`.
fn retry_field() -> Bytes {
    let mut random = [0u8; 8];
    let spread = RETRY_MS.end() - RETRY_MS.start() + 1;
    let jitter = match getrandom::fill(&mut random) {
        Ok(()) => u64::from_le_bytes(random) % spread,
        Err(_) => spread / 2,
    };
    Bytes::from(format!("retry: {}\n", RETRY_MS.start() + jitter))
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
