//! Programs' activity: pushes to phones (ntfy format) and retention.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, get_text, id_of};
use crate::receiver::{pushes_matching, receiver, wait_for_pushes};

#[tokio::test]
async fn a_create_pushes_an_ntfy_message_and_a_minute_before_the_deadline_another() {
    let (url, got) = receiver(200, Duration::ZERO).await;
    let app = TestApp::spawn_with(|c| c.notify_urls = vec![url]).await;
    let c = app.create(json!({"title": "Deploy build 1234?", "source": "nightly", "options": [{"id": "yes"}], "timeout_seconds": 61})).await;
    let id = id_of(&c);
    let pushes = wait_for_pushes(&got, 2, Duration::from_secs(4)).await;
    assert!(pushes.len() >= 2, "{pushes:?}");
    let created = &pushes[0];
    assert_eq!(created.header("title"), "Deploy build 1234?");
    assert_eq!(
        created.header("click"),
        format!("http://{}/choice/{id}", app.addr)
    );
    assert_eq!(created.header("priority"), "default");
    assert!(!created.header("tags").is_empty());
    assert!(created.header("content-type").starts_with("text/plain"));
    assert!(
        created.body.contains("from nightly") && created.body.contains(&id),
        "{}",
        created.body
    );
    let warning = &pushes[1];
    assert_eq!(warning.header("priority"), "high");
    assert!(
        warning.body.contains("Less than a minute left"),
        "{}",
        warning.body
    );
}

#[tokio::test]
async fn a_failing_or_slow_receiver_does_not_slow_a_create() {
    let (slow, got) = receiver(500, Duration::from_secs(3)).await;
    let dead = "http://127.0.0.1:9/nothing-listens-here".to_string();
    let app = TestApp::spawn_with(|c| c.notify_urls = vec![slow, dead]).await;
    app.create_yes_no(600.0).await; // warm up
    let started = Instant::now();
    for _ in 0..10 {
        app.create_yes_no(600.0).await;
    }
    let per_create = started.elapsed() / 10;
    println!("a create took {per_create:?} with a failing and a slow receiver");
    assert!(per_create < Duration::from_millis(200), "{per_create:?}");
    assert!(
        !wait_for_pushes(&got, 1, Duration::from_secs(2))
            .await
            .is_empty(),
        "delivery was attempted"
    );
}

