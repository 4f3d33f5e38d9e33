//! A viewer's first frame is the countdown as it stands now, whoever watched before: on a
//! choice's SSE stream (with and without `Last-Event-ID`), on its WebSocket and on the
//! dashboard. The case that matters is a choice nobody watched for longer than a tick: frames
//! left from the last time anyone watched must not be what the next viewer sees first.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{SseClient, SseMessage, TestApp, id_of};

/// Longer than a tick, so the frames a past viewer saw are over a second old.
const NOBODY_WATCHES: Duration = Duration::from_millis(2_200);
/// How far a first frame may be from `remaining_seconds` read just before connecting.
const TOLERANCE: f64 = 0.5;

/// `data-remaining` of a countdown fragment, in seconds.
fn remaining_in(data: &str) -> f64 {
    let start = data
        .find("data-remaining=\"")
        .unwrap_or_else(|| panic!("no data-remaining in {data}"))
        + "data-remaining=\"".len();
    let end = start + data[start..].find('"').expect("a closing quote");
    data[start..end].parse().expect("seconds")
}

/// A 600 s choice watched once (first frames read, then the viewer leaves), then left alone.
async fn a_choice_watched_once_then_left_alone(app: &TestApp) -> String {
    let id = id_of(&app.create_yes_no(600.0).await);
    let url = app.events_url(&id);
    let mut once = SseClient::connect(&app.client, &url, None).await;
    once.until("remaining", "", Duration::from_secs(2))
        .await
        .expect("the first viewer's countdown");
    drop(once);
    tokio::time::sleep(NOBODY_WATCHES).await;
    id
}

async fn remaining_seconds(app: &TestApp, id: &str) -> f64 {
    app.choice(id).await["remaining_seconds"]
        .as_f64()
        .expect("remaining_seconds")
}

/// The first `remaining` message of a new stream.
async fn first_remaining(sse: &mut SseClient) -> SseMessage {
    sse.until("remaining", "", Duration::from_secs(1))
        .await
        .expect("a countdown at connect")
}

fn assert_close(first: f64, expected: f64, what: &str) {
    assert!(
        (first - expected).abs() <= TOLERANCE,
        "{what}: the first frame says {first} s, the choice has {expected} s left"
    );
}

#[tokio::test]
async fn a_new_viewer_of_a_choice_nobody_watched_gets_the_current_countdown_first() {
    let app = TestApp::spawn().await;
    let id = a_choice_watched_once_then_left_alone(&app).await;
    let expected = remaining_seconds(&app, &id).await;
    let url = app.events_url(&id);
    let mut sse = SseClient::connect(&app.client, &url, None).await;
    let first = first_remaining(&mut sse).await;
    assert_close(remaining_in(&first.data), expected, "SSE");
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_after_nobody_watched_gets_the_current_countdown_first() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(600.0).await);
    let url = app.events_url(&id);
    let mut once = SseClient::connect(&app.client, &url, None).await;
    let last = first_remaining(&mut once).await.id.expect("an id");
    drop(once);
    tokio::time::sleep(NOBODY_WATCHES).await;
    let expected = remaining_seconds(&app, &id).await;
    let mut again = SseClient::connect(&app.client, &url, Some(&last)).await;
    let first = first_remaining(&mut again).await;
    assert_close(
        remaining_in(&first.data),
        expected,
        "SSE with Last-Event-ID",
    );
}

#[tokio::test]
async fn a_new_socket_on_a_choice_nobody_watched_gets_the_current_countdown_in_its_first_sync() {
    let app = TestApp::spawn().await;
    let id = a_choice_watched_once_then_left_alone(&app).await;
    let expected = remaining_seconds(&app, &id).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/{id}", app.addr))
        .await
        .expect("upgrade");
    let sync = loop {
        let message = tokio::time::timeout(Duration::from_secs(1), socket.next())
            .await
            .expect("a sync within a second")
            .expect("the socket stays open")
            .expect("a message");
        let Message::Text(text) = message else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).expect("JSON");
        if value["type"] == "sync" {
            break value;
        }
    };
    let first = sync["remaining_seconds"]
        .as_f64()
        .expect("remaining_seconds");
    assert_close(first, expected, "WebSocket sync");
}

#[tokio::test]
async fn a_new_dashboard_viewer_after_nobody_watched_gets_the_current_countdowns_first() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(600.0).await);
    let mut once = SseClient::connect(&app.client, &app.url("/events"), None).await;
    once.until("remaining", &format!("left-{id}"), Duration::from_secs(2))
        .await
        .expect("the first dashboard viewer's countdown");
    drop(once);
    tokio::time::sleep(NOBODY_WATCHES).await;
    let expected = remaining_seconds(&app, &id).await;
    let mut sse = SseClient::connect(&app.client, &app.url("/events"), None).await;
    let board = sse
        .until("board", &format!("row-{id}"), Duration::from_secs(1))
        .await
        .expect("the board at connect");
    let row = &board.data[board
        .data
        .find(&format!("left-{id}"))
        .expect("its countdown")..];
    assert_close(remaining_in(row), expected, "the dashboard's row");
    let left = first_remaining(&mut sse).await;
    let countdown = &left.data[left
        .data
        .find(&format!("left-{id}"))
        .expect("its countdown")..];
    assert_close(
        remaining_in(countdown),
        expected,
        "the dashboard's countdowns",
    );
}
