//! The SSE streams: fragments at connect, changes at once, ticks, viewers, close, keepalive.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{SseClient, TestApp, id_of};

#[tokio::test]
async fn a_timeout_change_reaches_five_viewers_within_a_second_and_they_are_counted() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let url = app.events_url(&id);
    let mut viewers = Vec::new();
    for _ in 0..5 {
        let mut sse = SseClient::connect(&app.client, &url, None).await;
        // The current fragments come first.
        let mut names = Vec::new();
        for _ in 0..3 {
            let m = sse
                .next(Duration::from_secs(2))
                .await
                .expect("a fragment at connect");
            assert!(m.id.is_some(), "every message has an id");
            names.push(m.event);
        }
        assert_eq!(names, ["status", "remaining", "viewers"]);
        viewers.push(sse);
    }
    let c = app.choice(&id).await;
    assert_eq!(c["viewers"], 5, "{c}");
    assert_eq!(c["watchers"].as_array().unwrap().len(), 5);

    let (status, _) = app.command(&id, "timeout", json!({"seconds": 600})).await;
    assert_eq!(status, StatusCode::OK);
    let changed = Instant::now();
    let mut worst = Duration::ZERO;
    for sse in &mut viewers {
        let m = sse
            .until("remaining", "data-remaining=\"5", Duration::from_secs(1))
            .await
            .expect("the change within 1 s");
        worst = worst.max(changed.elapsed());
        assert!(
            m.data.contains("id=\"remaining\"") && m.data.contains("role=\"timer\""),
            "{}",
            m.data
        );
        assert!(m.data.contains("data-deadline=\"1"), "{}", m.data);
    }
    println!("a timeout change reached all 5 viewers within {worst:?}");
    assert!(worst < Duration::from_secs(1));
}

#[tokio::test]
async fn ticks_arrive_every_second_with_the_same_bytes_for_every_viewer() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let url = app.events_url(&id);
    let mut a = SseClient::connect(&app.client, &url, None).await;
    let mut b = SseClient::connect(&app.client, &url, None).await;
    let mut ticks_a = Vec::new();
    let mut ticks_b = Vec::new();
    let until = Instant::now() + Duration::from_millis(3_500);
    while Instant::now() < until {
        if let Some(m) = a.next(Duration::from_millis(100)).await {
            if m.event == "remaining" {
                ticks_a.push(m.data)
            }
        }
        if let Some(m) = b.next(Duration::from_millis(100)).await {
            if m.event == "remaining" {
                ticks_b.push(m.data)
            }
        }
    }
    assert!(ticks_a.len() >= 3, "{} ticks in 3.5 s", ticks_a.len());
    let common: Vec<_> = ticks_a.iter().filter(|t| ticks_b.contains(t)).collect();
    assert!(
        common.len() >= 2,
        "both viewers got the same rendered ticks"
    );
}

#[tokio::test]
async fn a_final_status_is_followed_by_close_and_the_stream_ends() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let mut sse = SseClient::connect(&app.client, &app.events_url(&id), None).await;
    sse.until("viewers", "", Duration::from_secs(2))
        .await
        .expect("connected");
    app.command(&id, "cancel", json!({})).await;
    let status = sse
        .until(
            "status",
            "data-status=\"cancelled\"",
            Duration::from_secs(1),
        )
        .await
        .expect("status");
    let id_seen = status.id.clone();
    let mut rest = Vec::new();
    while let Some(m) = sse.next(Duration::from_secs(2)).await {
        rest.push(m.event);
    }
    assert_eq!(rest.last().map(String::as_str), Some("close"), "{rest:?}");
    assert!(id_seen.is_some());
    // A viewer arriving after the end gets the final fragments and close at once.
    let mut late = SseClient::connect(&app.client, &app.events_url(&id), Some("1")).await;
    let mut events = Vec::new();
    while let Some(m) = late.next(Duration::from_secs(2)).await {
        events.push(m.event);
    }
    assert_eq!(events, ["status", "remaining", "viewers", "close"]);
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_gets_the_current_fragments_at_once() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let url = app.events_url(&id);
    let mut first = SseClient::connect(&app.client, &url, None).await;
    let last = first
        .next(Duration::from_secs(2))
        .await
        .unwrap()
        .id
        .unwrap();
    drop(first);
    app.command(&id, "pause", json!({})).await;
    let started = Instant::now();
    let mut again = SseClient::connect(&app.client, &url, Some(&last)).await;
    let status = again.next(Duration::from_secs(1)).await.expect("at once");
    assert_eq!(status.event, "status");
    // The first frames are the choice as it is now: subscribing and reading are one step.
    assert!(
        status.data.contains("data-status=\"paused\""),
        "the first status after the reconnect must be the current one: {}",
        status.data
    );
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn unknown_choices_have_no_stream() {
    let app = TestApp::spawn().await;
    let r = app.get_with("/choice/nope/events", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_dashboard_stream_carries_the_board_and_a_new_choice_within_a_second() {
    let app = TestApp::spawn().await;
    let mut sse = SseClient::connect(&app.client, &app.url("/events"), None).await;
    let board = sse
        .next(Duration::from_secs(2))
        .await
        .expect("the board at connect");
    assert_eq!(board.event, "board");
    assert!(board.data.contains("id=\"board\""));
    let created = Instant::now();
    let id = id_of(
        &app.create(json!({"title": "Coffee?", "options": [{"id": "yes"}]}))
            .await,
    );
    sse.until("board", &format!("row-{id}"), Duration::from_secs(1))
        .await
        .expect("the new row within 1 s");
    assert!(created.elapsed() < Duration::from_secs(1));
    sse.until("remaining", &format!("left-{id}"), Duration::from_secs(2))
        .await
        .expect("its countdown ticks");
}

/// htmx 4's SSE extension swaps unnamed messages and dispatches named ones as DOM events: our
/// pages' streams (htmx sends `HX-Request`) get the same fragments unnamed, with their ids,
/// and the final `close` still named; every other client reads the names.
#[tokio::test]
async fn an_htmx_stream_gets_the_same_fragments_unnamed_and_close_named() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let url = app.events_url(&id);
    let mut named = SseClient::connect(&app.client, &url, None).await;
    let mut htmx = SseClient::connect_with(&app.client, &url, &[("hx-request", "true")]).await;
    for _ in 0..3 {
        let a = named
            .next(Duration::from_secs(2))
            .await
            .expect("a fragment");
        let b = htmx.next(Duration::from_secs(2)).await.expect("a fragment");
        assert!(!a.event.is_empty(), "named for API clients: {a:?}");
        assert_eq!(b.event, "", "unnamed for htmx: {b:?}");
        assert_eq!((a.id, a.data), (b.id, b.data), "the same fragment");
    }
    let (status, _) = app
        .command(&id, "submit", json!({"selection": ["yes"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut last = None;
    while let Some(m) = htmx.next(Duration::from_secs(3)).await {
        last = Some(m);
    }
    assert_eq!(last.expect("messages after the submit").event, "close");
}
