//! The JSON API: create, read, list, long poll, polling, health.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, code, field, id_of};

#[tokio::test]
async fn create_returns_201_with_location_and_the_documented_defaults() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .post(app.url("/api/choices"))
        .json(&json!({"title": "Deploy build 1234?", "options": [{"id": "yes", "label": "Ship it"}, {"id": "no"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let c: serde_json::Value = r.json().await.unwrap();
    let id = id_of(&c);
    assert_eq!(location, format!("/api/choices/{id}"));
    assert!(
        id.len() >= 16
            && id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    );
    assert_eq!(c["url"], format!("http://{}/choice/{id}", app.addr));
    assert_eq!(c["mode"], "single");
    assert_eq!(c["status"], "pending");
    assert_eq!(c["timeout_seconds"], 300);
    assert_eq!(c["on_timeout"], "submit_default");
    assert_eq!(
        (c["min_selections"].as_u64(), c["max_selections"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(c["options"][0]["label"], "Ship it");
    assert_eq!(c["options"][1]["label"], "no", "label defaults to the id");
    assert_eq!(c["version"], 1);
    assert_eq!(c["round"], 1);
    assert!(c["result"].is_null() && c["resolved_at"].is_null());
    let remaining = c["remaining_seconds"].as_f64().unwrap();
    assert!(remaining > 299.0 && remaining <= 300.0, "{remaining}");
    assert!(c["deadline"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.choice(&id).await["title"], "Deploy build 1234?");
}

#[tokio::test]
async fn multi_defaults_to_between_one_and_all_options() {
    let app = TestApp::spawn().await;
    let c = app
        .create(json!({"title": "Which?", "mode": "multi", "options": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}))
        .await;
    assert_eq!(
        (c["min_selections"].as_u64(), c["max_selections"].as_u64()),
        (Some(1), Some(3))
    );
    let t = app.create(json!({"title": "Focus", "mode": "timer", "timeout_seconds": 1500, "start_paused": true})).await;
    assert_eq!(t["status"], "paused");
    assert_eq!(t["remaining_seconds"], 1500.0);
    assert!(t["deadline"].is_null());
    let text = app
        .create(json!({"title": "Why?", "mode": "text", "placeholder": "Because..."}))
        .await;
    assert_eq!(text["placeholder"], "Because...");
}

#[tokio::test]
async fn every_bad_create_is_a_422_naming_its_field() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(201);
    let many: Vec<_> = (0..101).map(|i| json!({"id": format!("o{i}")})).collect();
    let cases = [
        (json!({}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": long, "options": [{"id": "a"}]}), "title"),
        (
            json!({"title": "x", "prompt": "p".repeat(20_001), "options": [{"id": "a"}]}),
            "prompt",
        ),
        (json!({"title": "x"}), "options"),
        (json!({"title": "x", "options": []}), "options"),
        (json!({"title": "x", "options": many}), "options"),
        (
            json!({"title": "x", "options": [{"id": ""}]}),
            "options[0].id",
        ),
        (
            json!({"title": "x", "options": [{"id": "a"}, {"id": "a"}]}),
            "options[1].id",
        ),
        (
            json!({"title": "x", "options": [{"id": "y".repeat(65)}]}),
            "options[0].id",
        ),
        (
            json!({"title": "x", "options": [{"id": "a"}], "timeout_seconds": 0}),
            "timeout_seconds",
        ),
        (
            json!({"title": "x", "options": [{"id": "a"}], "timeout_seconds": 604_801}),
            "timeout_seconds",
        ),
        (
            json!({"title": "x", "options": [{"id": "a"}], "timeout_seconds": "soon"}),
            "timeout_seconds",
        ),
        (
            json!({"title": "x", "options": [{"id": "a"}], "default_selection": ["b"]}),
            "default_selection[0]",
        ),
        (
            json!({"title": "x", "options": [{"id": "a"}], "mode": "poll"}),
            "mode",
        ),
        (
            json!({"title": "x", "options": [{"id": "a"}], "on_timeout": "explode"}),
            "on_timeout",
        ),
        (
            json!({"title": "x", "options": [{"id": "a"}], "max_selections": 2}),
            "max_selections",
        ),
        (
            json!({"title": "x", "mode": "multi", "options": [{"id": "a"}], "max_selections": 2}),
            "max_selections",
        ),
        (
            json!({"title": "x", "mode": "multi", "options": [{"id": "a"}, {"id": "b"}], "min_selections": 2, "max_selections": 1}),
            "min_selections",
        ),
        (
            json!({"title": "x", "mode": "timer", "options": [{"id": "a"}]}),
            "options",
        ),
        (
            json!({"title": "x", "options": [{"id": "a"}], "source": "s".repeat(65)}),
            "source",
        ),
        (json!({"title": 5}), "title"),
        (json!({"title": "x", "options": "yes,no"}), "options"),
    ];
    for (body, expected) in cases {
        let (status, error) = app.post_json("/api/choices", &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} gave {error}"
        );
        assert_eq!(code(&error), "invalid");
        assert_eq!(field(&error), expected, "{body} gave {error}");
        assert!(!error["error"]["message"].as_str().unwrap_or("").is_empty());
    }
    let (_, list) = app.get_json("/api/choices?status=all").await;
    assert_eq!(
        list["choices"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400_malformed_and_over_a_mebibyte_is_413() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .post(app.url("/api/choices"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&r.json().await.unwrap()), "malformed");
    let big = format!(r#"{{"title":"x","prompt":"{}"}}"#, "a".repeat(1 << 20));
    let r = app
        .client
        .post(app.url("/api/choices"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&r.json().await.unwrap()), "too_large");
}

#[tokio::test]
async fn list_filters_by_status_and_limits_newest_first() {
    let app = TestApp::spawn().await;
    let first = id_of(&app.create_yes_no(60.0).await);
    let second = id_of(&app.create_yes_no(60.0).await);
    let third = id_of(&app.create_yes_no(60.0).await);
    let (status, _) = app.command(&second, "cancel", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let ids = |v: serde_json::Value| -> Vec<String> {
        v["choices"].as_array().unwrap().iter().map(id_of).collect()
    };
    assert_eq!(
        ids(app.get_json("/api/choices").await.1),
        vec![third.clone(), first.clone()]
    );
    assert_eq!(
        ids(app.get_json("/api/choices?status=final").await.1),
        vec![second.clone()]
    );
    assert_eq!(
        ids(app.get_json("/api/choices?status=all&limit=2").await.1),
        vec![third.clone(), second]
    );
    for bad in ["status=done", "limit=0", "limit=1001", "limit=abc"] {
        let (status, error) = app.get_json(&format!("/api/choices?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(
            ["status", "limit"].contains(&field(&error)),
            "{bad}: {error}"
        );
    }
}

#[tokio::test]
async fn unknown_choices_and_routes_are_404_not_found() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/choices/nope",
        "/api/choices/nope/wait?timeout=0",
        "/nowhere",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(code(&body), "not_found");
    }
    let (status, body) = app
        .command("nope", "submit", json!({"selection": ["yes"]}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let id = id_of(&app.create_yes_no(60.0).await);
    let (status, body) = app.command(&id, "explode", json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn wait_answers_within_300_ms_of_the_choice_becoming_final() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let waiter = {
        let client = app.client.clone();
        let url = app.url(&format!("/api/choices/{id}/wait?timeout=30"));
        tokio::spawn(async move {
            let r = client.get(url).send().await.unwrap();
            (Instant::now(), r.json::<serde_json::Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = app
        .command(&id, "submit", json!({"selection": ["yes"]}))
        .await;
    let submitted = Instant::now();
    assert_eq!(status, StatusCode::OK);
    let (answered, body) = waiter.await.unwrap();
    assert_eq!(body["status"], "submitted");
    assert_eq!(body["result"]["selection"], json!(["yes"]));
    let lag = answered.saturating_duration_since(submitted);
    assert!(
        lag < Duration::from_millis(300),
        "the long poll answered {lag:?} after the submit"
    );
}

#[tokio::test]
async fn wait_gives_the_current_state_when_its_timeout_passes() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let started = Instant::now();
    let (status, body) = app
        .get_json(&format!("/api/choices/{id}/wait?timeout=0.4"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "pending");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let (status, body) = app
        .get_json(&format!("/api/choices/{id}/wait?timeout=3601"))
        .await;
    assert_eq!(
        (status, field(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "timeout")
    );
}

#[tokio::test]
async fn a_deadline_fires_within_a_second_with_the_default_selection() {
    let app = TestApp::spawn().await;
    let created = app.create_yes_no(1.0).await;
    let id = id_of(&created);
    let (_, body) = app
        .get_json(&format!("/api/choices/{id}/wait?timeout=5"))
        .await;
    assert_eq!(body["status"], "timed_out");
    assert_eq!(body["result"]["selection"], json!(["no"]));
    assert_eq!(body["result"]["via"], "timeout");
    let deadline = created["deadline"].as_str().unwrap();
    let resolved = body["resolved_at"].as_str().unwrap();
    let lag_ms = parse_ms(resolved) - parse_ms(deadline);
    assert!(
        (0..1000).contains(&lag_ms),
        "fired {lag_ms} ms after the deadline"
    );

    let cancel = app
        .create(json!({"title": "x", "options": [{"id": "a"}], "default_selection": ["a"], "on_timeout": "cancel", "timeout_seconds": 1}))
        .await;
    let (_, body) = app
        .get_json(&format!("/api/choices/{}/wait?timeout=5", id_of(&cancel)))
        .await;
    assert_eq!(body["status"], "timed_out");
    assert_eq!(body["result"]["selection"], json!([]));
}

/// Milliseconds of the time of day in an RFC 3339 instant (enough to compare close instants).
fn parse_ms(rfc3339: &str) -> i64 {
    let time = &rfc3339[11..23];
    let h: i64 = time[0..2].parse().unwrap();
    let m: i64 = time[3..5].parse().unwrap();
    let s: i64 = time[6..8].parse().unwrap();
    let ms: i64 = time[9..12].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1000 + ms
}

#[tokio::test]
async fn polling_with_the_cursor_never_skips_or_repeats_an_event() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(id_of(&app.create_yes_no(60.0).await));
    }
    let (_, page) = app.get_json("/api/status?since=0&limit=3").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    assert_eq!(page["cursor"], 3);
    assert_eq!(page["active"].as_array().unwrap().len(), 5);
    app.command(&ids[0], "timeout", json!({"seconds": 120}))
        .await;
    app.command(&ids[1], "submit", json!({"selection": "yes"}))
        .await;
    let events = app.all_events(0).await;
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(&kinds[5..], ["timeout_changed", "submitted"]);
    assert_eq!(events[5]["data"]["timeout_seconds"], 120);
    assert_eq!(events[6]["choice_id"], ids[1].as_str());
    let (_, tail) = app.get_json("/api/status?since=7").await;
    assert_eq!(
        (
            tail["cursor"].as_i64(),
            tail["events"].as_array().unwrap().len()
        ),
        (Some(7), 0)
    );
    for bad in ["since=-1", "since=x", "limit=0", "limit=5000"] {
        let (status, _) = app.get_json(&format!("/api/status?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
}

#[tokio::test]
async fn new_ids_never_look_like_flags_and_ids_of_the_old_form_still_resolve() {
    let app = TestApp::spawn().await;
    for _ in 0..20 {
        let id = id_of(&app.create_yes_no(600.0).await);
        assert!(id.starts_with(|c: char| c.is_ascii_digit()), "{id}");
    }
    // A choice made before ids changed form: 24 characters of a byte-ordered base64 led by `-`.
    let id = id_of(&app.create_yes_no(600.0).await);
    let old = "-0SxQk3Jx9aB_cD-eF0gH1iJ";
    // Renamed in the database under the running server: memory holds the new id, and the old
    // one is read from the store like any choice memory does not hold.
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database)
        .await
        .expect("the test's database");
    for statement in [
        format!(
            "UPDATE choices SET id = '{old}', state = REPLACE(state, '{id}', '{old}') WHERE id = '{id}'"
        ),
        format!(
            "UPDATE events SET choice_id = '{old}', data = REPLACE(data, '{id}', '{old}') WHERE choice_id = '{id}'"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut db)
            .await
            .expect("rename the choice");
    }
    let (status, choice) = app.get_json(&format!("/api/choices/{old}")).await;
    assert_eq!((status, choice["id"].as_str()), (StatusCode::OK, Some(old)));
    let page = app.get_with(&format!("/choice/{old}"), &[]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let (status, after) = app
        .command(old, "submit", json!({"selection": ["yes"]}))
        .await;
    assert_eq!(
        (status, after["status"].as_str()),
        (StatusCode::OK, Some("submitted"))
    );
}

#[tokio::test]
async fn an_unknown_field_in_a_json_body_is_a_422_naming_it_and_changes_nothing() {
    let app = TestApp::spawn().await;
    // Create: a typo'd timeout would have meant the 5-minute default.
    let (status, body) = app
        .post_json(
            "/api/choices",
            &json!({"title": "x", "options": [{"id": "a"}], "timout_seconds": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!((code(&body), field(&body)), ("invalid", "timout_seconds"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("timout_seconds")),
        "{body}"
    );
    let (status, body) = app
        .post_json(
            "/api/choices",
            &json!({"title": "x", "options": [{"id": "a"}, {"id": "b", "lable": "B"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field(&body), "options[1].lable");
    let (_, list) = app.get_json("/api/choices").await;
    assert_eq!(list["choices"], json!([]), "nothing was created: {list}");

    // A command.
    let id = id_of(&app.create_yes_no(600.0).await);
    let (status, body) = app
        .command(
            &id,
            "submit",
            json!({"selection": ["yes"], "anotation": "ok"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!((code(&body), field(&body)), ("invalid", "anotation"));
    let (status, body) = app.command(&id, "timeout", json!({"secs": 60})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field(&body), "secs");
    assert_eq!(
        app.choice(&id).await["version"],
        1,
        "the choice is unchanged"
    );

    // A form stays lenient: a browser sends what the page holds.
    let r = app
        .post_with(
            &format!("/choice/{id}/submit"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("accept", "application/json"),
            ],
            "selection=yes&csrf_whatever=1",
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // A note.
    let (status, body) = app
        .post_json(
            "/api/notes",
            &json!({"source": "ci", "message": "hi", "levle": "error"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field(&body), "levle");
    let (_, notes) = app.get_json("/api/notes").await;
    assert_eq!(notes["notes"], json!([]), "no note was kept: {notes}");
}

#[tokio::test]
async fn an_unknown_action_is_a_404_that_lists_the_actions_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(600.0).await);
    for body in [
        json!({}),
        json!({"selection": ["yes"]}),
        json!({"nonsense": 1}),
    ] {
        let (status, error) = app.command(&id, "explode", body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
        assert_eq!(code(&error), "not_found");
        assert_eq!(
            error["error"]["message"],
            "no such action: explode (submit, cancel, timeout, pause, resume, reset)"
        );
    }
    let page = app
        .post_form(&format!("/choice/{id}/explode"), &[("selection", "yes")])
        .await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let html = page.text().await.unwrap_or_default();
    assert!(html.contains("no such action: explode"), "{html}");
    // An unknown choice is still "no such choice".
    let (status, error) = app.command("nope", "submit", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["message"], "no such choice");
    assert_eq!(app.choice(&id).await["version"], 1, "nothing changed");
}
