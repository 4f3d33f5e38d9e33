//! `choiceboard mcp` spoken to as an agent's client does: JSON-RPC lines on the child's stdio,
//! the choices answered over HTTP.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::ask::{active_choice, free_port};
use crate::helpers::{TestApp, id_of};

/// An MCP client of the real binary: writes requests, reads every message it sends back.
struct Mcp {
    _child: Child,
    stdin: ChildStdin,
    incoming: mpsc::UnboundedReceiver<Value>,
    /// Messages read while looking for another one: notifications, other calls' results.
    seen: Vec<Value>,
}

impl Mcp {
    /// Starts `choiceboard mcp --server SERVER EXTRA` and completes the handshake.
    async fn start(server: &str, extra: &[&str]) -> (Mcp, Value) {
        Mcp::start_with(server, extra, &[]).await
    }

    async fn start_with(server: &str, extra: &[&str], env: &[(&str, String)]) -> (Mcp, Value) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_choiceboard"))
            .args(["mcp", "--server", server])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the choiceboard binary starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let message: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout carries JSON-RPC only: {line:?}: {e}"));
                if tx.send(message).is_err() {
                    return;
                }
            }
        });
        let mut mcp = Mcp {
            _child: child,
            stdin,
            incoming,
            seen: Vec::new(),
        };
        mcp.send(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "it-agent", "version": "1.0"},
            }}),
        )
        .await;
        let init = mcp.response(0).await;
        mcp.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        (mcp, init)
    }

    async fn send(&mut self, message: Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to mcp");
        self.stdin.flush().await.expect("flush");
    }

    async fn call(&mut self, id: u64, tool: &str, arguments: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": tool, "arguments": arguments}}))
            .await;
    }

    async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(20), self.incoming.recv())
            .await
            .expect("a message within 20 s")
            .expect("mcp is still running")
    }

    /// The response to request `id` (its `result` or `error` object, whole).
    async fn response(&mut self, id: u64) -> Value {
        let is_it = |m: &Value| m["id"] == json!(id) && m.get("method").is_none();
        if let Some(at) = self.seen.iter().position(is_it) {
            return self.seen.remove(at);
        }
        loop {
            let message = self.next().await;
            if is_it(&message) {
                return message;
            }
            self.seen.push(message);
        }
    }

    /// The structured result of tool call `id`.
    async fn result(&mut self, id: u64) -> Value {
        let response = self.response(id).await;
        let result = &response["result"];
        assert_eq!(result["isError"], false, "{response}");
        let text = result["content"][0]["text"].as_str().expect("text content");
        let parsed: Value = serde_json::from_str(text).expect("the text is the JSON result");
        assert_eq!(parsed, result["structuredContent"]);
        parsed
    }
}

