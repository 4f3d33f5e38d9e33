//! Abuse resistance: who a client is (its address), a token bucket per client for everything
//! that changes state, caps on open streams per client and in total, and a time limit on every
//! request that is not a stream or the long poll. The defaults are far above what a team
//! watching its choices ever needs; each is a flag.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};

use super::{AppError, AppState, Asks, changes_state};

/// The limits a server runs with.
#[derive(Clone, Debug)]
pub struct Limits {
    /// State-changing requests (commands, creates, forms; WebSocket commands too) per second
    /// per client, refilled continuously; 0 turns the rate limit off.
    pub rate_per_second: f64,
    /// How many such requests a client may make at once before the rate applies.
    pub rate_burst: f64,
    /// Open streams (SSE and WebSocket) per client; 0 = no cap.
    pub streams_per_client: usize,
    /// Open streams on this server in all; 0 = no cap.
    pub streams_total: usize,
    /// How long any request but a stream or the long poll may take to be answered.
    pub request_timeout: Duration,
    /// How long a client may take to send a request's headers (also how long an idle
    /// keep-alive connection stays open).
    pub header_timeout: Duration,
    /// Take the client's address from the last `X-Forwarded-For` entry (behind a reverse proxy
    /// that sets it); otherwise every client behind the proxy is one client.
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate_per_second: 20.0,
            rate_burst: 100.0,
            streams_per_client: 1000,
            streams_total: streams_the_open_file_limit_allows(),
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            trust_forwarded_for: false,
        }
    }
}

/// Open files kept for everything but streams: the database, requests, the listener.
const FILES_HEADROOM_MIN: u64 = 256;

/// Each stream is a socket: as many as the process may open, less a twentieth (at least 256)
/// for the database and requests, so the cap answers 503 before `accept` starts failing. The
/// soft limit is raised to the hard one first (once), as servers commonly do.
pub fn streams_the_open_file_limit_allows() -> usize {
    static STREAMS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *STREAMS.get_or_init(|| {
        let files = raise_open_file_limit();
        let headroom = (files / 20).max(FILES_HEADROOM_MIN);
        files.saturating_sub(headroom).max(1) as usize
    })
}

/// Raises the soft open-file limit to the hard one; answers the limit now in force.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    // RLIM_INFINITY: no limit worth counting against; a million streams is plenty.
    limit.rlim_cur.min(1 << 20)
}

impl Limits {
    /// No rate limit and no stream caps, for load tests (timeouts stay).
    pub fn unlimited() -> Self {
        Limits {
            rate_per_second: 0.0,
            streams_per_client: 0,
            streams_total: 0,
            ..Limits::default()
        }
    }
}

/// The live state behind the limits: buckets and stream counts.
pub struct Guards {
    pub limits: Limits,
    /// A token bucket per client address; `None` when the rate limit is off.
    per_client: Option<DefaultKeyedRateLimiter<IpAddr>>,
    swept: Mutex<Instant>,
    streams: Mutex<HashMap<IpAddr, usize>>,
    open_sse: AtomicUsize,
    open_ws: AtomicUsize,
    pub rate_limited: AtomicU64,
    pub streams_refused: AtomicU64,
}

/// Buckets are swept (full ones forgotten) at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// `per_second` requests a second, `burst` of them at once; `None` for no limit (0, or a rate
/// too high to measure).
pub fn quota(per_second: f64, burst: f64) -> Option<Quota> {
    if per_second.is_nan() || per_second <= 0.0 {
        return None;
    }
    let period = Duration::try_from_secs_f64(1.0 / per_second).ok()?;
    let burst =
        NonZeroU32::new(burst.clamp(1.0, u32::MAX as f64) as u32).unwrap_or(NonZeroU32::MIN);
    Some(Quota::with_period(period)?.allow_burst(burst))
}

/// Seconds until a refused request may be tried again: at least 1, at most an hour.
pub fn retry_after(refused: &NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let wait = refused.wait_time_from(DefaultClock::default().now());
    wait.as_secs_f64().ceil().clamp(1.0, 3600.0) as u64
}

