//! A local HTTP receiver standing in for a push service (ntfy, or a browser's Web Push
//! endpoint): it keeps every request it gets and answers with a fixed status.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request as the receiver got it: headers (lower-case names) and body.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy): ntfy's is.
    pub body: String,
    /// The body as sent: Web Push's is encrypted.
    pub raw: bytes::Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A local HTTP receiver answering every POST with `status`, after `delay`.
pub async fn receiver(status: u16, delay: Duration) -> (String, Arc<Mutex<Vec<Received>>>) {
    use axum::http::HeaderMap;
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: HeaderMap,
              raw: bytes::Bytes| {
            let sink = sink.clone();
            async move {
                let headers = headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let (method, path) = (method.to_string(), uri.path().to_string());
                let body = String::from_utf8_lossy(&raw).into_owned();
                sink.lock().unwrap().push(Received {
                    method,
                    path,
                    headers,
                    body,
                    raw,
                });
                tokio::time::sleep(delay).await;
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/topic", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

pub async fn wait_for_pushes(
    got: &Arc<Mutex<Vec<Received>>>,
    n: usize,
    within: Duration,
) -> Vec<Received> {
    let until = Instant::now() + within;
    loop {
        let now = got.lock().unwrap().clone();
        if now.len() >= n || Instant::now() > until {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn pushes_matching(
    got: &Arc<Mutex<Vec<Received>>>,
    within: Duration,
    wanted: impl Fn(&Received) -> bool,
) -> Received {
    let until = Instant::now() + within;
    loop {
        if let Some(found) = got.lock().unwrap().iter().find(|r| wanted(r)) {
            return found.clone();
        }
        assert!(
            Instant::now() < until,
            "no such push within {within:?}: {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
