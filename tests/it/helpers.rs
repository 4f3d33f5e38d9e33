//! `TestApp`: the real server on 127.0.0.1:0 with a temp SQLite file (or a fresh PostgreSQL
//! database, see [`on_postgres`]), and a client for it.
#![allow(dead_code)] // not every test module uses every helper

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// Its requests: `app.create(…)`, `app.client`, `app.url(…)` (through `Deref`).
    pub api: Api,
    pub database: String,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Whether this test run uses PostgreSQL for every `TestApp::spawn()`: set by
/// `CHOICEBOARD_TEST_BACKEND=postgres` (the whole-suite test in `tests/components/postgres.rs`
/// sets it for its child runs).
pub fn on_postgres() -> bool {
    std::env::var("CHOICEBOARD_TEST_BACKEND").is_ok_and(|v| v == "postgres")
}

impl TestApp {
    /// The server on a fresh database of this run's backend.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Like `spawn`, with the server's configuration adjusted first.
    pub async fn spawn_with(tweak: impl FnOnce(&mut choiceboard::server::Config)) -> TestApp {
        if on_postgres() {
            let server = crate::pg::server()
                .unwrap_or_else(|why| panic!("CHOICEBOARD_TEST_BACKEND=postgres, but: {why}"));
            let database = crate::pg::fresh_database(server).await;
            return TestApp::start(database, None, tweak).await;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let database = format!("sqlite://{}", dir.path().join("choiceboard.db").display());
        TestApp::start(database, Some(dir), tweak).await
    }

    /// Another server (node) on an existing database. The node tests time hundreds of
    /// commands from one address, more than the default rate limit lets one client send.
    pub async fn spawn_on(database: &str) -> TestApp {
        TestApp::start(database.to_string(), None, |c| {
            c.limits = choiceboard::http::limits::Limits::unlimited()
        })
        .await
    }

    async fn start(
        database: String,
        dir: Option<tempfile::TempDir>,
        tweak: impl FnOnce(&mut choiceboard::server::Config),
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let mut config = choiceboard::server::Config::new(database.clone());
        tweak(&mut config);
        let server = tokio::spawn(choiceboard::server::run(listener, config, async {
            let _ = rx.await;
        }));
        let app = TestApp {
            addr,
            api: Api::new(addr),
            database,
            _dir: dir,
            shutdown: Some(tx),
            server: Some(server),
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.client.get(self.url("/healthz")).send().await {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the server did not become ready");
    }

    /// From now on this app's client sends what a browser on one of our own pages sends
    /// (`Sec-Fetch-Site: same-origin`), so it counts against the per-client rate limit.
    pub fn act_as_browser(&mut self) {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "sec-fetch-site",
            reqwest::header::HeaderValue::from_static("same-origin"),
        );
        self.api.client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .expect("client");
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A client of one server, in-process or a child process alike: the requests tests send.
pub struct Api {
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(addr: std::net::SocketAddr) -> Api {
        Api {
            addr,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates a choice; panics unless the server answers 201.
    pub async fn create(&self, body: Value) -> Value {
        let (status, json) = self.post_json("/api/choices", &body).await;
        assert_eq!(status, StatusCode::CREATED, "create failed: {json}");
        json
    }

    /// A shared timer of `seconds`; its id.
    pub async fn create_timer(&self, title: &str, seconds: u64) -> String {
        id_of(
            &self
                .create(json!({"title": title, "mode": "timer", "timeout_seconds": seconds}))
                .await,
        )
    }

    /// A choice's SSE stream.
    pub fn events_url(&self, id: &str) -> String {
        self.url(&format!("/choice/{id}/events"))
    }

    /// A single-choice question with options yes/no, default no.
    pub async fn create_yes_no(&self, timeout_seconds: f64) -> Value {
        self.create(json!({
            "title": "Deploy?",
            "options": [{"id": "yes"}, {"id": "no"}],
            "default_selection": ["no"],
            "timeout_seconds": timeout_seconds,
        }))
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A command as a program sends it: JSON in, JSON out.
    pub async fn command(&self, id: &str, action: &str, body: Value) -> (StatusCode, Value) {
        self.post_json(&format!("/choice/{id}/{action}"), &body)
            .await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// A request with these headers (and a body, when given), as it is answered.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        request.send().await.expect("request")
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        self.request(reqwest::Method::GET, path, headers, None)
            .await
    }

    pub async fn post_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<String>,
    ) -> reqwest::Response {
        self.request(reqwest::Method::POST, path, headers, Some(body.into()))
            .await
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn choice(&self, id: &str) -> Value {
        let (status, json) = self.get_json(&format!("/api/choices/{id}")).await;
        assert_eq!(status, StatusCode::OK, "get failed: {json}");
        json
    }

    /// Every event of one choice, oldest first.
    pub async fn events_of(&self, id: &str) -> Vec<Value> {
        let mut events = self.all_events(0).await;
        events.retain(|e| e["choice_id"] == id);
        events
    }

    /// How many events of this kind one choice has.
    pub async fn count_events(&self, id: &str, kind: &str) -> usize {
        let events = self.events_of(id).await;
        events.iter().filter(|e| e["type"] == kind).count()
    }

    /// Every event after `since`, following the cursor to the end.
    pub async fn all_events(&self, mut since: i64) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let (_, page) = self
                .get_json(&format!("/api/status?since={since}&limit=1000"))
                .await;
            let batch = page["events"].as_array().cloned().unwrap_or_default();
            since = page["cursor"].as_i64().expect("cursor");
            if batch.is_empty() {
                return events;
            }
            events.extend(batch);
        }
    }

    /// The `type` of every event in the log, oldest first.
    pub async fn event_types(&self) -> Vec<String> {
        self.all_events(0)
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}

/// `n` submits of one choice sent at once, spread over `nodes` in turn, picking `yes` and
/// `no` on each node; every answer, in no particular order.
pub async fn submit_all_at_once(
    nodes: &[&TestApp],
    id: &str,
    n: usize,
) -> Vec<(StatusCode, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let node = nodes[i % nodes.len()];
            let request = node
                .client
                .post(node.url(&format!("/choice/{id}/submit")))
                .json(
                    &json!({"selection": [if (i / nodes.len()).is_multiple_of(2) { "yes" } else { "no" }]}),
                );
            tokio::spawn(async move {
                let r = request.send().await.expect("request");
                (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the request task"));
    }
    answers
}

/// The body of `GET url` as text.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .expect("a GET")
        .text()
        .await
        .expect("a text body")
}

pub fn id_of(choice: &Value) -> String {
    choice["id"].as_str().expect("id").to_string()
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

pub fn field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or("")
}

/// Unix milliseconds of an RFC 3339 UTC instant as the server writes them (`...T10:05:00.000Z`).
pub fn rfc3339_ms(s: &str) -> i64 {
    let num = |r: std::ops::Range<usize>| -> i64 { s[r].parse().expect("a number in the instant") };
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + num(11..13)) * 60 + num(14..16)) * 60_000 + num(17..19) * 1000 + num(20..23)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// The real `choiceboard` binary as a child process, for tests that kill it.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
    /// Its requests, as a `TestApp` sends them (through `Deref`).
    pub api: Api,
    /// Everything the server has written to stderr so far (its whole log).
    pub output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ServerProcess {
    /// Starts `choiceboard serve` on a free port; returns once it listens.
    pub async fn start(database: &str, extra: &[&str]) -> ServerProcess {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_choiceboard"))
            .args(["serve", "--bind", "127.0.0.1:0", "--database", database])
            .args(extra)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the choiceboard binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let keep = |output: &std::sync::Mutex<String>, line: &str| {
            let mut all = output.lock().unwrap_or_else(|e| e.into_inner());
            all.push_str(line);
            all.push('\n');
        };
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&output, &line);
                if let Some(rest) = line.split("addr=").nth(1) {
                    let addr = rest.split_whitespace().next().expect("an address");
                    return addr
                        .parse::<std::net::SocketAddr>()
                        .expect("a socket address");
                }
            }
            panic!("the server exited before it listened");
        })
        .await
        .expect("the server listens within 20 s");
        // Keep draining stderr so the child never blocks on a full pipe.
        let kept = output.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&kept, &line);
            }
        });
        ServerProcess {
            child,
            addr,
            api: Api::new(addr),
            output,
        }
    }

    /// SIGKILL: no shutdown, no flushing, nothing.
    pub async fn kill9(mut self) {
        self.child.kill().await.expect("kill -9");
    }
}

