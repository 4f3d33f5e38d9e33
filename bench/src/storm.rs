//! Storms: V viewers open their streams at once, as after a restart or a network blip, with
//! no handshake throttling; and a restart with V viewers attached, each reconnecting as an
//! EventSource would (after the server's `retry:`). Measured: the time from each viewer's
//! connect to its first current frame, errors by status, and bytes per viewer per second.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::fanout::Proto;
use crate::net::{self, Chunked, Frame};
use crate::procstat::{self, mono_ns, percentiles};

/// What one viewer saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Connect → first countdown frame, ms; none if it never came.
    pub first_ms: Option<f64>,
    /// When it was first current (monotonic ns).
    pub current_at_ns: Option<u64>,
    /// When it began its first connect (monotonic ns).
    pub started_at_ns: u64,
    /// After a restart: when it was current again (monotonic ns).
    pub current_again_at_ns: Option<u64>,
    /// Why it failed: `status 503`, `connect: …`, `closed`.
    pub error: Option<String>,
    /// Reconnect attempts refused while the server was down (expected; not errors).
    pub refused: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Storm {
    pub viewers: usize,
    pub current: usize,
    pub errors: BTreeMap<String, usize>,
    /// Each viewer's connect → first current frame: p50, p99, max (ms).
    pub first_frame_ms: [f64; 3],
    /// From the storm's start until the last viewer was current (ms).
    pub all_current_ms: f64,
    /// From the storm's start until the last viewer began to connect (ms): the generator's
    /// own spread, the same for every stack only if the generator is not the bottleneck.
    pub last_connect_started_ms: f64,
    /// Bytes the viewers received per viewer per second over the window (headers excluded).
    pub bytes_per_viewer_per_second: f64,
    pub window_seconds: f64,
    /// CPU seconds spent from the start until every viewer was current: [server, generator].
    pub cpu_until_current_s: [f64; 2],
    /// The server's resident memory when every viewer was current.
    pub server_rss_kib: u64,
}

/// Opens `viewers` streams at once, spread round-robin over `paths`, and reads for `window`.
pub async fn run(
    proto: Proto,
    server: SocketAddr,
    server_pid: u32,
    paths: &[String],
    viewers: usize,
    window: Duration,
) -> anyhow::Result<Storm> {
    let cpu = || {
        (
            procstat::cpu_seconds(server_pid).unwrap_or(0.0),
            procstat::own_cpu_seconds().unwrap_or(0.0),
        )
    };
    let cpu_before = cpu();
    let start = mono_ns();
    let deadline = tokio::time::Instant::now() + window;
    let crowd = Crowd::spawn(proto, server, paths, viewers, false);
    let Crowd {
        tally, stop, tasks, ..
    } = crowd;
    while (tally.current.load(Ordering::Relaxed) as usize) < viewers
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu_after = cpu();
    let rss_kib = procstat::rss_kib(server_pid).unwrap_or(0);
    tokio::time::sleep_until(deadline).await;
    let window_s = (mono_ns() - start) as f64 / 1e9;
    let received = tally.bytes.load(Ordering::Relaxed);
    let _ = stop.send(true);
    let mut seen = Vec::with_capacity(viewers);
    for task in tasks {
        seen.push(task.await?);
    }
    let cpu_until_current_s = [cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1];
    Ok(summarise(
        &seen,
        start,
        received,
        window_s,
        cpu_until_current_s,
        rss_kib,
    ))
}