/// Every active choice at `base`, once there are `n`.
async fn active_choices(base: &str, n: usize) -> Vec<Value> {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        let body: Value = client
            .get(format!("{base}/api/choices"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let choices = body["choices"].as_array().cloned().unwrap_or_default();
        if choices.len() >= n {
            return choices;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} choices appeared");
}

fn yes_no(title: &str) -> Value {
    json!({"title": title, "prompt": "All checks **passed**.", "selection_mode": "single",
           "options": [{"id": "yes", "description": "Ship now"}, {"id": "no", "recommended": true}]})
}

#[tokio::test]
async fn mcp_initializes_and_lists_both_tools_with_their_schemas() {
    let app = TestApp::spawn().await;
    let (mut mcp, init) = Mcp::start(&app.url(""), &[]).await;
    assert_eq!(
        init["result"]["serverInfo"]["name"], "choiceboard",
        "{init}"
    );
    assert!(init["result"]["capabilities"]["tools"].is_object());
    mcp.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    let list = mcp.response(1).await;
    let tools = list["result"]["tools"].as_array().expect("tools");
    let tool = |name: &str| {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .clone()
    };
    let provide = tool("provide_choice");
    let schema = &provide["inputSchema"];
    assert_eq!(schema["type"], "object");
    for field in [
        "title",
        "prompt",
        "selection_mode",
        "options",
        "timeout_seconds",
        "on_timeout",
    ] {
        assert!(schema["properties"][field].is_object(), "{field}: {schema}");
    }
    let required = schema["required"].as_array().expect("required");
    assert!(required.contains(&json!("title")) && required.contains(&json!("options")));
    assert!(provide["description"].as_str().unwrap().contains("pending"));
    let poll = tool("poll_selection");
    assert!(poll["inputSchema"]["properties"]["choice_id"].is_object());
    assert!(poll["inputSchema"]["properties"]["wait_seconds"].is_object());
    assert_eq!(poll["inputSchema"]["required"], json!(["choice_id"]));
}

#[tokio::test]
async fn three_parallel_calls_each_get_their_own_answer_in_any_order() {
    let app = TestApp::spawn().await;
    let (mut mcp, _) = Mcp::start(&app.url(""), &[]).await;
    for (id, title) in [(11, "First?"), (12, "Second?"), (13, "Third?")] {
        mcp.call(id, "provide_choice", yes_no(title)).await;
    }
    let choices = active_choices(&app.url(""), 3).await;
    let by_title = |title: &str| {
        let c = choices
            .iter()
            .find(|c| c["title"] == title)
            .unwrap_or_else(|| panic!("no {title}"));
        assert_eq!(c["source"], "it-agent", "the client's name is the source");
        assert_eq!(
            c["default_selection"],
            json!(["no"]),
            "recommended = default"
        );
        id_of(c)
    };
    // Answered last first; each call returns as soon as its own choice is answered.
    for (call, title, answer) in [
        (13, "Third?", "yes"),
        (11, "First?", "no"),
        (12, "Second?", "yes"),
    ] {
        let choice_id = by_title(title);
        app.command(
            &choice_id,
            "submit",
            json!({"selection": [answer], "annotation": format!("for {title}"),
                   "option_annotations": {answer: "note"}}),
        )
        .await;
        let result = mcp.result(call).await;
        assert_eq!(result["action_status"], "selected", "{result}");
        assert_eq!(result["selected_indices"], json!([answer]));
        assert_eq!(result["choice_id"], choice_id.as_str());
        assert_eq!(result["additional_annotation"], format!("for {title}"));
        assert_eq!(result["option_annotations"], json!({answer: "note"}));
        assert!(result["url"].as_str().unwrap().ends_with(&choice_id));
    }
}

#[tokio::test]
async fn past_max_wait_a_call_answers_pending_and_poll_selection_gets_the_answer() {
    let app = TestApp::spawn().await;
    let (mut mcp, _) = Mcp::start(&app.url(""), &["--max-wait", "1"]).await;
    let started = Instant::now();
    mcp.call(1, "provide_choice", yes_no("Deploy?")).await;
    let pending = mcp.result(1).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(pending["action_status"], "pending", "{pending}");
    assert!(
        pending.get("selected_indices").is_none(),
        "empty fields are left out"
    );
    let choice_id = pending["choice_id"]
        .as_str()
        .expect("choice_id")
        .to_string();
    assert!(pending["url"].as_str().unwrap().ends_with(&choice_id));
    // The choice keeps its own deadline.
    assert_eq!(app.choice(&choice_id).await["status"], "pending");

    mcp.call(
        2,
        "poll_selection",
        json!({"choice_id": choice_id, "wait_seconds": 0.2}),
    )
    .await;
    assert_eq!(mcp.result(2).await["action_status"], "pending");

    mcp.call(
        3,
        "poll_selection",
        json!({"choice_id": choice_id, "wait_seconds": 30}),
    )
    .await;
    app.command(&choice_id, "submit", json!({"selection": ["yes"]}))
        .await;
    let answered = mcp.result(3).await;
    assert_eq!(answered["action_status"], "selected", "{answered}");
    assert_eq!(answered["selected_indices"], json!(["yes"]));
    assert_eq!(answered["choice_id"], choice_id.as_str());

    mcp.call(4, "poll_selection", json!({"choice_id": "no-such-choice"}))
        .await;
    let error = mcp.response(4).await;
    assert_eq!(error["error"]["code"], -32602, "{error}");
    assert_eq!(error["error"]["data"]["field"], "choice_id");
}

#[tokio::test]
async fn progress_notifications_arrive_while_a_call_waits() {
    let app = TestApp::spawn().await;
    let (mut mcp, _) = Mcp::start(&app.url(""), &[]).await;
    mcp.send(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "provide_choice",
            "arguments": yes_no("Deploy?"),
            "_meta": {"progressToken": "tok-5"},
        }}),
    )
    .await;
    let mut progress = Vec::new();
    while progress.len() < 2 {
        let message = mcp.next().await;
        if message["method"] == "notifications/progress" {
            assert_eq!(message["params"]["progressToken"], "tok-5");
            progress.push(message["params"].clone());
        } else {
            panic!("a progress notification first, not {message}");
        }
    }
    assert!(progress[1]["progress"].as_f64() > progress[0]["progress"].as_f64());
    let text = progress[1]["message"].as_str().expect("a message");
    assert!(text.contains("left") && text.contains("/choice/"), "{text}");
    let c = active_choice(&app.url("")).await;
    app.command(&id_of(&c), "submit", json!({"selection": ["no"]}))
        .await;
    let result = mcp.result(5).await;
    assert_eq!(result["action_status"], "selected");
    assert_eq!(result["selected_indices"], json!(["no"]));
}