impl std::ops::Deref for ServerProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// One SSE message as a client sees it.
#[derive(Clone, Debug, Default)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// A raw SSE reader over a streaming response.
pub struct SseClient {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
    pub comments: usize,
}

impl SseClient {
    pub async fn connect(
        client: &reqwest::Client,
        url: &str,
        last_event_id: Option<&str>,
    ) -> SseClient {
        match last_event_id {
            Some(id) => Self::connect_with(client, url, &[("last-event-id", id)]).await,
            None => Self::connect_with(client, url, &[]).await,
        }
    }

    /// Connects with extra request headers (cookies, Last-Event-ID).
    pub async fn connect_with(
        client: &reqwest::Client,
        url: &str,
        headers: &[(&str, &str)],
    ) -> SseClient {
        let mut request = client.get(url).header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("stream request");
        assert_eq!(response.status(), StatusCode::OK, "stream {url}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseClient {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            comments: 0,
        }
    }

    /// The next message, or None when the stream ends or `within` passes.
    pub async fn next(&mut self, within: Duration) -> Option<SseMessage> {
        use futures_util::StreamExt;
        let until = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = SseMessage::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        message.id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        message.event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if message.event.is_empty() && data.is_empty() {
                    continue;
                }
                message.data = data.join("\n");
                return Some(message);
            }
            match tokio::time::timeout_at(until, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Skips messages until one named `event` whose data contains `needle` arrives.
    pub async fn until(
        &mut self,
        event: &str,
        needle: &str,
        within: Duration,
    ) -> Option<SseMessage> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let message = self.next(left).await?;
            if message.event == event && message.data.contains(needle) {
                return Some(message);
            }
        }
    }
}

/// Held by the tests that are both heavy and timed (Chromium, a thousand sockets, two thousand
/// streams): one at a time, across every test process of a `cargo test` (both test binaries and
/// the PostgreSQL runs the whole-suite test starts beside them: a lock on a file in
/// `CARGO_TARGET_TMPDIR` they all open), so two of them never share the two cores' time.
pub async fn heavy_and_timed() -> std::fs::File {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("heavy-and-timed.lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("the lock file");
        use std::os::fd::AsRawFd as _;
        // SAFETY: flock only reads the descriptor, which `file` keeps open.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(locked, 0, "flock {}", path.display());
        file
    })
    .await
    .expect("the lock")
}

/// A browser whose tab said it closed is forgotten half a second after its stream ends (time for
/// a reload to come back), and shows gone with the next presence second; plus delivery.
pub const CLOSED_TAB_GONE_WITHIN: Duration = Duration::from_millis(1800);
