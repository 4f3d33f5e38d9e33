//! `/mcp` on the server (MCP over Streamable HTTP), driven by a client nobody here wrote: the
//! official Python SDK (`mcp` on PyPI) running `tests/mcp/http_client.py`. `.ci/run` installs it
//! into `target/mcp-venv`; elsewhere, `CHOICEBOARD_MCP_PYTHON` names a Python that has it.
//! Without one the SDK tests skip, or fail when `CHOICEBOARD_REQUIRE` names `mcp`.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

const TOKEN: &str = "mcp-token-for-tests";

fn sdk_python() -> Option<PathBuf> {
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
        sdk_python().is_none() || stdout.contains("three parallel calls answered in reverse order"),
        "{stdout}"
    );
}

/// Runs `tests/mcp/SCRIPT` with the SDK's Python, the server's base URL and `args`; its stdout,
/// once it exited 0 (every assert in it held). Empty when the SDK is missing (and allowed to be).
async fn run_sdk_script(script: &str, app: &TestApp, args: &[&str]) -> String {
    let Some(python) = sdk_python() else {
        if crate::browser::required("mcp") {
            panic!("the MCP Python SDK is not installed, and CHOICEBOARD_REQUIRE names mcp");
        }
        eprintln!("skipped: the MCP Python SDK is not installed (see tests/it/mcp_http.rs)");
        return String::new();
    };
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

#[tokio::test]
async fn the_python_sdk_speaks_2025_11_25_with_initialize() {
    let app = TestApp::spawn().await;
    run_sdk_client(&app, "legacy", None).await;
}

#[tokio::test]
async fn the_python_sdk_speaks_2026_07_28_without_initialize() {
    let app = TestApp::spawn().await;
    run_sdk_client(&app, "2026-07-28", None).await;
}

/// Runs `tests/mcp/elicitation.py` connecting with `mode`; checks each scenario it reports.
async fn elicitation_scenarios(mode: &str, scenarios: &[&str]) {
    let app = TestApp::spawn().await;
    let stdout = run_sdk_script("elicitation.py", &app, &[mode]).await;
    if sdk_python().is_some() {
        for scenario in scenarios {
            assert!(stdout.contains(scenario), "{scenario}: {stdout}");
        }
    }
}

#[tokio::test]
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

#[tokio::test]
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

#[tokio::test]
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

#[tokio::test]
async fn a_page_on_another_site_can_neither_drive_nor_read_mcp() {
    let app = TestApp::spawn().await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    for origin in ["https://evil.example", "null"] {
        let r = app
            .client
            .post(app.url("/mcp"))
            .header("origin", origin)
            .header("accept", "application/json, text/event-stream")
            .json(&list)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "POST from {origin}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden_origin");
        let r = app
            .get_with(
                "/mcp",
                &[("origin", origin), ("accept", "text/event-stream")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "GET from {origin}");
    }
    // The server's own origin is not refused (the MCP layer answers it).
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("origin", app.url(""))
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "page", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// The Tasks extension (2026-07-28), with rmcp's own client: the Python SDK does not do tasks.
/// A provide_choice task outlives a kill -9 of the server and, asked again on the restarted
/// server, returns the person's answer: a task is its choice, read from the database.
#[tokio::test]
async fn a_task_outlives_a_restart_and_returns_the_persons_answer() {
    use rmcp::model::{
        CallToolRequestParams, CallToolResponse, CancelTaskParams, ClientCapabilities,
        ClientConfig, GetTaskParams, Implementation, ProtocolVersion, TaskPayload, TaskStatus,
    };
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    use rmcp::transport::StreamableHttpClientTransport;

    async fn connect(url: String) -> rmcp::service::RunningService<rmcp::RoleClient, ClientConfig> {
        let info = ClientConfig::new(
            ClientCapabilities::builder().enable_tasks().build(),
            Implementation::new("choiceboard-tests", "1"),
        );
        let lifecycle = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        info.serve_with_lifecycle(StreamableHttpClientTransport::from_uri(url), lifecycle)
            .await
            .expect("an MCP client connects")
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", dir.path().join("choiceboard.db").display());
    let server = crate::helpers::ServerProcess::start(&database, &[]).await;
    let client = connect(server.url("/mcp")).await;
    let arguments = json!({"title": "Deploy, as a task?", "options": [{"id": "yes"}, {"id": "no"}],
        "timeout_seconds": 120});
    let call = CallToolRequestParams::new("provide_choice")
        .with_arguments(arguments.as_object().cloned().expect("an object"));
    let CallToolResponse::Task(created) = client.call_tool_once(call).await.expect("a call") else {
        panic!("a client with the Tasks extension gets a task");
    };
    let task_id = created.task.task_id.clone();
    assert_eq!(created.task.status, TaskStatus::Working);
    let got = client
        .get_task(GetTaskParams::new(&task_id))
        .await
        .expect("tasks/get");
    assert_eq!(got.task.status(), TaskStatus::Working);
    let message = got.task.task.status_message.clone().unwrap_or_default();
    assert!(message.contains(&format!("/choice/{task_id}")), "{message}");
    // tasks/cancel is acknowledged and cancels nothing: the person may still be answering.
    client
        .cancel_task(CancelTaskParams::new(&task_id))
        .await
        .expect("tasks/cancel is acknowledged");
    let _ = client.cancel().await;
    server.kill9().await;

    let server = crate::helpers::ServerProcess::start(&database, &[]).await;
    let http = reqwest::Client::new();
    let choice: serde_json::Value = http
        .get(server.url(&format!("/api/choices/{task_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(choice["status"], "pending", "the cancel cancelled nothing");
    let client = connect(server.url("/mcp")).await;
    let still = client
        .get_task(GetTaskParams::new(&task_id))
        .await
        .expect("tasks/get");
    assert_eq!(
        still.task.status(),
        TaskStatus::Working,
        "the task survived the restart"
    );
    let r = http
        .post(server.url(&format!("/choice/{task_id}/submit")))
        .json(&json!({"selection": ["yes"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let done = client
        .get_task(GetTaskParams::new(&task_id))
        .await
        .expect("tasks/get");
    let TaskPayload::Completed { result } = &done.task.payload else {
        panic!("the task is completed once the person answered: {done:?}");
    };
    assert_eq!(
        result["structuredContent"]["action_status"], "selected",
        "{result:?}"
    );
    assert_eq!(
        result["structuredContent"]["selected_indices"],
        json!(["yes"])
    );
    let unknown = client.get_task(GetTaskParams::new("no-such-task")).await;
    assert!(unknown.is_err(), "an unknown task is an error: {unknown:?}");
    let _ = client.cancel().await;
}
