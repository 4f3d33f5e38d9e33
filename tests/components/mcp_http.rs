//! `/mcp` on the server (MCP over Streamable HTTP), driven by a client nobody here wrote: the
//! official Python SDK (`mcp` on PyPI) running `tests/mcp/http_client.py`. `.ci/run` installs it
//! into `target/mcp-venv`; elsewhere, `CHOICEBOARD_MCP_PYTHON` names a Python that has it.
//! Without one these tests are reported `ignored` (see `main.rs`), or run and fail when
//! `CHOICEBOARD_REQUIRE` names `mcp`. The `/mcp` tests that need no SDK are in
//! `tests/it/mcp_http.rs`.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;
use crate::{Component, Test};

/// This module's tests, in the order they are listed: each needs the MCP Python SDK.
pub fn tests() -> Vec<Test> {
    trials!(
        Component::McpSdk,
        [
            the_python_sdk_speaks_2025_11_25_with_initialize,
            the_python_sdk_speaks_2026_07_28_without_initialize,
            a_session_client_that_can_elicit_is_asked_too_and_the_first_answer_wins,
            a_2026_07_28_client_that_can_elicit_gets_an_input_request_and_its_answer_counts,
            with_a_token_mcp_needs_it_and_the_sdk_gets_through_with_it,
        ]
    )
}

const TOKEN: &str = "mcp-token-for-tests";

/// The Python that has the SDK: `CHOICEBOARD_MCP_PYTHON`, else `target/mcp-venv`'s, if it exists.
pub fn sdk_python() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("CHOICEBOARD_MCP_PYTHON") {
        return Some(path.into());
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python");
    venv.exists().then_some(venv)
}

/// Runs the SDK's client script against `app` connecting with `mode`; panics with its output
/// unless every check in it held.
async fn run_sdk_client(app: &TestApp, mode: &str, token: Option<&str>) {
    let mut args = vec![mode];
    args.extend(token);
    let stdout = run_sdk_script("http_client.py", app, &args).await;
    assert!(
        stdout.contains("three parallel calls answered in reverse order"),
        "{stdout}"
    );
}

/// Runs `tests/mcp/SCRIPT` with the SDK's Python, the server's base URL and `args`; its stdout,
/// once it exited 0 (every assert in it held). Fails the test when the SDK is missing.
async fn run_sdk_script(script: &str, app: &TestApp, args: &[&str]) -> String {
    let python =
        sdk_python().unwrap_or_else(|| panic!("the MCP Python SDK: {}", crate::NO_MCP_SDK));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mcp")
        .join(script);
    let mut command = tokio::process::Command::new(python);
    command.arg(script).arg(app.url("")).args(args);
    let run = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .expect("the SDK client finishes within 60 s")
        .expect("the SDK client runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    println!("{stdout}");
    assert!(
        run.status.success(),
        "the SDK client failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    stdout.into_owned()
}

async fn the_python_sdk_speaks_2025_11_25_with_initialize() {
    let app = TestApp::spawn().await;
    run_sdk_client(&app, "legacy", None).await;
}

async fn the_python_sdk_speaks_2026_07_28_without_initialize() {
    let app = TestApp::spawn().await;
    run_sdk_client(&app, "2026-07-28", None).await;
}

/// Runs `tests/mcp/elicitation.py` connecting with `mode`; checks each scenario it reports.
async fn elicitation_scenarios(mode: &str, scenarios: &[&str]) {
    let app = TestApp::spawn().await;
    let stdout = run_sdk_script("elicitation.py", &app, &[mode]).await;
    for scenario in scenarios {
        assert!(stdout.contains(scenario), "{scenario}: {stdout}");
    }
}

async fn a_session_client_that_can_elicit_is_asked_too_and_the_first_answer_wins() {
    elicitation_scenarios(
        "legacy",
        &[
            "answered in the client: via mcp-elicitation",
            "declined in the client, answered on the page",
            "the question in the client was withdrawn",
        ],
    )
    .await;
}

async fn a_2026_07_28_client_that_can_elicit_gets_an_input_request_and_its_answer_counts() {
    elicitation_scenarios(
        "2026-07-28",
        &[
            "answered in the client: via mcp-elicitation",
            "declined in the client, answered on the page",
        ],
    )
    .await;
}

async fn with_a_token_mcp_needs_it_and_the_sdk_gets_through_with_it() {
    let app = TestApp::spawn_with(|c| c.token = Some(TOKEN.into())).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"}}});
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .bearer_auth("wrong")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(TOKEN)
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the token admits the handshake");
    run_sdk_client(&app, "2026-07-28", Some(TOKEN)).await;
}
