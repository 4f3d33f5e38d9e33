//! Programs' activity: pushes to phones (ntfy format) and retention.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, id_of};

/// A request as the receiver got it: headers (lower-case names) and body.
#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A local HTTP receiver answering every POST with `status`, after `delay`.
async fn receiver(status: u16, delay: Duration) -> (String, Arc<Mutex<Vec<Received>>>) {
    use axum::http::HeaderMap;
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let sink = sink.clone();
        async move {
            let headers = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            sink.lock().unwrap().push(Received { headers, body });
            tokio::time::sleep(delay).await;
            axum::http::StatusCode::from_u16(status).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/topic", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

async fn wait_for_pushes(
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

#[tokio::test]
async fn a_create_pushes_an_ntfy_message_and_a_minute_before_the_deadline_another() {
    let (url, got) = receiver(200, Duration::ZERO).await;
    let app = TestApp::spawn_with(|c| c.notify_urls = vec![url]).await;
    let c = app.create(json!({"title": "Deploy build 1234?", "source": "nightly", "options": [{"id": "yes"}], "timeout_seconds": 61})).await;
    let id = id_of(&c);
    let pushes = wait_for_pushes(&got, 2, Duration::from_secs(4)).await;
    assert!(pushes.len() >= 2, "{pushes:?}");
    let created = &pushes[0];
    assert_eq!(created.header("title"), "Deploy build 1234?");
    assert_eq!(
        created.header("click"),
        format!("http://{}/choice/{id}", app.addr)
    );
    assert_eq!(created.header("priority"), "default");
    assert!(!created.header("tags").is_empty());
    assert!(created.header("content-type").starts_with("text/plain"));
    assert!(
        created.body.contains("from nightly") && created.body.contains(&id),
        "{}",
        created.body
    );
    let warning = &pushes[1];
    assert_eq!(warning.header("priority"), "high");
    assert!(
        warning.body.contains("Less than a minute left"),
        "{}",
        warning.body
    );
}

#[tokio::test]
async fn a_failing_or_slow_receiver_does_not_slow_a_create() {
    let (slow, got) = receiver(500, Duration::from_secs(3)).await;
    let dead = "http://127.0.0.1:9/nothing-listens-here".to_string();
    let app = TestApp::spawn_with(|c| c.notify_urls = vec![slow, dead]).await;
    app.create_yes_no(600.0).await; // warm up
    let started = Instant::now();
    for _ in 0..10 {
        app.create_yes_no(600.0).await;
    }
    let per_create = started.elapsed() / 10;
    println!("a create took {per_create:?} with a failing and a slow receiver");
    assert!(per_create < Duration::from_millis(200), "{per_create:?}");
    assert!(
        !wait_for_pushes(&got, 1, Duration::from_secs(2))
            .await
            .is_empty(),
        "delivery was attempted"
    );
}

#[tokio::test]
async fn retention_deletes_old_final_choices_and_their_events_and_nothing_else() {
    // Kept 3 s; retention looks every 1.5 s.
    let app = TestApp::spawn_with(|c| c.keep = Duration::from_secs(3)).await;
    let old = id_of(&app.create_yes_no(600.0).await);
    app.command(&old, "cancel", json!({})).await;
    let waiting = id_of(&app.create_yes_no(600.0).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let recent = id_of(&app.create_yes_no(600.0).await);
    app.command(&recent, "cancel", json!({})).await;
    let until = Instant::now() + Duration::from_secs(5);
    while app.get_json(&format!("/api/choices/{old}")).await.0 != StatusCode::NOT_FOUND {
        assert!(
            Instant::now() < until,
            "the old final choice is gone within two retention rounds"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.choice(&waiting).await["status"],
        "pending",
        "a waiting choice is never deleted"
    );
    assert_eq!(
        app.choice(&recent).await["status"],
        "cancelled",
        "a recent one stays"
    );
    let events = app.all_events(0).await;
    assert!(
        events.iter().all(|e| e["choice_id"] != old.as_str()),
        "its events went with it"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["choice_id"] == recent.as_str())
            .count(),
        2
    );
    // Seqs go on from where they were: nothing is reused.
    let next = app.create_yes_no(600.0).await;
    let last = app.all_events(0).await.last().unwrap()["seq"]
        .as_i64()
        .unwrap();
    assert_eq!(last, 6, "{next}");
}
