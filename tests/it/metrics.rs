//! `/metrics`: choices, commands, latency, streams, deadlines and frames, counted by a real
//! server; requests by the route they matched.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{SseClient, TestApp, get_text, id_of};

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
    let mut sse = SseClient::connect(&app.client, &app.events_url(&id), None).await;
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

    let r = app.get_with("/metrics", &[]).await;
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
