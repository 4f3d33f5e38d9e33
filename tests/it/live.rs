//! The live state: reads are served from memory; what memory does not hold is read from the
//! store once, however many ask at once. The real binary, restarted on its SQLite file.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ServerProcess, get_text, id_of};

/// A counter from `/metrics`.
async fn metric(server: &ServerProcess, name: &str) -> u64 {
    let text = get_text(&server.client, &server.url("/metrics")).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn a_choice_not_in_memory_is_read_once_however_many_ask_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("choiceboard.db").display());
    let server = ServerProcess::start(&database, &[]).await;
    let id = id_of(
        &server
            .create(json!({"title": "Old news", "options": [{"id": "a"}], "timeout_seconds": 600}))
            .await,
    );
    let (status, _) = server
        .command(&id, "submit", json!({"selection": ["a"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    server.kill9().await;

    // At start memory holds the active choices only: this final one is not among them.
    let server = ServerProcess::start(&database, &[]).await;
    assert_eq!(metric(&server, "choiceboard_live_choices").await, 0);
    assert_eq!(metric(&server, "choiceboard_store_reads_total").await, 0);
    let mut asks = Vec::new();
    for n in 0..200 {
        let path = if n % 2 == 0 {
            format!("/api/choices/{id}")
        } else {
            format!("/choice/{id}")
        };
        let request = server.client.get(server.url(&path)).send();
        asks.push(tokio::spawn(async move {
            let r = request.await.unwrap();
            (r.status(), r.text().await.unwrap())
        }));
    }
    for ask in asks {
        let (status, body) = ask.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("submitted"), "{body}");
    }
    assert_eq!(
        metric(&server, "choiceboard_store_reads_total").await,
        1,
        "200 concurrent misses share one read"
    );
    // Cached from now on, and so is an id the store does not have.
    let unknown = "AAAAAAAAAAAAAAAAAAAAAA";
    for _ in 0..20 {
        let (status, _) = server.get_json(&format!("/api/choices/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = server.get_json(&format!("/api/choices/{unknown}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(metric(&server, "choiceboard_store_reads_total").await, 2);
    server.kill9().await;
}
