//! The commands: every action over JSON and forms, their errors, and the submit race.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, code, field, id_of, submit_all_at_once};

#[tokio::test]
async fn submit_over_json_records_the_answer_and_notes() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let (status, c) = app
        .command(
            &id,
            "submit",
            json!({"selection": ["yes"], "annotation": "looks good", "option_annotations": {"yes": "after 6pm"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "submitted");
    assert_eq!(
        c["result"],
        json!({"selection": ["yes"], "text": null, "annotation": "looks good", "option_annotations": {"yes": "after 6pm"}, "via": "api", "by": null})
    );
    assert!(c["deadline"].is_null() && c["resolved_at"].is_string());
    assert_eq!(c["remaining_seconds"], 0.0);
}

#[tokio::test]
async fn a_plain_form_post_gets_303_back_to_the_page() {
    let app = TestApp::spawn().await;
    let c = app
        .create(json!({"title": "Which?", "mode": "multi", "options": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}))
        .await;
    let id = id_of(&c);
    let r = app
        .post_form(
            &format!("/choice/{id}/submit"),
            &[
                ("selection", "a"),
                ("selection", "c"),
                ("note.c", "only on Fridays"),
                ("annotation", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/choice/{id}").as_str());
    let c = app.choice(&id).await;
    assert_eq!(c["result"]["selection"], json!(["a", "c"]));
    assert_eq!(
        c["result"]["option_annotations"],
        json!({"c": "only on Fridays"})
    );
    assert_eq!(c["result"]["annotation"], json!(null));
    assert_eq!(c["result"]["via"], "web");
}

#[tokio::test]
async fn a_form_error_is_a_readable_page_with_the_status() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let r = app
        .post_form(
            &format!("/choice/{id}/submit"),
            &[("selection", "yes"), ("selection", "no")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("choose exactly one option"), "{page}");
    assert_eq!(
        app.choice(&id).await["status"],
        "pending",
        "nothing changed"
    );
}

#[tokio::test]
async fn timeout_sets_or_adds_and_never_leaves_less_than_a_second() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let (status, c) = app.command(&id, "timeout", json!({"seconds": 600})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["timeout_seconds"], 600);
    assert!(c["remaining_seconds"].as_f64().unwrap() > 599.0);
    let (_, c) = app.command(&id, "timeout", json!({"add": -100000})).await;
    let remaining = c["remaining_seconds"].as_f64().unwrap();
    assert!(remaining > 0.9 && remaining <= 1.0, "{remaining}");
    let r = app
        .post_form(&format!("/choice/{id}/timeout"), &[("add", "60")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let remaining = app.choice(&id).await["remaining_seconds"].as_f64().unwrap();
    assert!(remaining > 59.0 && remaining <= 61.0, "{remaining}");
    for (body, expected_field) in [
        (json!({}), "seconds"),
        (json!({"seconds": 0}), "seconds"),
        (json!({"seconds": 604_801}), "seconds"),
        (json!({"seconds": "ten"}), "seconds"),
        (json!({"add": 1e300}), "add"),
    ] {
        let (status, error) = app.command(&id, "timeout", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(field(&error), expected_field, "{body}: {error}");
    }
    let r = app
        .post_form(&format!("/choice/{id}/timeout"), &[("seconds", "soon")])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn pause_freezes_the_remaining_time_and_resume_continues_from_it() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let (status, paused) = app.command(&id, "pause", json!({})).await;
    assert_eq!(
        (status, paused["status"].as_str()),
        (StatusCode::OK, Some("paused"))
    );
    assert!(paused["deadline"].is_null());
    let frozen = paused["remaining_seconds"].as_f64().unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        app.choice(&id).await["remaining_seconds"].as_f64().unwrap(),
        frozen
    );
    let (status, error) = app.command(&id, "pause", json!({})).await;
    assert_eq!((status, code(&error)), (StatusCode::CONFLICT, "conflict"));
    let (status, resumed) = app.command(&id, "resume", json!({})).await;
    assert_eq!(
        (status, resumed["status"].as_str()),
        (StatusCode::OK, Some("pending"))
    );
    let remaining = resumed["remaining_seconds"].as_f64().unwrap();
    assert!(
        (frozen - remaining).abs() < 0.2,
        "{frozen} then {remaining}"
    );
    let (status, error) = app.command(&id, "resume", json!({})).await;
    assert_eq!((status, code(&error)), (StatusCode::CONFLICT, "conflict"));
    app.command(&id, "timeout", json!({"seconds": 5})).await;
    let (_, reset) = app.command(&id, "reset", json!({})).await;
    assert_eq!(
        reset["remaining_seconds"].as_f64().map(f64::round),
        Some(5.0)
    );
}

#[tokio::test]
async fn the_first_final_action_wins_and_every_later_one_is_409_already_final() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let (status, _) = app
        .command(&id, "cancel", json!({"annotation": "not today"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    for (action, body) in [
        ("submit", json!({"selection": ["yes"]})),
        ("cancel", json!({})),
        ("timeout", json!({"seconds": 10})),
        ("pause", json!({})),
        ("resume", json!({})),
        ("reset", json!({})),
    ] {
        let (status, error) = app.command(&id, action, body).await;
        assert_eq!(
            (status, code(&error)),
            (StatusCode::CONFLICT, "already_final"),
            "{action}"
        );
    }
    let c = app.choice(&id).await;
    assert_eq!(
        (c["status"].as_str(), c["version"].as_i64()),
        (Some("cancelled"), Some(2))
    );
    assert_eq!(c["result"]["annotation"], "not today");
}

#[tokio::test]
async fn bad_submissions_are_422_naming_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    for (body, expected) in [
        (json!({"selection": ["maybe"]}), "selection[0]"),
        (json!({"selection": ["yes", "no"]}), "selection"),
        (json!({"selection": []}), "selection"),
        (
            json!({"selection": ["yes"], "option_annotations": {"maybe": "x"}}),
            "option_annotations.maybe",
        ),
        (
            json!({"selection": ["yes"], "annotation": "a".repeat(2001)}),
            "annotation",
        ),
        (json!({"selection": 7}), "selection"),
    ] {
        let (status, error) = app.command(&id, "submit", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(field(&error), expected, "{body}: {error}");
    }
    assert_eq!(app.choice(&id).await["version"], 1);
    let text = id_of(&app.create(json!({"title": "Why?", "mode": "text"})).await);
    let (status, error) = app.command(&text, "submit", json!({"text": "  "})).await;
    assert_eq!(
        (status, field(&error)),
        (StatusCode::UNPROCESSABLE_ENTITY, "text")
    );
    let (status, c) = app
        .command(&text, "submit", json!({"text": "because"}))
        .await;
    assert_eq!(
        (status, c["result"]["text"].as_str()),
        (StatusCode::OK, Some("because"))
    );
}

#[tokio::test]
async fn of_fifty_concurrent_submits_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let mut ok = 0;
    let mut already_final = 0;
    for (status, body) in submit_all_at_once(&[&app], &id, 50).await {
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT if code(&body) == "already_final" => already_final += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, already_final), (1, 49));
    let finals = app.count_events(&id, "submitted").await;
    assert_eq!(finals, 1, "the log holds exactly one final event");
}
