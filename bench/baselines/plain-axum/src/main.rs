//! The floor: the least an axum server can do for a countdown page. Once a second, on the
//! wall-clock second, it renders one 300-byte SSE frame and broadcasts the same bytes to every
//! open `GET /choice/{id}/events` stream. No state, no database, no presence, no rendering per
//! viewer: what the stack (tokio + hyper + axum) costs before any of choiceboard's code.
//!
//! `plain-axum [ADDR]` (default 127.0.0.1:8090).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

const FRAME_LEN: usize = 300;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into())
        .parse()
        .map_err(|e| std::io::Error::other(format!("bad address: {e}")))?;
    let (frames, _) = broadcast::channel::<Bytes>(16);
    tokio::spawn(tick(frames.clone()));
    let app = Router::new()
        .route("/choice/{id}/events", get(events))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(frames);
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    eprintln!("plain-axum listening on {addr}");
    axum::serve(listener, app).await
}

async fn events(
    axum::extract::State(frames): axum::extract::State<broadcast::Sender<Bytes>>,
) -> Response {
    // A lagging viewer skips the frames it missed, like choiceboard's viewers do.
    let stream = BroadcastStream::new(frames.subscribe())
        .filter_map(|frame| async move { frame.ok().map(Ok::<_, Infallible>) });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Renders the frame once per wall-clock second; the countdown runs to one fixed deadline.
async fn tick(frames: broadcast::Sender<Bytes>) {
    let deadline = now_ms() + 3_600_000;
    let mut seq = 0u64;
    loop {
        let wait = 1000 - now_ms().rem_euclid(1000);
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        seq += 1;
        let now = now_ms();
        let _ = frames.send(frame(seq, deadline - now, deadline));
    }
}

/// `id`, `event: remaining` and a countdown fragment shaped like choiceboard's, padded to
/// exactly 300 bytes.
fn frame(seq: u64, remaining_ms: i64, deadline: i64) -> Bytes {
    let head = format!(
        "id: {seq}\nevent: remaining\ndata: <span id=\"remaining\" data-remaining=\"{}.{:03}\" data-deadline=\"{deadline}\">",
        remaining_ms / 1000,
        remaining_ms % 1000
    );
    let tail = "</span>\n\n";
    let pad = FRAME_LEN.saturating_sub(head.len() + tail.len());
    let mut out = String::with_capacity(FRAME_LEN);
    out.push_str(&head);
    out.push_str(&"x".repeat(pad));
    out.push_str(tail);
    Bytes::from(out)
}