fn summarise(
    seen: &[Seen],
    start: u64,
    received: u64,
    window_s: f64,
    cpu_until_current_s: [f64; 2],
    server_rss_kib: u64,
) -> Storm {
    let mut errors = BTreeMap::new();
    for e in seen.iter().filter_map(|s| s.error.as_ref()) {
        *errors.entry(e.clone()).or_insert(0) += 1;
    }
    let mut first: Vec<f64> = seen.iter().filter_map(|s| s.first_ms).collect();
    let current = first.len();
    let p = percentiles(&mut first, &[50.0, 99.0, 100.0]);
    let last = seen
        .iter()
        .filter_map(|s| s.current_at_ns)
        .max()
        .unwrap_or(start);
    let last_started = seen.iter().map(|s| s.started_at_ns).max().unwrap_or(start);
    Storm {
        last_connect_started_ms: (last_started.saturating_sub(start)) as f64 / 1e6,
        viewers: seen.len(),
        current,
        errors,
        first_frame_ms: [p[0], p[1], p[2]],
        all_current_ms: (last.saturating_sub(start)) as f64 / 1e6,
        bytes_per_viewer_per_second: received as f64 / seen.len().max(1) as f64 / window_s,
        window_seconds: window_s,
        cpu_until_current_s,
        server_rss_kib,
    }
}

#[derive(Debug, serde::Serialize)]
pub struct Restart {
    pub viewers: usize,
    /// Viewers connected and current before the kill.
    pub attached: usize,
    /// Viewers current again after the restart.
    pub current_again: usize,
    pub errors: BTreeMap<String, usize>,
    /// Reconnects refused while the server was down (what an EventSource sees; not errors).
    pub refused_while_down: u64,
    /// From the server answering again until every viewer was current again (ms).
    pub all_current_after_up_ms: f64,
    /// Each viewer: server answering → current again, p50, p99, max (ms).
    pub current_again_ms: [f64; 3],
}

/// Attaches `viewers` SSE viewers, then calls `restart` (which kills the server with SIGKILL,
/// starts it again and answers the monotonic time it answered again); each viewer reconnects
/// after the server's `retry:` as an EventSource does. Waits until all are current or
/// `limit` passes.
pub async fn restart<F, Fut>(
    server: SocketAddr,
    paths: &[String],
    viewers: usize,
    restart: F,
    limit: Duration,
) -> anyhow::Result<Restart>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let Crowd {
        tally,
        stop,
        restart: restart_tx,
        tasks,
    } = Crowd::spawn(Proto::Sse, server, paths, viewers, true);
    // Everyone attached first (or 120 s).
    let attach_until = tokio::time::Instant::now() + Duration::from_secs(120);
    while (tally.current.load(Ordering::Relaxed) as usize) < viewers
        && tokio::time::Instant::now() < attach_until
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attached = tally.current.load(Ordering::Relaxed) as usize;
    let _ = restart_tx.send(1);
    let up_at = restart().await?;
    let until = tokio::time::Instant::now() + limit;
    while (tally.again.load(Ordering::Relaxed) as usize) < attached
        && tokio::time::Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let mut seen = Vec::with_capacity(viewers);
    for task in tasks {
        seen.push(task.await?);
    }
    let mut errors = BTreeMap::new();
    for e in seen.iter().filter_map(|s| s.error.as_ref()) {
        *errors.entry(e.clone()).or_insert(0) += 1;
    }
    let mut again: Vec<f64> = seen
        .iter()
        .filter_map(|s| s.current_again_at_ns)
        .map(|at| at.saturating_sub(up_at) as f64 / 1e6)
        .collect();
    let current_again = again.len();
    let p = percentiles(&mut again, &[50.0, 99.0, 100.0]);
    Ok(Restart {
        viewers,
        attached,
        current_again,
        errors,
        refused_while_down: seen.iter().map(|s| s.refused).sum(),
        all_current_after_up_ms: p[2],
        current_again_ms: [p[0], p[1], p[2]],
    })
}

/// Viewers of one run, all spawned at once, and what steers them.
struct Crowd {
    tally: Arc<Tally>,
    stop: watch::Sender<bool>,
    /// Moved once the server is being restarted: lost streams reconnect from then on.
    restart: watch::Sender<u64>,
    tasks: Vec<tokio::task::JoinHandle<Seen>>,
}

