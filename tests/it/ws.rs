//! The WebSocket: every message of API.md with a real client, and the event log streams.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, protocol::frame::coding::CloseCode,
};

use choiceboard::http::limits::Limits;

use crate::helpers::{SseClient, TestApp, id_of};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, path: &str) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", app.addr))
        .await
        .expect("upgrade");
    socket
}

/// The next JSON message within `within`, skipping pings; None on close or silence.
async fn next_json(socket: &mut Socket, within: Duration) -> Option<Value> {
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

async fn until_type(socket: &mut Socket, kind: &str, within: Duration) -> Value {
    let until = tokio::time::Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let message = next_json(socket, left)
            .await
            .unwrap_or_else(|| panic!("no {kind} within {within:?}"));
        if message["type"] == kind {
            return message;
        }
    }
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

#[tokio::test]
async fn a_socket_is_greeted_with_connected_and_sync_and_answers_pings() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let mut ws = connect(&app, &format!("/ws/{id}")).await;
    assert_eq!(
        next_json(&mut ws, Duration::from_secs(1)).await.unwrap(),
        json!({"type": "status", "status": "connected"})
    );
    let sync = next_json(&mut ws, Duration::from_secs(1)).await.unwrap();
    assert_eq!(sync["type"], "sync");
    assert_eq!(
        (sync["timeout_seconds"].as_i64(), sync["paused"].as_bool()),
        (Some(120), Some(false))
    );
    assert!(sync["remaining_seconds"].as_f64().unwrap() > 100.0 && sync["deadline"].is_string());
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(
        until_type(&mut ws, "pong", Duration::from_secs(1)).await,
        json!({"type": "pong"})
    );
    assert_eq!(
        app.choice(&id).await["viewers"],
        1,
        "sockets are viewers too"
    );
}

#[tokio::test]
async fn bad_messages_get_errors_with_the_http_codes_and_the_socket_stays_open() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let mut ws = connect(&app, &format!("/ws/{id}")).await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(
        until_type(&mut ws, "error", Duration::from_secs(1)).await["code"],
        "malformed"
    );
    send(&mut ws, json!({"type": "explode"})).await;
    let error = until_type(&mut ws, "error", Duration::from_secs(1)).await;
    assert_eq!(
        (error["code"].as_str(), error["field"].as_str()),
        (Some("invalid"), Some("type"))
    );
    send(&mut ws, json!({"type": "update_timeout", "seconds": 0})).await;
    let error = until_type(&mut ws, "error", Duration::from_secs(1)).await;
    assert_eq!(
        (error["code"].as_str(), error["field"].as_str()),
        (Some("invalid"), Some("seconds"))
    );
    send(&mut ws, json!({"type": "update_timeout", "secs": 60})).await;
    let error = until_type(&mut ws, "error", Duration::from_secs(1)).await;
    assert_eq!(
        (error["code"].as_str(), error["field"].as_str()),
        (Some("invalid"), Some("secs"))
    );
    send(&mut ws, json!({"type": "submit", "selection": ["maybe"]})).await;
    assert_eq!(
        until_type(&mut ws, "error", Duration::from_secs(1)).await["code"],
        "invalid"
    );
    send(&mut ws, json!({"type": "resume"})).await;
    assert_eq!(
        until_type(&mut ws, "error", Duration::from_secs(1)).await["code"],
        "conflict"
    );
    send(&mut ws, json!({"type": "ping"})).await;
    until_type(&mut ws, "pong", Duration::from_secs(1)).await;
    assert_eq!(app.choice(&id).await["version"], 1, "nothing changed");
}

#[tokio::test]
async fn an_update_from_a_socket_reaches_an_sse_viewer_within_a_second() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let mut sse = SseClient::connect(&app.client, &app.events_url(&id), None).await;
    sse.until("viewers", "", Duration::from_secs(2))
        .await
        .unwrap();
    let mut ws = connect(&app, &format!("/ws/{id}")).await;
    until_type(&mut ws, "sync", Duration::from_secs(1)).await;
    let sent = Instant::now();
    send(&mut ws, json!({"type": "update_timeout", "seconds": 900})).await;
    sse.until("remaining", "data-remaining=\"8", Duration::from_secs(1))
        .await
        .expect("within 1 s");
    println!("socket → SSE viewer in {:?}", sent.elapsed());
    let sync = until_type(&mut ws, "sync", Duration::from_secs(1)).await;
    assert_eq!(
        sync["timeout_seconds"], 900,
        "the socket gets its own sync at once"
    );
    send(&mut ws, json!({"type": "pause"})).await;
    assert_eq!(
        until_type(&mut ws, "status", Duration::from_secs(1)).await["status"],
        "paused"
    );
    assert_eq!(
        until_type(&mut ws, "sync", Duration::from_secs(1)).await["paused"],
        true
    );
    send(&mut ws, json!({"type": "resume"})).await;
    assert_eq!(
        until_type(&mut ws, "status", Duration::from_secs(1)).await["status"],
        "resumed"
    );
    send(&mut ws, json!({"type": "update_timeout", "add": -60})).await;
    loop {
        let sync = until_type(&mut ws, "sync", Duration::from_secs(1)).await;
        if sync["remaining_seconds"].as_f64().unwrap() < 841.0 {
            break;
        }
    }
}

