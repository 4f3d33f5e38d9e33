//! Fan-out: V viewers over C choices, each reading its stream raw and noting when each
//! countdown message arrived; then the tick skew, the change latency and the misses.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::net::{self, Chunked, Frame};
use crate::procstat::{mono_ns, percentiles};

/// How a viewer's stream is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// `text/event-stream`, `event: remaining` with `data-remaining` and `data-deadline`.
    Sse,
    /// WebSocket text frames, `{"type":"sync","remaining_seconds":…,"deadline":"RFC 3339"}`.
    Ws,
    /// Socket.IO (Engine.IO 4) over a WebSocket: joins the room `id`, reads `tick` events.
    SocketIo,
}

/// One countdown message as it arrived.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at_ns: u64,
    pub deadline_ms: i64,
    pub remaining_ms: i64,
}

pub struct ViewerLog {
    pub group: usize,
    pub ready: bool,
    pub samples: Vec<Sample>,
    pub error: Option<String>,
}

pub struct Viewer {
    pub proto: Proto,
    pub server: SocketAddr,
    pub from: IpAddr,
    pub path: String,
    pub room: String,
    pub group: usize,
}

impl Viewer {
    /// Reads until `stop`; counts itself in `ready` at its first countdown message.
    pub async fn run(
        self,
        ready: Arc<AtomicUsize>,
        mut stop: watch::Receiver<bool>,
        permit: OwnedSemaphorePermit,
    ) -> ViewerLog {
        let mut log = ViewerLog {
            group: self.group,
            ready: false,
            samples: Vec::with_capacity(32),
            error: None,
        };
        let mut permit = Some(permit);
        let result = tokio::select! {
            r = self.read(&mut log, &ready, &mut permit) => r,
            _ = stop.wait_for(|s| *s) => Ok(()),
        };
        if let Err(e) = result {
            log.error = Some(format!("{e:#}"));
        }
        log
    }

    async fn read(
        &self,
        log: &mut ViewerLog,
        ready: &AtomicUsize,
        permit: &mut Option<OwnedSemaphorePermit>,
    ) -> anyhow::Result<()> {
        let mut stream = net::connect(self.server, Some(self.from)).await?;
        net::enable_rx_timestamps(&stream);
        let mut on_sample = |log: &mut ViewerLog, s: Sample| {
            log.samples.push(s);
            if !log.ready {
                log.ready = true;
                ready.fetch_add(1, Ordering::Relaxed);
                permit.take();
            }
        };
        match self.proto {
            Proto::Sse => self.read_sse(&mut stream, log, &mut on_sample).await,
            Proto::Ws | Proto::SocketIo => self.read_ws(&mut stream, log, &mut on_sample).await,
        }
    }

    async fn read_sse(
        &self,
        stream: &mut TcpStream,
        log: &mut ViewerLog,
        on_sample: &mut impl FnMut(&mut ViewerLog, Sample),
    ) -> anyhow::Result<()> {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.path, self.server
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::with_capacity(1024);
        let (status, head, rest) = net::read_head(stream, &mut raw).await?;
        if status != 200 {
            bail!("status {status}");
        }
        let chunked =
            net::header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let mut decoder = Chunked::default();
        let mut body: Vec<u8> = Vec::with_capacity(1024);
        let mut raw = rest;
        raw.reserve(1024);
        let mut stamp = None;
        loop {
            if chunked {
                decoder.feed(&raw, &mut body);
            } else {
                body.extend_from_slice(&raw);
            }
            let at_ns = arrival(stamp);
            let mut start = 0;
            while let Some(end) = memfind(&body[start..], b"\n\n") {
                if let Some(s) = parse_sse(&body[start..start + end], at_ns) {
                    on_sample(log, s);
                }
                start += end + 2;
            }
            body.drain(..start);
            raw.clear();
            let (n, at) = net::recv_stamped(stream, &mut raw).await?;
            if n == 0 {
                bail!("the server closed the stream");
            }
            stamp = at;
        }
    }

    async fn read_ws(
        &self,
        stream: &mut TcpStream,
        log: &mut ViewerLog,
        on_sample: &mut impl FnMut(&mut ViewerLog, Sample),
    ) -> anyhow::Result<()> {
        stream
            .write_all(net::upgrade_request(self.server, &self.path).as_bytes())
            .await?;
        let mut raw = Vec::with_capacity(1024);
        let (status, _, rest) = net::read_head(stream, &mut raw).await?;
        if status != 101 {
            bail!("upgrade answered {status}");
        }
        let mut buf = rest;
        let mut stamp = None;
        loop {
            let at_ns = arrival(stamp);
            while let Some(frame) = net::take_frame(&mut buf) {
                match frame {
                    Frame::Text(text) => {
                        if self.proto == Proto::SocketIo
                            && let Some(reply) = self.socket_io(&text)
                        {
                            stream.write_all(&net::client_frame(1, &reply)).await?;
                        }
                        if let Some(s) = parse_sync(&text, at_ns, self.proto) {
                            on_sample(log, s);
                        }
                    }
                    Frame::Ping(payload) => {
                        stream.write_all(&net::client_frame(10, &payload)).await?;
                    }
                    Frame::Close => bail!("the server closed the socket"),
                    Frame::Other => {}
                }
            }
            let (n, at) = net::recv_stamped(stream, &mut buf).await?;
            if n == 0 {
                bail!("the server closed the socket");
            }
            stamp = at;
        }
    }

