//! A minimal Chrome DevTools Protocol client: enough to drive Debian's headless Chromium for
//! the page tests (navigate, evaluate, click, screenshot) without a heavy driver crate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Mutex, broadcast, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

pub struct Browser {
    inner: Arc<Inner>,
    _child: tokio::process::Child,
    _profile: tempfile::TempDir,
}

struct Inner {
    sink: Mutex<Sink>,
    pending: std::sync::Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    events: broadcast::Sender<Value>,
    next_id: AtomicU64,
}

/// Where Debian (or the PATH) keeps Chromium, if anywhere.
pub fn chromium_path() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
}

impl Browser {
    pub async fn launch(path: &std::path::Path) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let child = tokio::process::Command::new(path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--window-size=1200,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let port_file = profile.path().join("DevToolsActivePort");
        let mut endpoint = None;
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    endpoint = Some(format!("ws://127.0.0.1:{port}{path}"));
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let endpoint = endpoint.expect("chromium opened its DevTools port within 10 s");
        let (ws, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .expect("devtools socket");
        let (sink, mut stream) = ws.split();
        let (events, _) = broadcast::channel(4096);
        let inner = Arc::new(Inner {
            sink: Mutex::new(sink),
            pending: Default::default(),
            events,
            next_id: AtomicU64::new(1),
        });
        let reader = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let Some(inner) = reader.upgrade() else {
                    return;
                };
                match value.get("id").and_then(Value::as_u64) {
                    Some(id) => {
                        if let Some(tx) = inner.pending.lock().unwrap().remove(&id) {
                            let _ = tx.send(value);
                        }
                    }
                    None => {
                        let _ = inner.events.send(value);
                    }
                }
            }
        });
        Browser {
            inner,
            _child: child,
            _profile: profile,
        }
    }

    /// A new tab, attached, with page, runtime and log events on.
    pub async fn new_page(&self) -> Page {
        let target = call(
            &self.inner,
            None,
            "Target.createTarget",
            json!({"url": "about:blank"}),
        )
        .await;
        let target_id = target["targetId"].as_str().expect("target id").to_string();
        self.attach(target_id, &["Page.enable", "Runtime.enable", "Log.enable"])
            .await
    }

    /// Attaches to a target (flattened into this connection) and turns `domains` on.
    async fn attach(&self, target_id: String, domains: &[&str]) -> Page {
        let attached = call(
            &self.inner,
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )
        .await;
        let session = attached["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        let page = Page {
            inner: self.inner.clone(),
            session,
            target_id,
            console: Default::default(),
        };
        page.collect_console();
        for method in domains {
            page.call(method, json!({})).await;
        }
        page
    }

    /// Attaches to the service worker whose script URL ends with `script`, to evaluate in it.
    pub async fn attach_worker(&self, script: &str) -> Page {
        let started = tokio::time::Instant::now();
        let target_id = loop {
            let targets = call(&self.inner, None, "Target.getTargets", json!({})).await;
            let found = targets["targetInfos"].as_array().and_then(|all| {
                all.iter().find(|t| {
                    t["type"] == "service_worker"
                        && t["url"].as_str().is_some_and(|u| u.ends_with(script))
                })
            });
            if let Some(target) = found {
                break target["targetId"].as_str().expect("target id").to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no service worker {script}: {targets}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.attach(target_id, &["Runtime.enable"]).await
    }
}

async fn call(inner: &Arc<Inner>, session: Option<&str>, method: &str, params: Value) -> Value {
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    inner.pending.lock().unwrap().insert(id, tx);
    let mut message = json!({"id": id, "method": method, "params": params});
    if let Some(session) = session {
        message["sessionId"] = json!(session);
    }
    inner
        .sink
        .lock()
        .await
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("devtools send");
    let reply = tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .unwrap_or_else(|_| panic!("{method} got no answer in 30 s"))
        .expect("devtools reply");
    if let Some(error) = reply.get("error") {
        panic!("{method} failed: {error}");
    }
    reply["result"].clone()
}

pub struct Page {
    inner: Arc<Inner>,
    session: String,
    target_id: String,
    console: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Page {
    pub async fn call(&self, method: &str, params: Value) -> Value {
        call(&self.inner, Some(&self.session), method, params).await
    }

    /// Keeps every console error and warning, CSP violations included.
    fn collect_console(&self) {
        let mut events = self.inner.events.subscribe();
        let session = self.session.clone();
        let console = self.console.clone();
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if event["sessionId"] != session.as_str() {
                    continue;
                }
                let line = match event["method"].as_str() {
                    Some("Runtime.exceptionThrown") => Some(format!(
                        "exception: {}",
                        event["params"]["exceptionDetails"]
                    )),
                    Some("Runtime.consoleAPICalled")
                        if matches!(
                            event["params"]["type"].as_str(),
                            Some("error" | "warning")
                        ) =>
                    {
                        Some(format!("console: {}", event["params"]["args"]))
                    }
                    Some("Log.entryAdded") if event["params"]["entry"]["level"] == "error" => {
                        Some(format!("log: {}", event["params"]["entry"]["text"]))
                    }
                    _ => None,
                };
                if let Some(line) = line {
                    console.lock().unwrap().push(line);
                }
            }
        });
    }

    /// Calls `method`, then waits for the first `event` of this session that `wanted` accepts
    /// (subscribed before the call, so an event the call causes at once is not missed).
    pub async fn call_then_event(
        &self,
        method: &str,
        params: Value,
        event: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut events = self.inner.events.subscribe();
        self.call(method, params).await;
        let found = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(e) = events.recv().await {
                if e["sessionId"] == self.session.as_str()
                    && e["method"] == event
                    && wanted(&e["params"])
                {
                    return e["params"].clone();
                }
            }
            panic!("the DevTools connection closed");
        })
        .await;
        found.unwrap_or_else(|_| panic!("no {event} within 5 s after {method}"))
    }

    /// No exception, console error or warning, CSP violation included, so far.
    pub fn assert_no_console_errors(&self) {
        let errors = self.console_errors();
        assert!(errors.is_empty(), "{errors:?}");
    }

    pub fn console_errors(&self) -> Vec<String> {
        self.console.lock().unwrap().clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for(
            "document.readyState === 'complete' && location.href !== 'about:blank'",
            Duration::from_secs(10),
        )
        .await;
    }

    /// Evaluates an expression in the page and returns its value (promises awaited).
    pub async fn eval(&self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("evaluating {expression} threw {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls until the expression is truthy; panics with the expression after `timeout`.
    pub async fn wait_for(&self, expression: &str, timeout: Duration) -> Value {
        let started = tokio::time::Instant::now();
        loop {
            let value = self
                .call(
                    "Runtime.evaluate",
                    json!({"expression": expression, "returnByValue": true}),
                )
                .await;
            let value = value["result"]["value"].clone();
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > timeout {
                panic!("waited {timeout:?} for: {expression}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text(&self, selector: &str) -> String {
        let expression = format!(
            "(document.querySelector({}) || {{}}).textContent || ''",
            json!(selector)
        );
        self.eval(&expression)
            .await
            .as_str()
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// Clicks the element like a person would: a real mouse press at its centre.
    pub async fn click(&self, selector: &str) {
        self.click_at(&format!("document.querySelector({})", json!(selector)))
            .await;
    }

    /// Clicks the visible button a person would read as `name` (its text or `aria-label`).
    pub async fn click_button(&self, name: &str) {
        self.click_at(&format!(
            "Array.from(document.querySelectorAll('button, [role=button]')).find(b => \
             b.offsetParent !== null && (b.getAttribute('aria-label') || b.textContent).trim() === {})",
            json!(name)
        ))
        .await;
    }

    /// Clicks the element `element` (a JavaScript expression) evaluates to.
    async fn click_at(&self, element: &str) {
        let expression = format!(
            "(() => {{ const e = {element}; e.scrollIntoView({{block: 'center'}}); \
             const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        );
        let point = self.eval(&expression).await;
        let (x, y) = (point[0].as_f64().expect("x"), point[1].as_f64().expect("y"));
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Records the URL of every request the page sends from now on (the Network domain on).
    pub async fn record_requests(&self) -> Arc<std::sync::Mutex<Vec<String>>> {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut events = self.inner.events.subscribe();
        let (session, keep) = (self.session.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if event["sessionId"] == session.as_str()
                    && event["method"] == "Network.requestWillBeSent"
                {
                    let url = event["params"]["request"]["url"].as_str().unwrap_or("");
                    keep.lock().unwrap().push(url.to_string());
                }
            }
        });
        self.call("Network.enable", json!({})).await;
        seen
    }

    /// Closes the tab as a person would: the page is unloaded (`pagehide` runs).
    pub async fn close(self) {
        call(
            &self.inner,
            None,
            "Target.closeTarget",
            json!({"targetId": self.target_id}),
        )
        .await;
    }

    pub async fn bring_to_front(&self) {
        self.call("Page.bringToFront", json!({})).await;
    }

    pub async fn set_viewport(&self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("png data"))
            .expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("screenshot written");
    }
}