impl Crowd {
    fn spawn(
        proto: Proto,
        server: SocketAddr,
        paths: &[String],
        viewers: usize,
        reconnect: bool,
    ) -> Crowd {
        let tally = Arc::new(Tally::default());
        let (stop, stop_rx) = watch::channel(false);
        let (restart, _) = watch::channel(0u64);
        let tasks = (0..viewers)
            .map(|n| {
                let path = paths[n % paths.len()].clone();
                let (tally, stop) = (tally.clone(), stop_rx.clone());
                let restarted = restart.subscribe();
                tokio::spawn(async move {
                    viewer(proto, server, n, path, tally, stop, restarted, reconnect).await
                })
            })
            .collect();
        Crowd {
            tally,
            stop,
            restart,
            tasks,
        }
    }
}

/// What all viewers of a run have seen so far.
#[derive(Default)]
struct Tally {
    bytes: AtomicU64,
    /// Viewers current (at their first countdown frame).
    current: AtomicU64,
    /// Viewers current again after the restart.
    again: AtomicU64,
}

/// One viewer: connect, read until `stop`. With `reconnect`, once `restarted` moves, a lost
/// stream is opened again after the server's `retry:` (3 s without one), like an EventSource.
#[allow(clippy::too_many_arguments)]
async fn viewer(
    proto: Proto,
    server: SocketAddr,
    n: usize,
    path: String,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
    restarted: watch::Receiver<u64>,
    reconnect: bool,
) -> Seen {
    let mut seen = Seen {
        started_at_ns: mono_ns(),
        ..Seen::default()
    };
    let mut retry_ms = 3000u64;
    let mut after_restart = false;
    loop {
        let started = mono_ns();
        let mut first = None;
        let counter = if after_restart {
            &tally.again
        } else {
            &tally.current
        };
        let outcome = tokio::select! {
            r = read(proto, server, n, &path, &tally.bytes, &mut retry_ms, &mut first, counter) => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        if let Some(at) = first {
            if after_restart {
                seen.current_again_at_ns.get_or_insert(at);
            } else if seen.first_ms.is_none() {
                seen.first_ms = Some((at - started) as f64 / 1e6);
                seen.current_at_ns = Some(at);
            }
        }
        let Some(Err(e)) = outcome else {
            return seen;
        };
        let restarting = reconnect && *restarted.borrow() > 0;
        if !restarting || seen.current_again_at_ns.is_some() {
            // Lost before any restart, or lost again after being current again.
            seen.error = Some(e.to_string());
            // Wait for the stop, so the others' byte count is not disturbed.
            let _ = stop.wait_for(|s| *s).await;
            return seen;
        }
        if e.refused {
            seen.refused += 1;
        } else if e.status.is_some() {
            seen.error = Some(e.to_string());
        }
        after_restart = true;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(retry_ms)) => {}
            _ = stop.wait_for(|s| *s) => return seen,
        }
    }
}

#[derive(Debug)]
struct Failure {
    refused: bool,
    status: Option<u16>,
    what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "status {status}"),
            None => f.write_str(&self.what),
        }
    }
}

fn failure(e: impl std::fmt::Display) -> Failure {
    let what = format!("{e}");
    Failure {
        refused: what.contains("refused") || what.contains("reset"),
        status: None,
        what: if what.contains("refused") {
            "connect refused".into()
        } else if what.contains("reset") {
            "connection reset".into()
        } else {
            what
        },
    }
}

