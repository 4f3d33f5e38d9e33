//! `/mcp` on the server (MCP over Streamable HTTP) without the Python SDK: another site's pages
//! are refused, and the Tasks extension with rmcp's own client. The tests that drive `/mcp` with
//! the official MCP Python SDK are in `tests/components/mcp_http.rs` (reported `ignored` where the
//! SDK is not installed).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

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
    let (_, choice) = server.get_json(&format!("/api/choices/{task_id}")).await;
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
    let (status, _) = server
        .command(&task_id, "submit", json!({"selection": ["yes"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
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
