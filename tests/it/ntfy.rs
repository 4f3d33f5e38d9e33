//! Pushes to phones in ntfy's format: at create and a minute before the deadline, never
//! slowing a command, and answered from the lock screen.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, id_of};
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