#[tokio::test]
async fn an_http_submit_reaches_a_socket_within_a_second_then_it_closes_normally() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let mut ws = connect(&app, &format!("/ws/{id}")).await;
    until_type(&mut ws, "sync", Duration::from_secs(1)).await;
    let sent = Instant::now();
    app.command(&id, "submit", json!({"selection": ["yes"]}))
        .await;
    assert_eq!(
        until_type(&mut ws, "status", Duration::from_secs(1)).await["status"],
        "submitted"
    );
    println!("HTTP submit → socket in {:?}", sent.elapsed());
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .expect("closed within 2 s")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Normal));
}

#[tokio::test]
async fn a_submit_over_the_socket_is_recorded_via_ws() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let mut ws = connect(&app, &format!("/ws/{id}")).await;
    until_type(&mut ws, "sync", Duration::from_secs(1)).await;
    send(&mut ws, json!({"type": "submit", "selection": ["no"], "annotation": "from a socket", "option_annotations": {"no": "sure"}})).await;
    assert_eq!(
        until_type(&mut ws, "status", Duration::from_secs(1)).await["status"],
        "submitted"
    );
    let c = app.choice(&id).await;
    assert_eq!(c["result"]["via"], "ws");
    assert_eq!(c["result"]["option_annotations"], json!({"no": "sure"}));
}

#[tokio::test]
async fn a_deadline_passing_pushes_timeout() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(1.0).await);
    let mut ws = connect(&app, &format!("/ws/{id}")).await;
    assert_eq!(
        until_type(&mut ws, "status", Duration::from_secs(3)).await["status"],
        "connected"
    );
    assert_eq!(
        until_type(&mut ws, "status", Duration::from_secs(3)).await["status"],
        "timeout"
    );
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_an_unknown_id_is_404_before_the_upgrade() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let mut request = format!("ws://{}/ws/{id}", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let mut own = format!("ws://{}/ws/{id}", app.addr)
        .into_client_request()
        .unwrap();
    own.headers_mut()
        .insert("origin", format!("http://{}", app.addr).parse().unwrap());
    assert!(
        tokio_tungstenite::connect_async(own).await.is_ok(),
        "our own origin is welcome"
    );
    match tokio_tungstenite::connect_async(format!("ws://{}/ws/nope", app.addr)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected 404, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn oversized_messages_are_refused_and_floods_are_rate_limited() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let mut ws = connect(&app, &format!("/ws/{id}")).await;
    for _ in 0..60 {
        send(&mut ws, json!({"type": "ping"})).await;
    }
    let mut limited = 0;
    while let Some(m) = next_json(&mut ws, Duration::from_millis(500)).await {
        if m["code"] == "rate_limited" {
            limited += 1;
        }
    }
    assert!(limited > 0, "a flood of 60 messages is rate limited");
    let mut big = connect(&app, &format!("/ws/{id}")).await;
    let _ = big.send(Message::Text("x".repeat(70 * 1024).into())).await;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(2), big.next()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break true,
            Ok(Some(Ok(_))) => continue,
            Err(_) => break false,
        }
    };
    assert!(ended, "a 70 KiB message closes the socket");
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_thousand_sockets_on_one_choice_all_receive_a_change_within_a_second() {
    let _turn = crate::helpers::heavy_and_timed().await;
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(120.0).await);
    let path = format!("/ws/{id}");
    let mut sockets = Vec::new();
    for _ in 0..10 {
        let batch = (0..100).map(|_| async {
            let mut ws = connect(&app, &path).await;
            until_type(&mut ws, "sync", Duration::from_secs(10)).await;
            ws
        });
        sockets.extend(futures_util::future::join_all(batch).await);
    }
    assert_eq!(app.choice(&id).await["viewers"], 1000);
    let (ready, mut all_ready) = tokio::sync::mpsc::channel::<()>(1000);
    let waits: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let ready = ready.clone();
            tokio::spawn(async move {
                let _ = ready.send(()).await;
                loop {
                    let m = until_type(&mut ws, "sync", Duration::from_secs(3)).await;
                    if m["timeout_seconds"] == 777 {
                        return Instant::now();
                    }
                }
            })
        })
        .collect();
    for _ in 0..1000 {
        all_ready.recv().await;
    }
    let sent = Instant::now();
    app.command(&id, "timeout", json!({"seconds": 777})).await;
    let mut latest = sent;
    for wait in futures_util::future::join_all(waits).await {
        latest = latest.max(wait.expect("every socket got it"));
    }
    let spread = latest - sent;
    println!("1000 sockets all had the change {spread:?} after the POST was sent");
    assert!(spread < Duration::from_secs(1));
}

