//! Limits: the per-client rate limit (and who is exempt), stream caps, the request timeout
//! (408) and the header timeout (1,000 half-sent requests).

use std::time::{Duration, Instant};

use choiceboard::http::limits::Limits;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{SseClient, TestApp, code, id_of};

#[tokio::test]
async fn browser_commands_and_creates_past_the_rate_limit_get_429_with_retry_after() {
    let mut app = TestApp::spawn_with(|c| {
        c.limits = Limits {
            rate_per_second: 0.5,
            rate_burst: 4.0,
            ..Limits::default()
        }
    })
    .await;
    app.act_as_browser();
    let id = id_of(&app.create_yes_no(600.0).await); // 1
    for _ in 0..3 {
        let (status, body) = app.command(&id, "timeout", json!({"add": 1})).await; // 2, 3, 4
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let version = app.choice(&id).await["version"].clone();
    let r = app
        .client
        .post(app.url(&format!("/choice/{id}/submit")))
        .json(&json!({"selection": ["yes"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    assert_eq!(code(&r.json().await.unwrap()), "rate_limited");
    // Refused means unchanged; creates and forms are limited too; reading is not.
    let c = app.choice(&id).await;
    assert_eq!(
        (c["status"].clone(), c["version"].clone()),
        (json!("pending"), version)
    );
    let (status, _) = app
        .post_json("/api/choices", &json!({"title": "x", "mode": "text"}))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let r = app
        .post_with(
            &format!("/choice/{id}/pause"),
            &[
                ("accept", "text/html"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("data-code=\"rate_limited\"")
    );
    assert_eq!(app.get_json("/api/choices").await.0, StatusCode::OK);
    // The bucket refills: within the Retry-After it gave (a refused try takes nothing).
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let (status, body) = loop {
        let (status, body) = app
            .command(&id, "submit", json!({"selection": ["yes"]}))
            .await;
        if status != StatusCode::TOO_MANY_REQUESTS || tokio::time::Instant::now() > until {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_local_script_or_a_token_holder_is_not_rate_limited_but_others_are() {
    // Loopback, no token: a script creates 300 choices back to back at the default limits
    // (bursts of 100).
    let app = TestApp::spawn().await;
    for i in 0..300 {
        let (status, body) = app
            .post_json(
                "/api/choices",
                &json!({"title": format!("q{i}"), "mode": "text"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create {i}: {body}");
    }
    // With a token: whoever carries it is not limited; a command without it is.
    let token = "s3cret-token-for-limits";
    let app = TestApp::spawn_with(|c| {
        c.token = Some(token.into());
        c.limits = Limits {
            rate_per_second: 0.5,
            rate_burst: 3.0,
            ..Limits::default()
        }
    })
    .await;
    let mut id = String::new();
    for i in 0..20 {
        let r = app
            .client
            .post(app.url("/api/choices"))
            .bearer_auth(token)
            .json(&json!({"title": format!("q{i}"), "options": [{"id": "a"}], "timeout_seconds": 600}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "create {i} with the token");
        id = id_of(&r.json().await.unwrap());
    }
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.command(&id, "timeout", json!({"add": 1})).await.0);
    }
    assert_eq!(&statuses[..3], [StatusCode::OK; 3], "{statuses:?}");
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[tokio::test]
async fn websocket_commands_count_against_the_clients_rate_limit() {
    let mut app = TestApp::spawn_with(|c| {
        c.limits = Limits {
            rate_per_second: 0.1,
            rate_burst: 2.0,
            ..Limits::default()
        }
    })
    .await;
    app.act_as_browser();
    let id = id_of(&app.create_yes_no(600.0).await); // uses 1 of 2
    // A browser's socket (it sends Origin): local programs are not limited per client.
    let mut request = format!("ws://{}/ws/{id}", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", format!("http://{}", app.addr).parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    use futures_util::SinkExt;
    let pause = tokio_tungstenite::tungstenite::Message::Text(r#"{"type":"pause"}"#.into());
    socket.send(pause.clone()).await.unwrap(); // 2 of 2
    socket.send(pause).await.unwrap(); // refused
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let m = tokio::time::timeout_at(until.into(), socket.next())
            .await
            .expect("an error message")
            .unwrap()
            .unwrap();
        if m.to_text().unwrap_or("").contains("rate_limited") {
            break;
        }
    }
}

#[tokio::test]
async fn streams_past_the_caps_get_429_or_503_and_the_server_goes_on() {
    let app = TestApp::spawn_with(|c| {
        c.limits = Limits {
            streams_per_client: 2,
            ..Limits::default()
        }
    })
    .await;
    let id = id_of(&app.create_yes_no(600.0).await);
    let events = app.events_url(&id);
    let first = SseClient::connect(&app.client, &events, None).await;
    let (_socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/{id}", app.addr))
        .await
        .unwrap();
    let r = app.client.get(&events).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(code(&r.json().await.unwrap()), "rate_limited");
    match tokio_tungstenite::connect_async(format!("ws://{}/ws/{id}", app.addr)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    // Closing one stream gives its place back.
    drop(first);
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let r = app.client.get(&events).send().await.unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < until, "the place never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The total cap: 503.
    let app = TestApp::spawn_with(|c| {
        c.limits = Limits {
            streams_per_client: 0,
            streams_total: 1,
            ..Limits::default()
        }
    })
    .await;
    let _only = SseClient::connect(&app.client, &app.url("/events"), None).await;
    let r = app.get_with("/api/events", &[]).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&r.json().await.unwrap()), "unavailable");
    assert_eq!(app.get_json("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_request_body_that_never_arrives_gets_408_and_a_slow_answer_is_not_cut_for_streams() {
    let app = TestApp::spawn_with(|c| c.limits.request_timeout = Duration::from_millis(300)).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"POST /api/choices HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"title\"")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    // A stream lives on past the request timeout.
    let mut sse = SseClient::connect(&app.client, &app.url("/events"), None).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(sse.next(Duration::from_secs(2)).await.is_some());
}

#[tokio::test]
async fn a_thousand_half_sent_requests_do_not_stop_the_server_and_are_timed_out() {
    let app = TestApp::spawn_with(|c| c.limits.header_timeout = Duration::from_secs(1)).await;
    let started = Instant::now();
    let mut slow = Vec::with_capacity(1000);
    for i in 0..1000 {
        let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
        // Half of them send part of a request head; the other half send nothing at all.
        if i % 2 == 0 {
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .unwrap();
        }
        slow.push(tcp);
    }
    let opened = started.elapsed();
    // Everyone else is still answered, at once.
    let asked = Instant::now();
    for _ in 0..5 {
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            app.client.get(app.url("/healthz")).send(),
        )
        .await
        .expect("answered while 1,000 requests hang")
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let answered_in = asked.elapsed();
    // And the half-sent ones are closed by the server once the header timeout has passed.
    let closed = futures_util::future::join_all(slow.iter_mut().map(|tcp| async move {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue, // a 408 first, then the close
                Err(_) => return false,
            }
        }
    }))
    .await;
    let still_open = closed.iter().filter(|c| !**c).count();
    println!(
        "1,000 half-sent requests opened in {opened:?}; 5 other requests answered in {answered_in:?}; all closed by the server {:?} after the first",
        started.elapsed()
    );
    assert_eq!(
        still_open, 0,
        "{still_open} connections were never timed out"
    );
    // On a new connection: the client's pooled one has been idle past the 1 s keep-alive, and
    // the server may be closing it just as the client reuses it (IncompleteMessage).
    let r = reqwest::Client::new()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("the server still answers");
    assert_eq!(r.status(), StatusCode::OK);
}
