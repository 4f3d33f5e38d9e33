//! Programs' activity notes: in the log between choice events, live on the dashboard,
//! heartbeats that stop, and the `note` command.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, get_text, id_of};

#[tokio::test]
async fn notes_are_in_the_log_between_choice_events_in_seq_order() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(600.0).await);
    let (status, note) = app
        .post_json("/api/notes", &json!({"source": "nightly", "kind": "spec_started", "message": "spec 3 of 7", "level": "info"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(
        (note["type"].as_str(), note["choice_id"].clone()),
        (Some("note"), serde_json::Value::Null)
    );
    assert_eq!(
        note["data"],
        json!({"source": "nightly", "kind": "spec_started", "message": "spec 3 of 7", "level": "info"})
    );
    app.command(&id, "cancel", json!({})).await;
    app.post_json(
        "/api/notes",
        &json!({"source": "agents", "message": "batch done"}),
    )
    .await;
    let kinds = app.event_types().await;
    assert_eq!(kinds, ["created", "note", "cancelled", "note"]);
    let (_, listed) = app.get_json("/api/notes?source=nightly").await;
    assert_eq!(listed["notes"].as_array().unwrap().len(), 1);
    assert_eq!(listed["notes"][0]["data"]["kind"], "spec_started");
    let (_, after) = app
        .get_json(&format!("/api/notes?since={}", note["seq"]))
        .await;
    assert_eq!(after["notes"].as_array().unwrap().len(), 1);
    assert_eq!(
        after["notes"][0]["data"]["level"], "info",
        "level defaults to info"
    );
    for (body, field) in [
        (json!({"message": "x"}), "source"),
        (json!({"source": "s".repeat(65), "message": "x"}), "source"),
        (
            json!({"source": "a", "message": "m".repeat(2001)}),
            "message",
        ),
        (json!({"source": "a", "message": ""}), "message"),
        (
            json!({"source": "a", "message": "x", "level": "fatal"}),
            "level",
        ),
        (
            json!({"source": "a", "message": "x", "kind": "k".repeat(65)}),
            "kind",
        ),
    ] {
        let (status, error) = app.post_json("/api/notes", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    for bad in ["limit=0", "since=-1", "source="] {
        let (status, _) = app.get_json(&format!("/api/notes?{bad}")).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn the_dashboard_stream_carries_a_new_note_within_a_second() {
    let app = TestApp::spawn().await;
    let mut sse = crate::helpers::SseClient::connect(&app.client, &app.url("/events"), None).await;
    sse.until("board", "id=\"board\"", Duration::from_secs(2))
        .await
        .expect("the board");
    let posted = Instant::now();
    app.post_json("/api/notes", &json!({"source": "nightly", "kind": "spec_failed", "message": "spec 4 <failed>", "level": "error"})).await;
    let board = sse
        .until("board", "spec 4 &lt;failed&gt;", Duration::from_secs(1))
        .await
        .expect("the note within 1 s");
    println!(
        "a note reached the dashboard stream in {:?}",
        posted.elapsed()
    );
    assert!(
        board.data.contains("data-level=\"error\"")
            && board.data.contains("data-source=\"nightly\"")
    );
}

#[tokio::test]
async fn a_source_whose_heartbeats_stop_is_marked_stale() {
    let app = TestApp::spawn().await;
    // Heartbeats 500 ms apart: stale once silent for 3 intervals (1.5 s), which leaves the
    // "not stale yet" read below room on a busy machine (at 200 ms apart, one slow POST in CI
    // used up the whole 0.6 s).
    for _ in 0..3 {
        app.post_json(
            "/api/notes",
            &json!({"source": "loop", "kind": "heartbeat", "message": "alive"}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    app.post_json(
        "/api/notes",
        &json!({"source": "quiet", "message": "no heartbeats here"}),
    )
    .await;
    let fresh = get_text(&app.client, &app.url("/board")).await;
    assert!(!fresh.contains("data-stale"), "not stale yet: {fresh}");
    let stale = "data-source=\"loop\" data-stale=\"true\"";
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let later = loop {
        let board = get_text(&app.client, &app.url("/board")).await;
        if board.contains(stale) || tokio::time::Instant::now() > until {
            break board;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(later.contains(stale), "stale within 3 s: {later}");
    assert!(
        !later.contains("data-source=\"quiet\" data-stale"),
        "a source without heartbeats never goes stale"
    );
    let filtered = app
        .get_with("/?source=quiet&level=info", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(filtered.contains("no heartbeats here"));
    assert!(
        filtered.contains("data-source=\"loop\" data-level=\"info\" hidden"),
        "the filter hides other sources"
    );
}

#[tokio::test]
async fn choiceboard_note_posts_from_the_shell() {
    let app = TestApp::spawn().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_choiceboard"))
        .args([
            "note",
            "--source",
            "ci",
            "--kind",
            "spec_failed",
            "--level",
            "warn",
            "spec 9 is flaky",
        ])
        .args(["--server", &app.url("")])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, listed) = app.get_json("/api/notes?source=ci").await;
    assert_eq!(
        listed["notes"][0]["data"],
        json!({"source": "ci", "kind": "spec_failed", "message": "spec 9 is flaky", "level": "warn"})
    );
    let too_long = "x".repeat(2001);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_choiceboard"))
        .args(["note", &too_long, "--server", &app.url("")])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("message"));
}