#[tokio::test]
async fn deadlines_answer_as_the_call_asked() {
    let app = TestApp::spawn().await;
    let (mut mcp, _) = Mcp::start(&app.url(""), &[]).await;
    let with = |on_timeout: &str| {
        let mut args = yes_no(&format!("On timeout {on_timeout}"));
        args["timeout_seconds"] = json!(0.2); // clamped to the server's minimum, 1 s
        args["on_timeout"] = json!(on_timeout);
        args
    };
    mcp.call(1, "provide_choice", with("submit")).await;
    mcp.call(2, "provide_choice", with("cancel")).await;
    mcp.call(3, "provide_choice", with("reinvoke")).await;
    let submitted = mcp.result(1).await;
    assert_eq!(submitted["action_status"], "timeout_auto_submitted");
    assert_eq!(submitted["selected_indices"], json!(["no"]));
    assert_eq!(mcp.result(2).await["action_status"], "timeout_cancelled");
    let reinvoke = mcp.result(3).await;
    assert_eq!(reinvoke["action_status"], "timeout_reinvoke_requested");
    assert!(reinvoke.get("selected_indices").is_none());
}

#[tokio::test]
async fn bad_arguments_get_an_mcp_error_naming_the_field() {
    let app = TestApp::spawn().await;
    let (mut mcp, _) = Mcp::start(&app.url(""), &[]).await;
    let cases = [
        (json!({"title": "Deploy?"}), "options"),
        (json!({"options": [{"id": "a"}]}), "title"),
        (
            json!({"title": "Deploy?", "options": [{"id": "a"}, {"description": "b"}]}),
            "options[1].id",
        ),
        (
            json!({"title": "Deploy?", "options": [{"id": "a"}, {"id": "a"}]}),
            "options[1].id",
        ),
        (json!({"title": "Deploy?", "options": []}), "options"),
        (json!({"title": "  ", "options": [{"id": "a"}]}), "title"),
        (
            json!({"title": "Deploy?", "options": [{"id": "a"}], "selection_mode": "many"}),
            "selection_mode",
        ),
        (
            json!({"title": "Deploy?", "options": [{"id": "a"}], "on_timeout": "later"}),
            "on_timeout",
        ),
        (
            json!({"title": "Deploy?", "options": [{"id": "a", "recommended": true}, {"id": "b", "recommended": true}]}),
            "options",
        ),
    ];
    for (i, (arguments, field)) in cases.iter().enumerate() {
        let id = 100 + i as u64;
        mcp.call(id, "provide_choice", arguments.clone()).await;
        let response = mcp.response(id).await;
        assert_eq!(response["error"]["code"], -32602, "{arguments}: {response}");
        assert_eq!(
            response["error"]["data"]["field"], *field,
            "{arguments}: {response}"
        );
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{response}"
        );
    }
    assert_eq!(
        active_choices_now(&app).await,
        0,
        "no refused call created a choice"
    );
}

#[tokio::test]
async fn cancelling_a_call_leaves_the_choice_to_its_deadline() {
    let app = TestApp::spawn().await;
    let (mut mcp, _) = Mcp::start(&app.url(""), &[]).await;
    mcp.call(7, "provide_choice", yes_no("Deploy?")).await;
    let c = active_choice(&app.url("")).await;
    mcp.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": 7, "reason": "the user pressed stop"}}),
    )
    .await;
    // The server still answers other calls, and the choice is still open.
    mcp.send(json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}))
        .await;
    mcp.response(8).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.choice(&id_of(&c)).await["status"], "pending");
}

#[tokio::test]
async fn with_no_server_running_mcp_serves_the_choices_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = format!("http://127.0.0.1:{}", free_port());
    let database = format!("sqlite://{}", dir.path().join("mcp.db").display());
    let (mut mcp, _) = Mcp::start_with(
        &server,
        &["--max-wait", "0.5"],
        &[("CHOICEBOARD_DATABASE", database)],
    )
    .await;
    mcp.call(1, "provide_choice", yes_no("Deploy?")).await;
    let pending = mcp.result(1).await;
    assert_eq!(pending["action_status"], "pending");
    assert!(
        pending["url"].as_str().unwrap().starts_with(&server),
        "{pending}"
    );
    let c = active_choice(&server).await;
    assert_eq!(c["id"], pending["choice_id"]);
}

async fn active_choices_now(app: &TestApp) -> usize {
    let (_, body) = app.get_json("/api/choices").await;
    body["choices"].as_array().map_or(0, Vec::len)
}