    /// Engine.IO/Socket.IO handshake and heartbeat: what to answer to a packet.
    fn socket_io(&self, packet: &[u8]) -> Option<Vec<u8>> {
        match packet {
            [b'0', ..] => Some(b"40".to_vec()),
            [b'4', b'0', ..] => Some(format!("42[\"join\",\"{}\"]", self.room).into_bytes()),
            [b'2'] => Some(b"3".to_vec()),
            _ => None,
        }
    }
}

/// When bytes arrived, on the monotonic clock: the kernel's receive stamp (wall clock) moved
/// onto it, or now when there is none.
fn arrival(stamp: Option<i64>) -> u64 {
    static WALL_MINUS_MONO_NS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let offset =
        *WALL_MINUS_MONO_NS.get_or_init(|| crate::procstat::wall_ns() as i64 - mono_ns() as i64);
    match stamp {
        Some(wall) if wall > offset => {
            STAMPED.fetch_add(1, Ordering::Relaxed);
            (wall - offset) as u64
        }
        _ => {
            UNSTAMPED.fetch_add(1, Ordering::Relaxed);
            mono_ns()
        }
    }
}

/// Reads that carried a kernel receive stamp, and those that did not (stamped with "now").
pub static STAMPED: AtomicU64 = AtomicU64::new(0);
pub static UNSTAMPED: AtomicU64 = AtomicU64::new(0);

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    net::find(hay, needle)
}

/// A `remaining` SSE message: its `data-remaining` (seconds) and `data-deadline` (Unix ms).
fn parse_sse(message: &[u8], at_ns: u64) -> Option<Sample> {
    memfind(message, b"event: remaining")?;
    let remaining = attr(message, b"data-remaining=\"")?;
    let deadline = attr(message, b"data-deadline=\"")?;
    Some(Sample {
        at_ns,
        deadline_ms: std::str::from_utf8(deadline).ok()?.parse().ok()?,
        remaining_ms: seconds_to_ms(std::str::from_utf8(remaining).ok()?.parse().ok()?),
    })
}

fn attr<'a>(message: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let start = memfind(message, name)? + name.len();
    let len = message[start..].iter().position(|&b| b == b'"')?;
    Some(&message[start..start + len])
}

fn seconds_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

#[derive(serde::Deserialize)]
struct Sync {
    #[serde(rename = "type")]
    kind: Option<String>,
    remaining_seconds: Option<f64>,
    deadline: Option<String>,
}

/// A `sync` message (or a Socket.IO `tick` event) with its remaining time and deadline.
fn parse_sync(text: &[u8], at_ns: u64, proto: Proto) -> Option<Sample> {
    let sync: Sync = match proto {
        Proto::SocketIo => {
            let body = text.strip_prefix(b"42")?;
            let (name, sync): (String, Sync) = serde_json::from_slice(body).ok()?;
            (name == "tick").then_some(sync)?
        }
        _ => {
            let sync: Sync = serde_json::from_slice(text).ok()?;
            (sync.kind.as_deref() == Some("sync")).then_some(sync)?
        }
    };
    Some(Sample {
        at_ns,
        deadline_ms: net::parse_rfc3339_ms(sync.deadline.as_deref()?)?,
        remaining_ms: seconds_to_ms(sync.remaining_seconds?),
    })
}

