//! A graceful shutdown of the real binary, with streams open and commands in flight.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, SseClient, id_of};

fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_with_open_streams_and_commands_in_flight_exits_0_within_5_s() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("c.db").display());
    let mut server = ServerProcess::start(&database, &["--rate-limit", "0"]).await;
    let client = reqwest::Client::new();
    let r = client
        .post(server.url("/api/choices"))
        .json(&json!({"title": "Stay?", "options": [{"id": "a"}], "timeout_seconds": 600}))
        .send()
        .await
        .unwrap();
    let id = id_of(&r.json().await.unwrap());
    // Open: a choice stream, the dashboard stream, the log stream, a socket, a long poll.
    let mut choice_sse = SseClient::connect(&client, &server.events_url(&id), None).await;
    let mut dashboard_sse = SseClient::connect(&client, &server.url("/events"), None).await;
    let mut log_sse = SseClient::connect(&client, &server.url("/api/events?since=0"), None).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/{id}", server.addr))
        .await
        .unwrap();
    let long_poll = tokio::spawn(
        client
            .get(server.url(&format!("/api/choices/{id}/wait?timeout=60")))
            .send(),
    );
    choice_sse.next(Duration::from_secs(2)).await.unwrap();
    dashboard_sse.next(Duration::from_secs(2)).await.unwrap();
    log_sse.next(Duration::from_secs(2)).await.unwrap();
    // Commands keep coming while the signal arrives; each one answered 200 must be stored.
    let writer = {
        let (client, url) = (client.clone(), server.url(&format!("/choice/{id}/timeout")));
        tokio::spawn(async move {
            let mut acknowledged = 0;
            for _ in 0..200 {
                match client.post(&url).json(&json!({"add": 1})).send().await {
                    Ok(r) if r.status() == StatusCode::OK => acknowledged += 1,
                    _ => break,
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let signalled = Instant::now();
    sigterm(&server.child);
    let status = tokio::time::timeout(Duration::from_secs(5), server.child.wait())
        .await
        .expect("exited within 5 s")
        .unwrap();
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    // Every stream has ended (what was sent before the end is still read).
    for sse in [&mut choice_sse, &mut dashboard_sse, &mut log_sse] {
        let reading = Instant::now();
        while sse.next(Duration::from_secs(3)).await.is_some() {}
        assert!(
            reading.elapsed() < Duration::from_secs(2),
            "a stream was still open"
        );
    }
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(m)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = m {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(
        closed,
        Some(1001),
        "the socket got a close frame: going away"
    );
    let polled = long_poll
        .await
        .unwrap()
        .expect("the long poll was answered");
    assert_eq!(polled.status(), StatusCode::OK);
    let acknowledged = writer.await.unwrap();
    println!(
        "SIGTERM with 3 streams, a socket, a long poll and commands in flight: exit 0 after {took:?}; {acknowledged} commands acknowledged"
    );

    // Restarted on the same database: every acknowledged command is there.
    let server = ServerProcess::start(&database, &[]).await;
    let r = client
        .get(server.url(&format!("/api/choices/{id}")))
        .send()
        .await
        .unwrap();
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["version"], json!(1 + acknowledged), "{c}");
    let _ = server;
}

#[tokio::test]
async fn ctrl_c_with_a_stream_open_exits_0_within_5_s_too() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("c.db").display());
    let mut server = ServerProcess::start(&database, &[]).await;
    let client = reqwest::Client::new();
    let mut sse = SseClient::connect(&client, &server.url("/events"), None).await;
    sse.next(Duration::from_secs(2)).await.unwrap();
    let pid = server.child.id().expect("running").to_string();
    let signalled = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(5), server.child.wait())
        .await
        .expect("exited within 5 s")
        .unwrap();
    assert!(
        status.success(),
        "exit status {status} after {:?}",
        signalled.elapsed()
    );
}
