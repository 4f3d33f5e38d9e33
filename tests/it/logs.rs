//! Request ids and logs: every response carries an id, and every JSON log line written while
//! serving a request carries it too, with the route it matched and never a choice id.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::helpers::TestApp;

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let r = app.get_with("/healthz", &[]).await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!id.is_empty());
    let r = app.get_with("/healthz", &[]).await;
    assert_ne!(
        r.headers()["x-request-id"].to_str().unwrap(),
        id,
        "ids differ"
    );
    let r = app
        .get_with("/healthz", &[("x-request-id", "trace-42")])
        .await;
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    let r = app
        .get_with("/healthz", &[("x-request-id", "no spaces allowed")])
        .await;
    assert_ne!(r.headers()["x-request-id"], "no spaces allowed");
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

#[tokio::test]
async fn the_start_up_line_gives_an_address_a_person_can_click() {
    let (mut child, mut lines, _dir) = serve_with_logs(&[]).await;
    let line = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.recv())
            .await
            .unwrap()
            .unwrap();
        if line.contains("choiceboard is serving") {
            break line;
        }
    };
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name}= in {line}"))
            .to_string()
    };
    let addr = field("addr");
    assert_eq!(field("url"), format!("http://{addr}/"), "{line}");
    let r = reqwest::get(field("url")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the dashboard opens there");
    let _ = child.start_kill();
}