#[tokio::test]
async fn retention_deletes_old_final_choices_and_their_events_and_nothing_else() {
    // Kept 4 s; retention looks every 2 s. The old items go in the round at about 6 s, the
    // recent ones (3 s later) not before about 8 s: the checks below fall in between.
    let app = TestApp::spawn_with(|c| c.keep = Duration::from_secs(4)).await;
    let old = id_of(&app.create_yes_no(600.0).await);
    app.command(&old, "cancel", json!({})).await;
    app.post_json(
        "/api/notes",
        &json!({"source": "loop", "message": "old news"}),
    )
    .await;
    let waiting = id_of(&app.create_yes_no(600.0).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let recent = id_of(&app.create_yes_no(600.0).await);
    app.command(&recent, "cancel", json!({})).await;
    app.post_json(
        "/api/notes",
        &json!({"source": "loop", "message": "fresh news"}),
    )
    .await;
    let until = Instant::now() + Duration::from_secs(6);
    loop {
        let choice_gone =
            app.get_json(&format!("/api/choices/{old}")).await.0 == StatusCode::NOT_FOUND;
        let (_, notes) = app.get_json("/api/notes?source=loop").await;
        let note_gone = notes["notes"]
            .as_array()
            .is_some_and(|n| n.iter().all(|n| n["data"]["message"] != "old news"));
        if choice_gone && note_gone {
            break;
        }
        assert!(
            Instant::now() < until,
            "the old choice and the old note are gone within two retention rounds"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.choice(&waiting).await["status"],
        "pending",
        "a waiting choice is never deleted"
    );
    assert_eq!(
        app.choice(&recent).await["status"],
        "cancelled",
        "a recent one stays"
    );
    let events = app.all_events(0).await;
    assert!(
        events.iter().all(|e| e["choice_id"] != old.as_str()),
        "its events went with it"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["choice_id"] == recent.as_str())
            .count(),
        2
    );
    let (_, notes) = app.get_json("/api/notes").await;
    let messages: Vec<&str> = notes["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["data"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["fresh news"],
        "the old note went, the recent one stays"
    );
    // Seqs go on from where they were: nothing is reused.
    let next = app.create_yes_no(600.0).await;
    let last = app.all_events(0).await.last().unwrap()["seq"]
        .as_i64()
        .unwrap();
    assert_eq!(last, 8, "{next}");
}

#[tokio::test]
async fn notes_are_in_the_log_between_choice_events_in_seq_order() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(600.0).await);
    let (status, note) = app
        .post_json("/api/notes", &json!({"source": "nightly", "kind": "spec_started", "message": "spec 3 of 7", "level": "info"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(
        (note["type"].as_str(), note["choice_id"].clone()),
        (Some("note"), serde_json::Value::Null)
    );
    assert_eq!(
        note["data"],
        json!({"source": "nightly", "kind": "spec_started", "message": "spec 3 of 7", "level": "info"})
    );
    app.command(&id, "cancel", json!({})).await;
    app.post_json(
        "/api/notes",
        &json!({"source": "agents", "message": "batch done"}),
    )
    .await;
    let kinds = app.event_types().await;
    assert_eq!(kinds, ["created", "note", "cancelled", "note"]);
    let (_, listed) = app.get_json("/api/notes?source=nightly").await;
    assert_eq!(listed["notes"].as_array().unwrap().len(), 1);
    assert_eq!(listed["notes"][0]["data"]["kind"], "spec_started");
    let (_, after) = app
        .get_json(&format!("/api/notes?since={}", note["seq"]))
        .await;
    assert_eq!(after["notes"].as_array().unwrap().len(), 1);
    assert_eq!(
        after["notes"][0]["data"]["level"], "info",
        "level defaults to info"
    );
    for (body, field) in [
        (json!({"message": "x"}), "source"),
        (json!({"source": "s".repeat(65), "message": "x"}), "source"),
        (
            json!({"source": "a", "message": "m".repeat(2001)}),
            "message",
        ),
        (json!({"source": "a", "message": ""}), "message"),
        (
            json!({"source": "a", "message": "x", "level": "fatal"}),
            "level",
        ),
        (
            json!({"source": "a", "message": "x", "kind": "k".repeat(65)}),
            "kind",
        ),
    ] {
        let (status, error) = app.post_json("/api/notes", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    for bad in ["limit=0", "since=-1", "source="] {
        let (status, _) = app.get_json(&format!("/api/notes?{bad}")).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn the_dashboard_stream_carries_a_new_note_within_a_second() {
    let app = TestApp::spawn().await;
    let mut sse = crate::helpers::SseClient::connect(&app.client, &app.url("/events"), None).await;
    sse.until("board", "id=\"board\"", Duration::from_secs(2))
        .await
        .expect("the board");
    let posted = Instant::now();
    app.post_json("/api/notes", &json!({"source": "nightly", "kind": "spec_failed", "message": "spec 4 <failed>", "level": "error"})).await;
    let board = sse
        .until("board", "spec 4 &lt;failed&gt;", Duration::from_secs(1))
        .await
        .expect("the note within 1 s");
    println!(
        "a note reached the dashboard stream in {:?}",
        posted.elapsed()
    );
    assert!(
        board.data.contains("data-level=\"error\"")
            && board.data.contains("data-source=\"nightly\"")
    );
}

#[tokio::test]
async fn a_source_whose_heartbeats_stop_is_marked_stale() {
    let app = TestApp::spawn().await;
    // Heartbeats 500 ms apart: stale once silent for 3 intervals (1.5 s), which leaves the
    // "not stale yet" read below room on a busy machine (at 200 ms apart, one slow POST in CI
    // used up the whole 0.6 s).
    for _ in 0..3 {
        app.post_json(
            "/api/notes",
            &json!({"source": "loop", "kind": "heartbeat", "message": "alive"}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    app.post_json(
        "/api/notes",
        &json!({"source": "quiet", "message": "no heartbeats here"}),
    )
    .await;
    let fresh = get_text(&app.client, &app.url("/board")).await;
    assert!(!fresh.contains("data-stale"), "not stale yet: {fresh}");
    let stale = "data-source=\"loop\" data-stale=\"true\"";
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let later = loop {
        let board = get_text(&app.client, &app.url("/board")).await;
        if board.contains(stale) || tokio::time::Instant::now() > until {
            break board;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(later.contains(stale), "stale within 3 s: {later}");
    assert!(
        !later.contains("data-source=\"quiet\" data-stale"),
        "a source without heartbeats never goes stale"
    );
    let filtered = app
        .get_with("/?source=quiet&level=info", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(filtered.contains("no heartbeats here"));
    assert!(
        filtered.contains("data-source=\"loop\" data-level=\"info\" hidden"),
        "the filter hides other sources"
    );
}

#[tokio::test]
async fn choiceboard_note_posts_from_the_shell() {
    let app = TestApp::spawn().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_choiceboard"))
        .args([
            "note",
            "--source",
            "ci",
            "--kind",
            "spec_failed",
            "--level",
            "warn",
            "spec 9 is flaky",
        ])
        .args(["--server", &app.url("")])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, listed) = app.get_json("/api/notes?source=ci").await;
    assert_eq!(
        listed["notes"][0]["data"],
        json!({"source": "ci", "kind": "spec_failed", "message": "spec 9 is flaky", "level": "warn"})
    );
    let too_long = "x".repeat(2001);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_choiceboard"))
        .args(["note", &too_long, "--server", &app.url("")])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("message"));
}

/// One ntfy action of an `Actions` header, as ntfy reads the short format: `kind, label, url`,
/// then `key=value` fields, quotes taken off.
#[derive(Debug)]
struct Action {
    kind: String,
    label: String,
    url: String,
    fields: Vec<(String, String)>,
}

fn parse_actions(header: &str) -> Vec<Action> {
    let unquote = |v: &str| v.trim().trim_matches('"').to_string();
    header
        .split("; ")
        .map(|action| {
            let parts: Vec<&str> = action.split(", ").collect();
            assert!(
                parts.len() >= 3,
                "an action has a kind, a label and a URL: {action}"
            );
            Action {
                kind: unquote(parts[0]),
                label: unquote(parts[1]),
                url: unquote(parts[2]),
                fields: parts[3..]
                    .iter()
                    .map(|f| {
                        let (k, v) = f.split_once('=').expect("key=value");
                        (k.trim().to_string(), unquote(v))
                    })
                    .collect(),
            }
        })
        .collect()
}

impl Action {
    fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Does what a phone does when the button is tapped.
    async fn tap(&self, client: &reqwest::Client) -> reqwest::Response {
        assert_eq!(self.kind, "http");
        let method = reqwest::Method::from_bytes(self.field("method").as_bytes()).unwrap();
        let mut request = client
            .request(method, &self.url)
            .body(self.field("body").to_string());
        for (k, v) in &self.fields {
            if let Some(name) = k.strip_prefix("headers.") {
                request = request.header(name, v);
            }
        }
        request.send().await.unwrap()
    }
}

#[tokio::test]
async fn a_push_answers_from_the_lock_screen_and_then_shows_the_result_and_clears() {
    let (url, got) = receiver(200, Duration::ZERO).await;
    let app = TestApp::spawn_with(|c| c.notify_urls = vec![url]).await;
    let c = app
        .create(
            json!({"title": "Deploy build 1234?", "timeout_seconds": 600,
            "options": [{"id": "yes", "label": "Ship it"}, {"id": "no", "label": "Hold"}]}),
        )
        .await;
    let id = id_of(&c);
    let created = pushes_matching(&got, Duration::from_secs(3), |r| r.method == "POST").await;
    assert_eq!(created.header("x-sequence-id"), id);
    let actions = parse_actions(created.header("actions"));
    println!("Actions: {}", created.header("actions"));
    assert_eq!(actions.len(), 2, "{actions:?}");
    let submit = app.url(&format!("/choice/{id}/submit"));
    for (action, (option, label)) in actions.iter().zip([("yes", "Ship it"), ("no", "Hold")]) {
        assert_eq!(
            (action.kind.as_str(), action.label.as_str()),
            ("http", label)
        );
        assert_eq!(action.url, submit);
        assert_eq!(action.field("method"), "POST");
        assert_eq!(action.field("body"), format!("selection={option}&via=push"));
        assert_eq!(action.field("clear"), "true");
    }

    // A tap on "Hold", exactly as the action says: decided, via push.
    let r = actions[1].tap(&app.client).await;
    assert_eq!(r.status(), StatusCode::OK);
    let decided: serde_json::Value = r.json().await.unwrap();
    assert_eq!(decided["status"], "submitted");
    assert_eq!(decided["result"]["selection"], json!(["no"]));
    assert_eq!(decided["result"]["via"], "push");
    let events = app.events_of(&id).await;
    assert_eq!(events.last().unwrap()["data"]["result"]["via"], "push");
    // A second tap (another button, or a second phone) changes nothing.
    assert_eq!(
        actions[0].tap(&app.client).await.status(),
        StatusCode::CONFLICT
    );

    // The notification then shows the result, under the same sequence id, and is cleared.
    let update = pushes_matching(&got, Duration::from_secs(3), |r| {
        r.method == "POST" && r.body.contains("Decided")
    })
    .await;
    assert_eq!(update.header("x-sequence-id"), id);
    assert!(update.body.contains("Hold"), "{}", update.body);
    assert!(
        update.header("actions").is_empty(),
        "a decided choice has no buttons"
    );
    let clear = pushes_matching(&got, Duration::from_secs(3), |r| r.method == "PUT").await;
    assert_eq!(clear.path, format!("/topic/{id}/clear"));
}

#[tokio::test]
async fn an_extension_replaces_the_minute_warning_and_other_choices_get_an_open_button() {
    let (url, got) = receiver(200, Duration::ZERO).await;
    let app = TestApp::spawn_with(|c| c.notify_urls = vec![url]).await;
    let id = id_of(
        &app.create(
            json!({"title": "Deploy?", "options": [{"id": "yes"}, {"id": "no"}],
        "timeout_seconds": 61}),
        )
        .await,
    );
    let warning = pushes_matching(&got, Duration::from_secs(4), |r| {
        r.header("priority") == "high"
    })
    .await;
    assert_eq!(warning.header("x-sequence-id"), id);
    assert_eq!(
        parse_actions(warning.header("actions")).len(),
        2,
        "the warning answers too"
    );
    let (status, _) = app.command(&id, "timeout", json!({"add": 600})).await;
    assert_eq!(status, StatusCode::OK);
    let moved = pushes_matching(&got, Duration::from_secs(3), |r| {
        r.body.contains("deadline moved")
    })
    .await;
    assert_eq!(
        moved.header("x-sequence-id"),
        id,
        "the same notification, updated"
    );
    assert!(moved.body.contains("11:0"), "{}", moved.body);

    // More than three options, or several to choose: one button that opens the page.
    for body in [
        json!({"title": "Region?", "options": [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}]}),
        json!({"title": "Regions?", "mode": "multi", "options": [{"id": "a"}, {"id": "b"}]}),
    ] {
        let other = id_of(&app.create(body).await);
        let push = pushes_matching(&got, Duration::from_secs(3), |r| {
            r.header("x-sequence-id") == other
        })
        .await;
        let actions = parse_actions(push.header("actions"));
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert_eq!(actions[0].kind, "view");
        assert_eq!(actions[0].url, app.url(&format!("/choice/{other}")));
    }

    // An action with an unknown option, or a made-up via, changes nothing.
    let r = app
        .post_form(
            &format!("/choice/{id}/submit"),
            &[("selection", "maybe"), ("via", "push")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app
        .command(
            &id,
            "submit",
            json!({"selection": ["yes"], "via": "carrier-pigeon"}),
        )
        .await;
    assert_eq!(
        (status, crate::helpers::field(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "via")
    );
    assert_eq!(app.choice(&id).await["status"], "pending");
}
