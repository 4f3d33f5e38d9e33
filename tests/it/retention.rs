//! Retention: old final choices and their events go, and nothing else does.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, id_of};

#[tokio::test]
async fn retention_deletes_old_final_choices_and_their_events_and_nothing_else() {
    // Kept 4 s; retention looks every 2 s. The old items go in the round at about 6 s, the
    // recent ones (3 s later) not before about 8 s: the checks below fall in between.
    let app = TestApp::spawn_with(|c| c.keep = Duration::from_secs(4)).await;
    let old = id_of(&app.create_yes_no(600.0).await);
    app.command(&old, "cancel", json!({})).await;
    app.post_json(
        "/api/notes",
        &json!({"source": "loop", "message": "old news"}),
    )
    .await;
    let waiting = id_of(&app.create_yes_no(600.0).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let recent = id_of(&app.create_yes_no(600.0).await);
    app.command(&recent, "cancel", json!({})).await;
    app.post_json(
        "/api/notes",
        &json!({"source": "loop", "message": "fresh news"}),
    )
    .await;
    let until = Instant::now() + Duration::from_secs(6);
    loop {
        let choice_gone =
            app.get_json(&format!("/api/choices/{old}")).await.0 == StatusCode::NOT_FOUND;
        let (_, notes) = app.get_json("/api/notes?source=loop").await;
        let note_gone = notes["notes"]
            .as_array()
            .is_some_and(|n| n.iter().all(|n| n["data"]["message"] != "old news"));
        if choice_gone && note_gone {
            break;
        }
        assert!(
            Instant::now() < until,
            "the old choice and the old note are gone within two retention rounds"
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
    let (_, notes) = app.get_json("/api/notes").await;
    let messages: Vec<&str> = notes["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["data"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["fresh news"],
        "the old note went, the recent one stays"
    );
    // Seqs go on from where they were: nothing is reused.
    let next = app.create_yes_no(600.0).await;
    let last = app.all_events(0).await.last().unwrap()["seq"]
        .as_i64()
        .unwrap();
    assert_eq!(last, 8, "{next}");
}
