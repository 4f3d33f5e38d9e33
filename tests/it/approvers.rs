//! Choices that named approvers decide by a quorum of votes, each voting through a link of
//! their own whose key is shown once, in the create answer.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, SseClient, TestApp, code, field, get_text, id_of};

/// A single choice over yes/no that `approvers` decide, `quorum` of them agreeing.
fn approved(approvers: &[&str], quorum: Option<usize>) -> Value {
    let mut body = json!({
        "title": "Deploy build 1234?",
        "options": [{"id": "yes", "label": "Ship it"}, {"id": "no", "label": "Hold"}],
        "default_selection": ["no"],
        "timeout_seconds": 60,
        "approvers": approvers,
    });
    if let Some(q) = quorum {
        body["quorum"] = json!(q);
    }
    body
}

/// Each approver's key, read off the links of a create answer.
fn keys(created: &Value) -> Vec<(String, String)> {
    let links = created["approver_links"]
        .as_object()
        .expect("approver_links");
    links
        .iter()
        .map(|(name, link)| {
            let link = link.as_str().expect("a link");
            let key = link.split_once("?as=").expect("a link with ?as=").1;
            (name.clone(), key.to_string())
        })
        .collect()
}

fn key_of<'a>(keys: &'a [(String, String)], name: &str) -> &'a str {
    &keys.iter().find(|(n, _)| n == name).expect("an approver").1
}

