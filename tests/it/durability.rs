//! Nothing acknowledged is lost: the real binary killed with SIGKILL and restarted on its file.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, now_ms, rfc3339_ms};

#[tokio::test]
async fn a_kill_9_loses_nothing_acknowledged_and_overdue_deadlines_fire_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("choiceboard.db").display());
    // A load test: 200 creates at once are more than one client may make by default.
    let server = ServerProcess::start(&database, &["--rate-limit", "0"]).await;

    // 200 acknowledged creates, 20 at a time: half due in 3 s, half in 10 minutes.
    let mut created: Vec<Value> = Vec::new();
    for wave in 0..10 {
        let mut tasks = Vec::new();
        for i in 0..20 {
            let timeout = if (wave * 20 + i) % 2 == 0 { 3 } else { 600 };
            let body = json!({"title": format!("q{}", wave * 20 + i), "options": [{"id": "a"}, {"id": "b"}],
                              "default_selection": ["b"], "timeout_seconds": timeout});
            let request = server
                .client
                .post(server.url("/api/choices"))
                .json(&body)
                .send();
            tasks.push(tokio::spawn(async move {
                let r = request.await.unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                r.json::<Value>().await.unwrap()
            }));
        }
        for task in tasks {
            created.push(task.await.unwrap());
        }
    }
    let answered = created[1]["id"].as_str().unwrap().to_string();
    let (status, _) = server
        .command(&answered, "submit", json!({"selection": ["a"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let acknowledged = server.all_events(0).await;
    assert_eq!(acknowledged.len(), 201);
    server.kill9().await;

    // Down until every short deadline has passed.
    let last_due = created
        .iter()
        .filter(|c| c["timeout_seconds"] == 3)
        .map(|c| rfc3339_ms(c["deadline"].as_str().unwrap()))
        .max()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(
        (last_due - now_ms() + 300).max(0) as u64
    ))
    .await;

    let restarted_at = now_ms();
    let server = ServerProcess::start(&database, &[]).await;
    let after = loop {
        let (_, list) = server.get_json("/api/choices?status=all&limit=1000").await;
        let choices = list["choices"].as_array().unwrap().clone();
        let overdue_left = choices
            .iter()
            .filter(|c| c["timeout_seconds"] == 3 && c["status"] == "pending")
            .count();
        if overdue_left == 0 || now_ms() - restarted_at > 5_000 {
            break choices;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(after.len(), 200, "every acknowledged choice is there");
    let mut worst_fire_lag = 0;
    for c in created.iter().filter(|c| c["timeout_seconds"] == 3) {
        let now = after
            .iter()
            .find(|a| a["id"] == c["id"])
            .expect("still there");
        assert_eq!(now["status"], "timed_out", "{now}");
        assert_eq!(now["result"]["selection"], json!(["b"]));
        worst_fire_lag =
            worst_fire_lag.max(rfc3339_ms(now["resolved_at"].as_str().unwrap()) - restarted_at);
    }
    println!("overdue deadlines fired at most {worst_fire_lag} ms after the restart began");
    assert!(
        worst_fire_lag <= 1_500,
        "overdue deadlines fired {worst_fire_lag} ms after start"
    );

    let (_, one) = server.get_json(&format!("/api/choices/{answered}")).await;
    assert_eq!(
        (one["status"].as_str(), one["result"]["selection"].clone()),
        (Some("submitted"), json!(["a"]))
    );
    let long = created
        .iter()
        .find(|c| c["timeout_seconds"] == 600 && c["id"] != answered.as_str())
        .unwrap();
    let (_, now) = server
        .get_json(&format!("/api/choices/{}", long["id"].as_str().unwrap()))
        .await;
    let expected = (rfc3339_ms(long["deadline"].as_str().unwrap()) - now_ms()) as f64 / 1000.0;
    let remaining = now["remaining_seconds"].as_f64().unwrap();
    assert!(
        (remaining - expected).abs() < 1.0,
        "remaining {remaining} s, expected {expected} s"
    );

    let log = server.all_events(0).await;
    assert_eq!(
        &log[..acknowledged.len()],
        &acknowledged[..],
        "no acknowledged event lost or changed"
    );
    assert_eq!(
        log.len(),
        acknowledged.len() + 100,
        "then one timed_out per overdue choice"
    );
    assert!(
        log[acknowledged.len()..]
            .iter()
            .all(|e| e["type"] == "timed_out")
    );
    server.kill9().await;
}