#[tokio::test]
async fn the_log_streams_deliver_every_event_exactly_once_in_order_and_resume() {
    // 200 creates as fast as they go: more than one client may make by default.
    let app = TestApp::spawn_with(|c| c.limits = Limits::unlimited()).await;
    let mut sse = SseClient::connect(&app.client, &app.url("/api/events?since=0"), None).await;
    let mut socket = connect(&app, "/ws?since=0").await;
    let writer = {
        let client = app.client.clone();
        let url = app.url("/api/choices");
        tokio::spawn(async move {
            for i in 0..200 {
                let r = client
                    .post(&url)
                    .json(&json!({"title": format!("q{i}"), "mode": "text"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
            }
        })
    };
    let mut seqs = Vec::new();
    while seqs.len() < 100 {
        let m = sse.next(Duration::from_secs(5)).await.expect("an event");
        let event: Value = serde_json::from_str(&m.data).unwrap();
        assert_eq!(m.id.as_deref(), Some(event["seq"].to_string().as_str()));
        seqs.push(event["seq"].as_i64().unwrap());
    }
    // Drop after event N and resume with Last-Event-ID while the writer goes on.
    drop(sse);
    let last = seqs.last().unwrap().to_string();
    let mut resumed = SseClient::connect(&app.client, &app.url("/api/events"), Some(&last)).await;
    while seqs.len() < 200 {
        let m = resumed
            .next(Duration::from_secs(5))
            .await
            .expect("an event");
        seqs.push(
            serde_json::from_str::<Value>(&m.data).unwrap()["seq"]
                .as_i64()
                .unwrap(),
        );
    }
    writer.await.unwrap();
    assert_eq!(
        seqs,
        (1..=200).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let mut from_socket = Vec::new();
    while from_socket.len() < 200 {
        let m = next_json(&mut socket, Duration::from_secs(5))
            .await
            .expect("an event on the socket");
        assert_eq!(m["type"], "created");
        from_socket.push(m["seq"].as_i64().unwrap());
    }
    assert_eq!(from_socket, seqs);
}

#[tokio::test]
async fn a_log_reader_resumes_across_a_server_restart_and_misses_nothing_of_a_thousand_events() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("choiceboard.db").display());
    let client = reqwest::Client::new();
    // 1,000 notes as fast as they go: more than one client may send by default.
    let first = crate::helpers::ServerProcess::start(&database, &["--rate-limit", "0"]).await;
    let write = |base: String, from: usize, to: usize| {
        // Eight writers at once: the log orders them, group commit keeps it quick.
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (client, base) = (client.clone(), base.clone());
                tokio::spawn(async move {
                    for i in (from + w..to).step_by(8) {
                        let body = json!({"source": "load", "message": format!("n{i}")});
                        let r = client
                            .post(format!("{base}/api/notes"))
                            .json(&body)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), StatusCode::CREATED);
                    }
                })
            })
            .collect();
        tokio::spawn(async move {
            for writer in writers {
                writer.await.unwrap();
            }
        })
    };
    let writer = write(first.url(""), 0, 500);
    let mut reader = SseClient::connect(&client, &first.url("/api/events?since=0"), None).await;
    let mut seqs: Vec<i64> = Vec::new();
    while seqs.len() < 250 {
        let m = reader.next(Duration::from_secs(5)).await.expect("an event");
        seqs.push(m.id.unwrap().parse().unwrap());
    }
    drop(reader);
    writer.await.unwrap();
    first.kill9().await;
    let second = crate::helpers::ServerProcess::start(&database, &["--rate-limit", "0"]).await;
    let writer = write(second.url(""), 500, 1000);
    let last = seqs.last().unwrap().to_string();
    let mut resumed = SseClient::connect(&client, &second.url("/api/events"), Some(&last)).await;
    while seqs.len() < 1000 {
        let m = resumed
            .next(Duration::from_secs(5))
            .await
            .expect("an event after the restart");
        seqs.push(m.id.unwrap().parse().unwrap());
    }
    writer.await.unwrap();
    assert_eq!(
        seqs,
        (1..=1000).collect::<Vec<i64>>(),
        "all 1,000 once, in order, across the restart"
    );
    second.kill9().await;
}