#[tokio::test]
async fn two_of_three_approvers_decide_and_nobody_else_can() {
    let app = TestApp::spawn().await;
    let created = app.create(approved(&["ana", "bo", "cy"], Some(2))).await;
    let id = id_of(&created);
    let keys = keys(&created);
    assert_eq!(keys.len(), 3);
    for (name, key) in &keys {
        let link = created["approver_links"][name].as_str().unwrap();
        assert_eq!(link, app.url(&format!("/choice/{id}?as={key}")));
        // At least 96 random bits, URL-safe base64.
        assert!(key.len() >= 16, "{key}");
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
    assert_eq!(created["approvers"], json!(["ana", "bo", "cy"]));
    assert_eq!(created["quorum"], 2);

    // Anyone else: no key, a wrong key, another choice's key.
    let other = app.create(approved(&["ana"], None)).await;
    let foreign = keys_of_first(&other);
    for body in [
        json!({"selection": ["yes"]}),
        json!({"selection": ["yes"], "as": "not-a-key-of-anyone"}),
        json!({"selection": ["yes"], "as": foreign}),
    ] {
        let (status, answer) = app.command(&id, "submit", body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}: {answer}");
        assert_eq!(code(&answer), "not_an_approver");
    }

    // One vote (JSON): recorded, still pending.
    let (status, after) = app
        .command(
            &id,
            "submit",
            json!({"selection": ["yes"], "annotation": "tests pass", "as": key_of(&keys, "ana")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["status"], "pending");
    assert_eq!(after["votes"].as_array().unwrap().len(), 1);
    assert_eq!(after["votes"][0]["approver"], "ana");
    assert_eq!(after["votes"][0]["selection"], json!(["yes"]));
    assert_eq!(after["votes"][0]["annotation"], "tests pass");
    assert_eq!(app.choice(&id).await["votes"], after["votes"]);

    // The second matching vote, as the page's form sends it: decides.
    let r = app
        .post_form(
            &format!("/choice/{id}/submit"),
            &[("selection", "yes"), ("as", key_of(&keys, "cy"))],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let decided = app.choice(&id).await;
    assert_eq!(decided["status"], "submitted");
    assert_eq!(decided["result"]["selection"], json!(["yes"]));
    assert_eq!(decided["result"]["by"], "cy");
    let voters: Vec<&str> = decided["result"]["votes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["approver"].as_str().unwrap())
        .collect();
    assert_eq!(voters, ["ana", "cy"]);
    assert!(decided["result"]["votes"][0]["at"].is_string());

    // The third is too late.
    let (status, answer) = app
        .command(
            &id,
            "submit",
            json!({"selection": ["no"], "as": key_of(&keys, "bo")}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&answer), "already_final");

    let events = app.events_of(&id).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "voted", "submitted"]);
    assert_eq!(
        events[1]["data"],
        json!({"approver": "ana", "selection": ["yes"], "annotation": "tests pass"})
    );
}

fn keys_of_first(created: &Value) -> String {
    keys(created).remove(0).1
}

#[tokio::test]
async fn a_split_vote_under_a_quorum_of_three_cancels_with_no_quorum() {
    let app = TestApp::spawn().await;
    let created = app.create(approved(&["ana", "bo", "cy"], None)).await;
    assert_eq!(created["quorum"], 3, "the default quorum is every approver");
    let (id, keys) = (id_of(&created), keys(&created));
    let (status, _) = app
        .command(
            &id,
            "submit",
            json!({"selection": "yes", "as": key_of(&keys, "ana")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, after) = app
        .command(
            &id,
            "submit",
            json!({"selection": "no", "as": key_of(&keys, "bo")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["result"]["annotation"], "no quorum");
    assert_eq!(after["result"]["votes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_changed_vote_counts_once() {
    let app = TestApp::spawn().await;
    let created = app.create(approved(&["ana", "bo", "cy"], Some(2))).await;
    let (id, keys) = (id_of(&created), keys(&created));
    let ana = key_of(&keys, "ana");
    for selection in ["yes", "yes", "no"] {
        let (status, after) = app
            .command(&id, "submit", json!({"selection": selection, "as": ana}))
            .await;
        assert_eq!(status, StatusCode::OK, "{after}");
        assert_eq!(
            after["status"], "pending",
            "one approver never makes a quorum of 2"
        );
    }
    let votes = app.choice(&id).await["votes"].clone();
    assert_eq!(votes.as_array().unwrap().len(), 1);
    assert_eq!(votes[0]["selection"], json!(["no"]));
    // bo agrees with ana's first vote, which no longer counts.
    let (_, after) = app
        .command(
            &id,
            "submit",
            json!({"selection": "yes", "as": key_of(&keys, "bo")}),
        )
        .await;
    assert_eq!(after["status"], "pending");
    // cy agrees with ana's latest: that decides.
    let (_, after) = app
        .command(
            &id,
            "submit",
            json!({"selection": "no", "as": key_of(&keys, "cy")}),
        )
        .await;
    assert_eq!(after["status"], "submitted");
    assert_eq!(after["result"]["selection"], json!(["no"]));
}

#[tokio::test]
async fn bad_approvers_or_quorums_are_refused_and_create_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        (approved(&["ana", "ana"], None), "approvers[1]"),
        (approved(&[], None), "approvers"),
        (approved(&["ana", "bo"], Some(3)), "quorum"),
        (approved(&["ana", "bo"], Some(0)), "quorum"),
        (approved(&[&"x".repeat(41)], None), "approvers[0]"),
        (
            json!({"title": "t", "mode": "text", "approvers": ["ana"]}),
            "approvers",
        ),
        (
            json!({"title": "t", "mode": "timer", "approvers": ["ana"]}),
            "approvers",
        ),
        (
            json!({"title": "t", "mode": "hybrid", "options": [{"id": "a"}], "approvers": ["ana"]}),
            "approvers",
        ),
        (
            json!({"title": "t", "options": [{"id": "a"}], "quorum": 1}),
            "quorum",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = app.post_json("/api/choices", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(field(&answer), expected, "{body}: {answer}");
    }
    let fifty_one: Vec<String> = (0..51).map(|i| format!("p{i}")).collect();
    let names: Vec<&str> = fifty_one.iter().map(String::as_str).collect();
    let (status, answer) = app.post_json("/api/choices", &approved(&names, None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field(&answer), "approvers");
    let (_, all) = app.get_json("/api/choices?status=all").await;
    assert_eq!(all["choices"], json!([]), "nothing was created");

    // A key on a choice that no approvers decide is refused too, and changes nothing.
    let id = id_of(&app.create_yes_no(60.0).await);
    let (status, answer) = app
        .command(&id, "submit", json!({"selection": "yes", "as": "some-key"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field(&answer), "as");
    assert_eq!(app.choice(&id).await["status"], "pending");
}

#[tokio::test]
async fn fifty_racing_last_votes_leave_exactly_one_submitted() {
    let app =
        TestApp::spawn_with(|c| c.limits = choiceboard::http::limits::Limits::unlimited()).await;
    let names: Vec<String> = (0..50).map(|i| format!("approver {i}")).collect();
    let names_ref: Vec<&str> = names.iter().map(String::as_str).collect();
    let created = app.create(approved(&names_ref, Some(2))).await;
    let (id, keys) = (id_of(&created), keys(&created));
    // One vote in: every other approver's "yes" would now decide, and all 50 send at once.
    let (status, _) = app
        .command(
            &id,
            "submit",
            json!({"selection": "yes", "as": key_of(&keys, "approver 0")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let votes = keys.iter().map(|(_, key)| {
        let (client, url) = (app.client.clone(), app.url(&format!("/choice/{id}/submit")));
        let key = key.clone();
        tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"selection": ["yes"], "as": key}))
                .send()
                .await
                .expect("a vote");
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        })
    });
    let mut submitted = 0;
    for vote in futures_util::future::join_all(votes).await {
        let (status, body) = vote.expect("the vote task");
        match status {
            StatusCode::OK if body["status"] == "submitted" => submitted += 1,
            // approver 0 again, before the decision: still one vote of theirs.
            StatusCode::OK => assert_eq!(body["status"], "pending", "{body}"),
            StatusCode::CONFLICT => assert_eq!(code(&body), "already_final"),
            other => panic!("a racing vote got {other}: {body}"),
        }
    }
    assert_eq!(submitted, 1, "exactly one vote decided");
    let finals = app.count_events(&id, "submitted").await;
    assert_eq!(finals, 1, "exactly one submitted event");
    let result = app.choice(&id).await["result"].clone();
    assert_eq!(result["votes"].as_array().unwrap().len(), 2);
}

/// The keys are in the create answer and nowhere else: not in any other answer, stream, page
/// without its key, the server's log, or the database file.
#[tokio::test]
async fn approver_keys_appear_in_no_other_answer_stream_log_or_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("choiceboard.db");
    let server = ServerProcess::start(&format!("sqlite://{}", db.display()), &[]).await;
    let created = server.create(approved(&["ana", "bo", "cy"], Some(2))).await;
    let (id, keys) = (id_of(&created), keys(&created));
    let client = server.client.clone();
    let mut seen = String::new();
    let mut choice_stream = SseClient::connect(&client, &server.events_url(&id), None).await;
    let mut log_stream =
        SseClient::connect(&client, &server.url("/api/events?since=0"), None).await;
    let mut board_stream = SseClient::connect(&client, &server.url("/events"), None).await;

    // Votes through every way a key travels: a JSON field, a form field, the link's query.
    let vote = |body: Value, query: &str| {
        let request = client.post(server.url(&format!("/choice/{id}/submit{query}")));
        async move { request.json(&body).send().await.unwrap() }
    };
    let r = vote(json!({"selection": "yes", "as": key_of(&keys, "ana")}), "").await;
    assert_eq!(r.status(), StatusCode::OK);
    seen.push_str(&r.text().await.unwrap());
    // The approver's own page holds its key (in its form), and only its key.
    let bo_page = get_text(
        &client,
        &server.url(&format!("/choice/{id}?as={}", key_of(&keys, "bo"))),
    )
    .await;
    assert!(bo_page.contains(key_of(&keys, "bo")) && bo_page.contains("Your vote, bo"));
    assert!(!bo_page.contains(key_of(&keys, "ana")) && !bo_page.contains(key_of(&keys, "cy")));
    let r = vote(
        json!({"selection": "yes"}),
        &format!("?as={}", key_of(&keys, "cy")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    seen.push_str(&r.text().await.unwrap());
    assert!(seen.contains("\"submitted\""), "{seen}");

    for path in [
        format!("/api/choices/{id}"),
        format!("/choice/{id}"),
        format!("/api/choices/{id}/wait?timeout=1"),
        "/api/choices?status=all".to_string(),
        "/api/status?since=0".to_string(),
        "/".to_string(),
        "/board".to_string(),
        "/metrics".to_string(),
    ] {
        let r = client.get(server.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        seen.push_str(&r.text().await.unwrap());
    }
    for stream in [&mut choice_stream, &mut log_stream, &mut board_stream] {
        while let Some(message) = stream.next(Duration::from_millis(700)).await {
            seen.push_str(&message.data);
        }
    }
    assert!(
        seen.contains("\"voted\"") && seen.contains("ana"),
        "the streams carried the votes"
    );
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        stored.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let log = server.output.lock().unwrap().clone();
    assert!(
        log.contains("answered"),
        "the access log was captured: {log}"
    );
    for (name, key) in &keys {
        assert!(
            !seen.contains(key.as_str()),
            "{name}'s key in an answer or stream"
        );
        assert!(
            !log.contains(key.as_str()),
            "{name}'s key in the server's log"
        );
        assert!(
            !stored.windows(key.len()).any(|w| w == key.as_bytes()),
            "{name}'s key in the database files"
        );
    }
}

#[tokio::test]
async fn ask_takes_approvers_prints_their_links_and_exits_with_the_vote() {
    let app = TestApp::spawn().await;
    let child = crate::ask::ask(
        &app.url(""),
        &[
            "Deploy?",
            "--option",
            "yes",
            "--option",
            "no",
            "--approver",
            "ana",
            "--approver",
            "bo",
            "--quorum",
            "1",
            "--timeout",
            "30",
        ],
        false,
    );
    let choice = crate::ask::active_choice(&app.url("")).await;
    assert_eq!(choice["approvers"], json!(["ana", "bo"]));
    assert_eq!(choice["quorum"], 1);
    // The links are on ask's stderr; read bo's once it has printed it.
    let mut child = child;
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    let mut printed = Vec::new();
    let bo_link = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push(line.clone());
            if let Some(link) = line.strip_prefix("choiceboard: bo votes at ") {
                return link.to_string();
            }
        }
        panic!("ask printed no link for bo: {printed:?}");
    })
    .await
    .expect("the links within 10 s");
    let key = bo_link.split_once("?as=").expect("a key").1;
    let (status, _) = app
        .command(
            &id_of(&choice),
            "submit",
            json!({"selection": "no", "as": key}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("ask exits")
        .expect("its output");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no\n");
}