/// A timeout change the generator posted: which group, when, and the deadline it set.
pub struct Change {
    pub group: usize,
    pub at_ns: u64,
    pub deadline_ms: i64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Analysis {
    /// Countdown messages expected in the window (ticks × viewers) and those that never came.
    pub ticks_expected: u64,
    pub ticks_missed: u64,
    /// Per tick and choice: the spread of arrival times across its viewers, ms.
    pub spread_ms: [f64; 3],
    /// Across all viewers: arrival minus the instant the message was rendered for, ms.
    pub lateness_ms: [f64; 3],
    /// Per change: POST sent → the last viewer of that choice has the new deadline, ms.
    pub change_all_ms: [f64; 3],
    /// Per viewer and change: POST sent → this viewer has it, ms.
    pub change_each_ms: [f64; 2],
    pub changes: usize,
    /// Viewer deliveries of a change that never came.
    pub change_missed: u64,
    /// The largest spreads: which choice, and when in the window (for a look at the cause).
    pub worst_spreads: Vec<String>,
    /// Countdown messages that arrived inside the tick window.
    pub delivered_in_window: u64,
}

/// Per tick key (deadline, displayed second): each viewer's first arrival and the instant the
/// message was rendered for.
type TickArrivals = HashMap<(i64, i64), Vec<(u64, i64)>>;

/// Tick skew and misses over the window `[w0, w1]` (monotonic ns), change latency after it.
/// `wall_minus_mono_ms` turns an arrival into wall-clock time for the lateness.
pub fn analyse(
    logs: &[ViewerLog],
    groups: usize,
    (w0, w1): (u64, u64),
    wall_minus_mono_ms: f64,
    changes: &[Change],
) -> Analysis {
    let mut out = Analysis::default();
    let mut viewers_in = vec![0u64; groups];
    // Per group: tick key → (viewers who got it, first arrival, last arrival, arrivals).
    let mut ticks: Vec<TickArrivals> = vec![HashMap::new(); groups];
    for log in logs.iter().filter(|l| l.ready) {
        viewers_in[log.group] += 1;
        let mut seen = HashSet::new();
        for s in &log.samples {
            if s.at_ns >= w0 && s.at_ns <= w1 {
                out.delivered_in_window += 1;
            }
            // A tick is a displayed whole second of one deadline; a viewer's first message
            // showing it is when that viewer's countdown flipped.
            let key = (s.deadline_ms, (s.remaining_ms + 999).div_euclid(1000));
            if seen.insert(key) {
                ticks[log.group]
                    .entry(key)
                    .or_default()
                    .push((s.at_ns, s.deadline_ms - s.remaining_ms));
            }
        }
    }
    let mut spreads = Vec::new();
    let mut lateness = Vec::new();
    let mut worst = Vec::new();
    // Ticks whose first arrival falls early enough in the window that every viewer had time.
    let last_start = w1.saturating_sub(1_200_000_000);
    for (g, map) in ticks.iter().enumerate() {
        for arrivals in map.values() {
            let first = arrivals.iter().map(|a| a.0).min().unwrap_or(0);
            if first < w0 || first > last_start {
                continue;
            }
            let last = arrivals.iter().map(|a| a.0).max().unwrap_or(0);
            out.ticks_expected += viewers_in[g];
            out.ticks_missed += viewers_in[g].saturating_sub(arrivals.len() as u64);
            spreads.push((last - first) as f64 / 1e6);
            worst.push(((last - first) as f64 / 1e6, g, first, last));
            for &(at, rendered_ms) in arrivals {
                lateness.push(at as f64 / 1e6 + wall_minus_mono_ms - rendered_ms as f64);
            }
        }
    }
    let three = |v: &mut Vec<f64>| {
        let p = percentiles(v, &[50.0, 99.0, 100.0]);
        [p[0], p[1], p[2]]
    };
    out.spread_ms = three(&mut spreads);
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    out.worst_spreads = worst
        .iter()
        .take(8)
        .map(|&(ms, g, first, last)| {
            format!(
                "{ms:.1} ms: choice {g}, first at +{:.3} s, last at +{:.3} s",
                (first.saturating_sub(w0)) as f64 / 1e9,
                (last.saturating_sub(w0)) as f64 / 1e9
            )
        })
        .collect();
    out.lateness_ms = three(&mut lateness);

    let mut by_group: Vec<Vec<&ViewerLog>> = vec![Vec::new(); groups];
    for log in logs.iter().filter(|l| l.ready) {
        by_group[log.group].push(log);
    }
    let mut all = Vec::new();
    let mut each = Vec::new();
    for change in changes {
        let mut worst: f64 = 0.0;
        for log in &by_group[change.group] {
            let got = log.samples.iter().find(|s| {
                s.deadline_ms == change.deadline_ms && s.at_ns + 1_000_000 >= change.at_ns
            });
            match got {
                Some(s) => {
                    let ms = s.at_ns.saturating_sub(change.at_ns) as f64 / 1e6;
                    worst = worst.max(ms);
                    each.push(ms);
                }
                None => out.change_missed += 1,
            }
        }
        all.push(worst);
    }
    out.changes = changes.len();
    out.change_all_ms = three(&mut all);
    let p = percentiles(&mut each, &[50.0, 99.0]);
    out.change_each_ms = [p[0], p[1]];
    out
}

/// Starts `viewers` readers spread over `paths` (one per group) and source addresses, at most
/// `connecting` handshakes in flight; waits until all have their first message or `limit`.
#[allow(clippy::too_many_arguments)]
pub async fn connect_all(
    proto: Proto,
    server: SocketAddr,
    paths: &[(String, String)],
    viewers: usize,
    connecting: usize,
    limit: std::time::Duration,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<(Vec<tokio::task::JoinHandle<ViewerLog>>, usize)> {
    let ready = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(connecting));
    let mut handles = Vec::with_capacity(viewers);
    for n in 0..viewers {
        let permit = gate.clone().acquire_owned().await.context("semaphore")?;
        let group = n % paths.len();
        let viewer = Viewer {
            proto,
            server,
            from: net::source(n),
            path: paths[group].0.clone(),
            room: paths[group].1.clone(),
            group,
        };
        handles.push(tokio::spawn(viewer.run(
            ready.clone(),
            stop.clone(),
            permit,
        )));
    }
    let until = tokio::time::Instant::now() + limit;
    loop {
        let n = ready.load(Ordering::Relaxed);
        let failed = handles.iter().filter(|h| h.is_finished()).count();
        if n + failed >= viewers || tokio::time::Instant::now() > until {
            return Ok((handles, n));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
