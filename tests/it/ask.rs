//! `choiceboard ask` as a script runs it: the real binary as a child process, answered over HTTP.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, id_of};

/// `choiceboard ask ARGS --server SERVER` with stdout and stderr piped; stdin too when asked.
pub fn ask(server: &str, args: &[&str], stdin: bool) -> Child {
    Command::new(env!("CARGO_BIN_EXE_choiceboard"))
        .arg("ask")
        .args(args)
        .args(["--server", server])
        .env_remove("CHOICEBOARD_TOKEN")
        .env_remove("CHOICEBOARD_DATABASE")
        .env_remove("RUST_LOG")
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the choiceboard binary starts")
}

/// The newest active choice at `base`, once there is one (the asker has created it).
pub async fn active_choice(base: &str) -> Value {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{base}/api/choices")).send().await {
            if let Ok(body) = r.json::<Value>().await {
                if let Some(first) = body["choices"].as_array().and_then(|c| c.first()) {
                    return first.clone();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no choice appeared at {base}");
}

/// Waits for the asker to exit; its exit status, stdout and stderr.
pub async fn finish(child: Child) -> (i32, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("ask exits within 20 s")
        .expect("ask's output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn base(app: &TestApp) -> String {
    app.url("")
}

#[tokio::test]
async fn an_answered_ask_prints_the_selected_id_and_exits_0() {
    let app = TestApp::spawn().await;
    let child = ask(
        &base(&app),
        &[
            "Deploy?",
            "--option",
            "yes=Ship it",
            "--option",
            "no",
            "--default",
            "no",
            "--timeout",
            "5m",
            "--source",
            "nightly",
        ],
        false,
    );
    let c = active_choice(&base(&app)).await;
    assert_eq!(c["title"], "Deploy?");
    assert_eq!(c["options"][0]["label"], "Ship it");
    assert_eq!(c["default_selection"], json!(["no"]));
    assert_eq!(c["timeout_seconds"], 300);
    assert_eq!(c["source"], "nightly");
    let (status, _) = app
        .command(&id_of(&c), "submit", json!({"selection": ["yes"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!((code, stdout.as_str()), (0, "yes\n"), "stderr: {stderr}");
    assert!(stderr.contains(c["url"].as_str().unwrap()), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "no escape codes off a terminal: {stderr:?}"
    );
}

#[tokio::test]
async fn a_cancelled_ask_exits_2_and_prints_nothing() {
    let app = TestApp::spawn().await;
    let child = ask(&base(&app), &["Deploy?", "--option", "yes"], false);
    let c = active_choice(&base(&app)).await;
    app.command(&id_of(&c), "cancel", json!({"annotation": "not today"}))
        .await;
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!((code, stdout.as_str()), (2, ""), "stderr: {stderr}");
    assert!(stderr.contains("not today"), "{stderr}");
}

#[tokio::test]
async fn an_ask_nobody_answers_exits_3_at_the_deadline_printing_the_default() {
    let app = TestApp::spawn().await;
    let started = Instant::now();
    let child = ask(
        &base(&app),
        &[
            "Deploy?",
            "--option",
            "yes",
            "--option",
            "no",
            "--default",
            "no",
            "--timeout",
            "1s",
        ],
        false,
    );
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!((code, stdout.as_str()), (3, "no\n"), "stderr: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn ctrl_c_cancels_the_choice_and_exits_130() {
    let app = TestApp::spawn().await;
    let child = ask(&base(&app), &["Deploy?", "--option", "yes"], false);
    let c = active_choice(&base(&app)).await;
    let pid = child.id().expect("a running child").to_string();
    // The shell's builtin kill: no signal crate, no dependence on a kill binary.
    let kill = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {pid}")])
        .status()
        .expect("sh runs");
    assert!(kill.success());
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!((code, stdout.as_str()), (130, ""), "stderr: {stderr}");
    let after = app.choice(&id_of(&c)).await;
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["result"]["annotation"], "cancelled by the asker");
}

#[tokio::test]
async fn json_prints_the_whole_final_choice_and_the_prompt_may_come_from_stdin() {
    let app = TestApp::spawn().await;
    let mut child = ask(
        &base(&app),
        &[
            "Which?", "--multi", "--option", "a", "--option", "b", "--option", "c", "--prompt",
            "-", "--json",
        ],
        true,
    );
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"Pick **any**.\n")
        .await
        .expect("write the prompt");
    drop(stdin);
    let c = active_choice(&base(&app)).await;
    assert_eq!(c["prompt"], "Pick **any**.\n");
    assert_eq!(c["mode"], "multi");
    app.command(
        &id_of(&c),
        "submit",
        json!({"selection": ["a", "c"], "annotation": "both"}),
    )
    .await;
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!(code, 0, "stderr: {stderr}");
    let printed: Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(printed["id"], c["id"]);
    assert_eq!(printed["status"], "submitted");
    assert_eq!(printed["result"]["selection"], json!(["a", "c"]));
    assert_eq!(printed["result"]["annotation"], "both");
}

#[tokio::test]
async fn hybrid_prints_the_selection_then_the_text() {
    let app = TestApp::spawn().await;
    let child = ask(
        &base(&app),
        &["Why?", "--hybrid", "--option", "other"],
        false,
    );
    let c = active_choice(&base(&app)).await;
    assert_eq!(c["mode"], "hybrid");
    app.command(
        &id_of(&c),
        "submit",
        json!({"selection": ["other"], "text": "because"}),
    )
    .await;
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!((code, stdout.as_str()), (0, "other\nbecause\n"), "{stderr}");
}

#[tokio::test]
async fn a_refused_choice_exits_1_naming_the_field_and_its_flag() {
    let app = TestApp::spawn().await;
    let child = ask(
        &base(&app),
        &["Deploy?", "--option", "a", "--option", "a"],
        false,
    );
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(
        stderr.contains("options[1].id") && stderr.contains("--option"),
        "{stderr}"
    );
    // A usage error is an error too, never "cancelled" (2).
    let child = ask(&base(&app), &["Deploy?", "--timeout", "soon"], false);
    let (code, _, stderr) = finish(child).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--timeout"), "{stderr}");
}

#[tokio::test]
async fn with_no_server_running_ask_serves_the_choice_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_choiceboard"))
        .args(["ask", "Deploy?", "--option", "yes", "--option", "no"])
        .env("CHOICEBOARD_SERVER", &server)
        .env(
            "CHOICEBOARD_DATABASE",
            format!("sqlite://{}", dir.path().join("asked.db").display()),
        )
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the choiceboard binary starts");
    let c = active_choice(&server).await;
    assert_eq!(c["url"], format!("{server}/choice/{}", id_of(&c)));
    let r = reqwest::Client::new()
        .post(format!("{server}/choice/{}/submit", id_of(&c)))
        .json(&json!({"selection": ["no"]}))
        .send()
        .await
        .expect("the in-process server answers");
    assert_eq!(r.status(), StatusCode::OK);
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!((code, stdout.as_str()), (0, "no\n"), "stderr: {stderr}");
    assert!(stderr.contains("nothing answers"), "{stderr}");
    assert!(dir.path().join("asked.db").exists());
}

/// A port nothing listens on (bound and released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("addr").port()
}