/// One connection: answers when its first countdown frame came (if it did) and how it ended.
#[allow(clippy::too_many_arguments)]
async fn read(
    proto: Proto,
    server: SocketAddr,
    n: usize,
    path: &str,
    bytes: &AtomicU64,
    retry_ms: &mut u64,
    first: &mut Option<u64>,
    current: &AtomicU64,
) -> Result<(), Failure> {
    let mut stream = net::connect(server, Some(net::source(n)))
        .await
        .map_err(failure)?;
    let mut seen_first = |first: &mut Option<u64>| {
        if first.is_none() {
            *first = Some(mono_ns());
            current.fetch_add(1, Ordering::Relaxed);
        }
    };
    match proto {
        Proto::Sse => {
            read_sse(
                &mut stream,
                server,
                path,
                bytes,
                retry_ms,
                first,
                &mut seen_first,
            )
            .await
        }
        _ => read_ws(&mut stream, server, path, bytes, first, &mut seen_first).await,
    }
}

async fn read_sse(
    stream: &mut TcpStream,
    server: SocketAddr,
    path: &str,
    bytes: &AtomicU64,
    retry_ms: &mut u64,
    first: &mut Option<u64>,
    seen_first: &mut impl FnMut(&mut Option<u64>),
) -> Result<(), Failure> {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nAccept: text/event-stream\r\n\r\n");
    let rest = open(stream, &request, 200, bytes).await?;
    let mut decoder = Chunked::default();
    let mut body = Vec::with_capacity(1024);
    let mut raw = rest;
    loop {
        decoder.feed(&raw, &mut body);
        let mut start = 0;
        while let Some(end) = net::find(&body[start..], b"\n\n") {
            let message = &body[start..start + end];
            if let Some(at) = net::find(message, b"retry: ") {
                let digits: Vec<u8> = message[at + 7..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .copied()
                    .collect();
                if let Some(ms) = std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                {
                    *retry_ms = ms;
                }
            }
            if net::find(message, b"event: remaining").is_some() {
                seen_first(first);
            }
            start += end + 2;
        }
        body.drain(..start);
        raw.clear();
        let n = read_some(stream, &mut raw).await?;
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn read_ws(
    stream: &mut TcpStream,
    server: SocketAddr,
    path: &str,
    bytes: &AtomicU64,
    first: &mut Option<u64>,
    seen_first: &mut impl FnMut(&mut Option<u64>),
) -> Result<(), Failure> {
    let mut buf = open(stream, &net::upgrade_request(server, path), 101, bytes).await?;
    loop {
        while let Some(frame) = net::take_frame(&mut buf) {
            match frame {
                Frame::Text(text) => {
                    if net::find(&text, b"\"type\":\"sync\"").is_some() {
                        seen_first(first);
                    }
                }
                Frame::Ping(payload) => {
                    stream
                        .write_all(&net::client_frame(10, &payload))
                        .await
                        .map_err(failure)?;
                }
                Frame::Close => return Err(failure("the server closed the socket")),
                Frame::Other => {}
            }
        }
        let n = read_some(stream, &mut buf).await?;
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Sends the request and reads the answer's head; answers the bytes after it, counted.
async fn open(
    stream: &mut TcpStream,
    request: &str,
    expected: u16,
    bytes: &AtomicU64,
) -> Result<Vec<u8>, Failure> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(failure)?;
    let mut raw = Vec::with_capacity(1024);
    let (status, _, rest) = net::read_head(stream, &mut raw).await.map_err(failure)?;
    if status != expected {
        return Err(Failure {
            refused: false,
            status: Some(status),
            what: String::new(),
        });
    }
    bytes.fetch_add(rest.len() as u64, Ordering::Relaxed);
    Ok(rest)
}

async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, Failure> {
    use tokio::io::AsyncReadExt;
    buf.reserve(4096);
    match stream.read_buf(buf).await {
        Ok(0) => Err(failure("the server closed the stream")),
        Ok(n) => Ok(n),
        Err(e) => Err(failure(e)),
    }
}

/// Fails unless every viewer was current and none failed.
pub fn check(storm: &Storm) -> anyhow::Result<()> {
    if storm.current != storm.viewers || !storm.errors.is_empty() {
        bail!(
            "{} of {} current, errors {:?}",
            storm.current,
            storm.viewers,
            storm.errors
        );
    }
    Ok(())
}