impl Guards {
    pub fn new(limits: Limits) -> Guards {
        Guards {
            per_client: quota(limits.rate_per_second, limits.rate_burst).map(RateLimiter::hashmap),
            limits,
            swept: Mutex::new(Instant::now()),
            streams: Mutex::default(),
            open_sse: AtomicUsize::new(0),
            open_ws: AtomicUsize::new(0),
            rate_limited: AtomicU64::new(0),
            streams_refused: AtomicU64::new(0),
        }
    }

    /// Takes one token from the client's bucket, or says how many seconds until one is there.
    pub fn take(&self, client: IpAddr) -> Result<(), AppError> {
        let Some(per_client) = &self.per_client else {
            return Ok(());
        };
        {
            let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
            if swept.elapsed() > SWEEP_EVERY {
                // A bucket that has refilled is the same as no bucket: forget it, so memory
                // follows the clients of the last minute, not every address ever seen.
                *swept = Instant::now();
                per_client.retain_recent();
            }
        }
        per_client.check_key(&client).map_err(|refused| {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            AppError::RateLimited {
                retry_after_secs: retry_after(&refused),
            }
        })
    }

    /// A place for one more stream of this client, held until the permit is dropped.
    pub fn open_stream(
        self: &Arc<Self>,
        client: IpAddr,
        kind: StreamKind,
    ) -> Result<StreamPermit, AppError> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let total = self.open_sse.load(Ordering::Relaxed) + self.open_ws.load(Ordering::Relaxed);
        let mine = streams.get(&client).copied().unwrap_or(0);
        let (per_client, all) = (self.limits.streams_per_client, self.limits.streams_total);
        if per_client > 0 && mine >= per_client {
            self.streams_refused.fetch_add(1, Ordering::Relaxed);
            return Err(AppError::RateLimited {
                retry_after_secs: 5,
            });
        }
        if all > 0 && total >= all {
            self.streams_refused.fetch_add(1, Ordering::Relaxed);
            return Err(AppError::Unavailable(
                "this server has as many open streams as it takes; try again shortly".into(),
            ));
        }
        *streams.entry(client).or_insert(0) += 1;
        self.counter(kind).fetch_add(1, Ordering::Relaxed);
        Ok(StreamPermit {
            guards: self.clone(),
            client,
            kind,
        })
    }

    /// Open SSE streams and WebSockets on this server.
    pub fn open_streams(&self) -> (usize, usize) {
        (
            self.open_sse.load(Ordering::Relaxed),
            self.open_ws.load(Ordering::Relaxed),
        )
    }

    fn counter(&self, kind: StreamKind) -> &AtomicUsize {
        match kind {
            StreamKind::Sse => &self.open_sse,
            StreamKind::WebSocket => &self.open_ws,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Sse,
    WebSocket,
}

/// One open stream; dropping it (the stream ends) gives the place back.
pub struct StreamPermit {
    guards: Arc<Guards>,
    client: IpAddr,
    kind: StreamKind,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut streams = self
            .guards
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = streams.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.client);
            }
        }
        self.guards
            .counter(self.kind)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The client's address, as the limits count it. IPv6 clients count by their /64, which is
/// what one subscriber usually gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn of(
        parts_extensions: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
        trust_forwarded: bool,
    ) -> ClientIp {
        let forwarded = trust_forwarded
            .then(|| {
                headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .filter_map(|v| v.trim().parse::<IpAddr>().ok())
                    .next_back()
            })
            .flatten();
        let peer = parts_extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = forwarded
            .or(peer)
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
            .to_canonical();
        ClientIp(match ip {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        })
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(
            &parts.extensions,
            &parts.headers,
            state.guards.limits.trust_forwarded_for,
        ))
    }
}

/// Middleware: every state-changing request takes a token from its client's bucket.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if changes_state(request.method()) && !state.settings.unmetered(request.headers()) {
        let client = ClientIp::of(
            request.extensions(),
            request.headers(),
            state.guards.limits.trust_forwarded_for,
        );
        if let Err(e) = state.guards.take(client.0) {
            return e.render_for(request.headers());
        }
    }
    next.run(request).await
}

