//! Operations: headers, request ids, /metrics, the OpenAPI document, JSON logs, and a graceful
//! shutdown of the real binary with streams open.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{ServerProcess, SseClient, TestApp, get_text, id_of};

#[tokio::test]
async fn every_response_has_the_security_headers_and_pages_have_no_inline_script() {
    let app = TestApp::spawn_with(|c| c.token = Some("t".into())).await;
    let r = app
        .client
        .post(app.url("/api/choices"))
        .header("authorization", "Bearer t")
        .json(&json!({"title": "Headers", "options": [{"id": "a"}]}))
        .send()
        .await
        .unwrap();
    let id = id_of(&r.json().await.unwrap());
    for (path, auth) in [
        ("/".to_string(), true),
        (format!("/choice/{id}"), false),
        ("/login".into(), false),
        ("/choice/nope".into(), false),
        ("/api/choices".into(), true),
    ] {
        let mut request = app.client.get(app.url(&path)).header("accept", "text/html");
        if auth {
            request = request.header("authorization", "Bearer t");
        }
        let r = request.send().await.unwrap();
        let h = r.headers().clone();
        let csp = h["content-security-policy"].to_str().unwrap();
        for needle in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(needle), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let body = r.text().await.unwrap();
        for (at, _) in body.match_indices("<script") {
            let tag = &body[at..body[at..].find('>').map_or(body.len(), |e| at + e)];
            assert!(tag.contains(" src="), "{path}: inline script {tag}");
        }
        for bad in [
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            "hx-on",
            "javascript:",
        ] {
            assert!(!body.contains(bad), "{path} contains {bad}");
        }
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!id.is_empty());
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_ne!(
        r.headers()["x-request-id"].to_str().unwrap(),
        id,
        "ids differ"
    );
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "no spaces allowed")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "no spaces allowed");
}

/// The value of one sample line of the exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_choices_commands_latency_streams_deadlines_and_frames() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(600.0).await);
    let mut sse =
        SseClient::connect(&app.client, &app.url(&format!("/choice/{id}/events")), None).await;
    sse.next(Duration::from_secs(2)).await.unwrap();
    let (_socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/{id}", app.addr))
        .await
        .unwrap();
    assert_eq!(
        app.command(&id, "submit", json!({"selection": ["yes"]}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.command(&id, "submit", json!({"selection": ["no"]}))
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.command(&id, "bogus", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    let short = id_of(&app.create_yes_no(1.0).await);
    let (_, waited) = app
        .get_json(&format!("/api/choices/{short}/wait?timeout=5"))
        .await;
    assert_eq!(waited["status"], "timed_out");

    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    assert_eq!(
        sample(&text, "choiceboard_choices{status=\"submitted\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "choiceboard_choices{status=\"timed_out\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "choiceboard_choices{status=\"pending\"}"),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "choiceboard_commands_total{action=\"create\",outcome=\"ok\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "choiceboard_commands_total{action=\"submit\",outcome=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "choiceboard_commands_total{action=\"submit\",outcome=\"already_final\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "choiceboard_commands_total{action=\"other\",outcome=\"not_found\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "choiceboard_commands_total{action=\"expire\",outcome=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "choiceboard_command_duration_seconds_count{action=\"submit\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "choiceboard_command_duration_seconds_bucket{action=\"submit\",le=\"+Inf\"}"
        ),
        2.0
    );
    // Requests are counted by the route they matched, never by a path with an id in it.
    assert_eq!(
        sample(
            &text,
            "choiceboard_http_requests_total{method=\"GET\",route=\"/api/choices/{id}/wait\",status=\"200\"}"
        ),
        1.0
    );
    assert!(!text.contains(&short), "no choice id in the metrics");
    assert_eq!(sample(&text, "choiceboard_deadline_lag_seconds_count"), 1.0);
    assert!(
        sample(&text, "choiceboard_deadline_lag_seconds_bucket{le=\"1\"}") >= 1.0,
        "fired within 1 s"
    );
    assert!(sample(&text, "choiceboard_hub_frames_sent_total") >= 1.0);
    sample(&text, "choiceboard_hub_frames_skipped_total");
    // The submitted choice's stream has closed; the socket closes with it.
    let open = sample(&text, "choiceboard_open_streams{kind=\"sse\"}")
        + sample(&text, "choiceboard_open_streams{kind=\"websocket\"}");
    assert!(open <= 2.0, "{open}");
    // Every line is a comment or `series value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(series.starts_with("choiceboard_"), "{line}");
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
    }

    // A stream that is open counts while it is.
    let other = id_of(&app.create_yes_no(600.0).await);
    let _sse = SseClient::connect(
        &app.client,
        &app.url(&format!("/choice/{other}/events")),
        None,
    )
    .await;
    let text = get_text(&app.client, &app.url("/metrics")).await;
    assert!(sample(&text, "choiceboard_open_streams{kind=\"sse\"}") >= 1.0);
    assert_eq!(
        sample(&text, "choiceboard_choices{status=\"pending\"}"),
        1.0
    );
    assert_eq!(sample(&text, "choiceboard_pending_deadlines"), 1.0);
}

/// The real binary with its stderr as lines.
async fn serve_with_logs(
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("c.db").display());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_choiceboard"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &database])
        .args(args)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    (child, rx, dir)
}

#[tokio::test]
async fn json_logs_put_the_request_id_on_every_line_of_a_request() {
    let (mut child, mut lines, _dir) = serve_with_logs(&["--log-format", "json"]).await;
    let first = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.recv())
            .await
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["fields"]["message"] == "choiceboard is serving" {
            break v;
        }
    };
    let addr = first["fields"]["addr"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{addr}/api/choices/some-capability-id"))
        .header("x-request-id", "req-7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let line = loop {
        let line = tokio::time::timeout(Duration::from_secs(5), lines.recv())
            .await
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["span"]["id"] == "req-7" {
            break v;
        }
    };
    assert_eq!(line["fields"]["status"], 404, "{line}");
    assert_eq!(
        line["span"]["route"], "/api/choices/{id}",
        "the id stays out of the logs: {line}"
    );
    assert!(!line.to_string().contains("some-capability-id"));
    let _ = child.start_kill();
}

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
    let mut choice_sse =
        SseClient::connect(&client, &server.url(&format!("/choice/{id}/events")), None).await;
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
async fn a_foreign_origin_cannot_open_the_log_socket_even_with_a_cookie_less_upgrade() {
    // The upgrade check runs before the token check: refused as foreign, not as unsigned.
    let app = TestApp::spawn_with(|c| c.token = Some("t".into())).await;
    let mut request = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    request
        .headers_mut()
        .insert("authorization", "Bearer t".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
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