/// Middleware: a request must be answered within the request timeout. Streams are not cut
/// (the limit is on producing the response head, and a stream's head comes at once); the long
/// poll has its own bound. A client still sending its body when the time is up gets 408; a
/// server that was too slow says 503.
pub async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.guards.limits.request_timeout;
    let wants = Asks::or_json(request.headers());
    let body_done = Arc::new(AtomicBool::new(false));
    let request = {
        let done = body_done.clone();
        request.map(|body| {
            if axum::body::HttpBody::is_end_stream(&body) {
                done.store(true, Ordering::Relaxed);
                return body;
            }
            let mut data = body.into_data_stream();
            Body::from_stream(async_stream::stream! {
                while let Some(chunk) = data.next().await {
                    yield chunk;
                }
                done.store(true, Ordering::Relaxed);
            })
        })
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) if !body_done.load(Ordering::Relaxed) => AppError::RequestTimeout(format!(
            "the request body did not arrive within {} s",
            limit.as_secs_f64()
        ))
        .render(wants, None),
        Err(_) => {
            tracing::warn!(
                limit_s = limit.as_secs_f64(),
                "a request took longer than the request timeout"
            );
            AppError::Unavailable(format!(
                "the server could not answer within {} s; try again",
                limit.as_secs_f64()
            ))
            .render(wants, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_the_burst_then_the_rate() {
        let guards = Guards::new(Limits {
            rate_per_second: 1.0,
            rate_burst: 3.0,
            ..Limits::default()
        });
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..3 {
            assert!(guards.take(ip).is_ok());
        }
        match guards.take(ip) {
            Err(AppError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected rate_limited, got {other:?}"),
        }
        // Another client has its own bucket.
        assert!(guards.take(IpAddr::from([10, 0, 0, 2])).is_ok());
    }

    #[test]
    fn stream_permits_count_per_client_and_in_total() {
        let guards = Arc::new(Guards::new(Limits {
            streams_per_client: 2,
            streams_total: 3,
            ..Limits::default()
        }));
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let p1 = guards.open_stream(a, StreamKind::Sse).expect("first");
        let _p2 = guards
            .open_stream(a, StreamKind::WebSocket)
            .expect("second");
        assert!(matches!(
            guards.open_stream(a, StreamKind::Sse),
            Err(AppError::RateLimited { .. })
        ));
        let _p3 = guards.open_stream(b, StreamKind::Sse).expect("b's first");
        assert!(matches!(
            guards.open_stream(b, StreamKind::Sse),
            Err(AppError::Unavailable(_))
        ));
        drop(p1);
        assert_eq!(guards.open_streams(), (1, 1));
        assert!(guards.open_stream(a, StreamKind::Sse).is_ok());
    }

    #[test]
    fn the_stream_cap_leaves_room_under_the_open_file_limit() {
        let cap = streams_the_open_file_limit_allows() as u64;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        let files = limit.rlim_cur.min(1 << 20);
        assert_eq!(
            files,
            limit.rlim_max.min(1 << 20),
            "the soft limit was raised"
        );
        assert!(cap < files, "{cap} streams under {files} files");
        assert!(cap >= files - (files / 20).max(256), "{cap} of {files}");
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let mut ext = axum::http::Extensions::new();
        let addr: SocketAddr = "[2001:db8:1:2:3:4:5:6]:9".parse().expect("addr");
        ext.insert(ConnectInfo(addr));
        let ip = ClientIp::of(&ext, &axum::http::HeaderMap::new(), false);
        assert_eq!(ip.0, "2001:db8:1:2::".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted() {
        let mut ext = axum::http::Extensions::new();
        ext.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5000))));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_static("1.2.3.4, 5.6.7.8"),
        );
        assert_eq!(
            ClientIp::of(&ext, &headers, false).0,
            IpAddr::from([127, 0, 0, 1])
        );
        assert_eq!(
            ClientIp::of(&ext, &headers, true).0,
            IpAddr::from([5, 6, 7, 8])
        );
    }
}
