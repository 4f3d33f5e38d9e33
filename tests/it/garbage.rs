//! No input produces a 5xx: garbage bodies and queries on every route.

use reqwest::StatusCode;
use serde_json::json;

use choiceboard::http::limits::Limits;

use crate::helpers::{TestApp, id_of};

const ACTIONS: [&str; 6] = ["submit", "cancel", "timeout", "pause", "resume", "reset"];

fn garbage_bodies() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = [
        "", "[]", "null", "\"text\"", "42", "{", "{}", "NaN", "{\"title\": NaN}", "{\"title\": 1e400}",
        "{\"title\": \"x\", \"timeout_seconds\": 1e308, \"options\": [{\"id\": \"a\"}]}",
        "{\"title\": \"x\", \"timeout_seconds\": -1e308, \"options\": [{\"id\": \"a\"}]}",
        "{\"title\": \"x\", \"min_selections\": 18446744073709551615, \"mode\": \"multi\", \"options\": [{\"id\": \"a\"}]}",
        "{\"title\": \"x\", \"min_selections\": -1, \"options\": [{\"id\": \"a\"}]}",
        "{\"title\": [], \"options\": {}}", "{\"options\": [null]}", "{\"options\": [1, 2]}",
        "{\"selection\": [1, 2]}", "{\"selection\": {\"a\": 1}}", "{\"seconds\": 1e308}", "{\"add\": -1e308}",
        "{\"seconds\": \"NaN\"}", "{\"option_annotations\": [1]}", "{\"option_annotations\": {\"a\": 5}}",
        "selection=%ZZ&seconds=%", "seconds=inf", "seconds=NaN", "add=-inf", "seconds=1e400", "note.=x&&&==",
        "\u{0}\u{1}\u{2}", "\u{feff}{}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Deterministic pseudo-random bytes (a xorshift), so a failure is reproducible.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in [1, 7, 64, 513, 4096] {
        for _ in 0..8 {
            bodies.push(
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect(),
            );
        }
    }
    bodies
}

#[tokio::test]
async fn garbage_on_every_route_never_gets_a_5xx() {
    // Thousands of requests from one client: the rate limit would answer most of them.
    let app = TestApp::spawn_with(|c| c.limits = Limits::unlimited()).await;
    let id = id_of(&app.create_yes_no(600.0).await);
    let bodies = garbage_bodies();
    let content_types = [
        "application/json",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "text/plain; charset=x-unheard-of",
    ];
    let mut requests = 0;
    for body in &bodies {
        for content_type in content_types {
            let mut paths = vec!["/api/choices".to_string()];
            paths.extend(ACTIONS.iter().map(|a| format!("/choice/{id}/{a}")));
            paths.push("/choice/nope/submit".into());
            paths.push("/mcp".into());
            for path in &paths {
                let mut request = app
                    .client
                    .post(app.url(path))
                    .header("content-type", content_type);
                if path == "/mcp" {
                    // What every MCP client sends, so the protocol layer reads the body.
                    request = request.header("accept", "application/json, text/event-stream");
                }
                let r = request.body(body.clone()).send().await.unwrap();
                requests += 1;
                assert!(
                    r.status().as_u16() < 500,
                    "{path} with {:?} gave {}",
                    String::from_utf8_lossy(body),
                    r.status()
                );
            }
        }
    }
    for query in [
        "limit=99999999999999999999",
        "limit=-5",
        "status=%FF",
        "since=1e10",
        "since=NaN",
        "timeout=inf",
        "timeout=-1",
        "timeout=1e400",
        "%%%",
        "since=&limit=",
    ] {
        for path in [
            "/api/choices",
            &format!("/api/choices/{id}/wait"),
            "/api/status",
        ] {
            let r = app.get_with(&format!("{path}?{query}"), &[]).await;
            requests += 1;
            assert!(
                r.status().as_u16() < 500,
                "{path}?{query} gave {}",
                r.status()
            );
        }
    }
    println!("{requests} garbage requests, no 5xx");
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn garbage_submits_and_timeouts_change_nothing() {
    // Thousands of requests from one client: the rate limit would answer most of them.
    let app = TestApp::spawn_with(|c| c.limits = Limits::unlimited()).await;
    let id = id_of(&app.create_yes_no(600.0).await);
    for body in garbage_bodies() {
        for action in ["submit", "timeout"] {
            let r = app
                .client
                .post(app.url(&format!("/choice/{id}/{action}")))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_client_error(),
                "{action} with {:?} gave {}",
                String::from_utf8_lossy(&body),
                r.status()
            );
        }
    }
    let c = app.choice(&id).await;
    assert_eq!(
        (c["version"].clone(), c["status"].clone()),
        (json!(1), json!("pending"))
    );
}

#[tokio::test]
async fn nul_characters_in_ids_and_text_never_get_a_5xx() {
    // PostgreSQL's TEXT cannot hold U+0000; SQLite can. Either way: no 5xx.
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post_json(
            "/api/choices",
            &json!({"title": "a\u{0}b", "prompt": "\u{0}", "source": "s\u{0}rc",
                    "options": [{"id": "y\u{0}es", "label": "\u{0}"}], "placeholder": "\u{0}"}),
        )
        .await;
    assert!(
        status.is_client_error() || status == StatusCode::CREATED,
        "{status}: {body}"
    );
    let (status, body) = app
        .post_json(
            "/api/choices",
            &json!({"title": "t", "source": "s\u{0}rc", "mode": "timer"}),
        )
        .await;
    assert!(
        status.is_client_error() || status == StatusCode::CREATED,
        "{status}: {body}"
    );
    let id = id_of(&app.create_yes_no(60.0).await);
    for path in [
        "/api/choices/a%00b".to_string(),
        "/api/choices/a%00b/wait?timeout=0".to_string(),
        "/api/status?since=0%00".to_string(),
        format!("/api/choices/{id}%00"),
    ] {
        let (status, _) = app.get_json(&path).await;
        assert!(status.is_client_error(), "GET {path}: {status}");
    }
    let (status, _) = app
        .command("a%00b", "submit", json!({"selection": ["yes"]}))
        .await;
    assert!(status.is_client_error(), "{status}");
    let (status, body) = app
        .command(
            &id,
            "submit",
            json!({"selection": ["yes"], "annotation": "\u{0}", "text": "\u{0}"}),
        )
        .await;
    assert!(
        status.is_client_error() || status == StatusCode::OK,
        "{status}: {body}"
    );
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

/// Property test: random bytes, random JSON and random forms, with any content type, at every
/// command and create route. Never a 5xx; a refused request changes nothing, an accepted one
/// makes exactly one change.
mod properties {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use reqwest::StatusCode;
    use serde_json::{Value, json};

    use super::ACTIONS;
    use crate::helpers::{TestApp, id_of};
    use choiceboard::http::limits::Limits;

    /// Field names the parsers know, so random bodies often reach the interesting paths.
    const FIELDS: &[&str] = &[
        "title",
        "prompt",
        "mode",
        "options",
        "id",
        "label",
        "default_selection",
        "on_timeout",
        "timeout_seconds",
        "min_selections",
        "max_selections",
        "placeholder",
        "source",
        "start_paused",
        "selection",
        "text",
        "annotation",
        "option_annotations",
        "seconds",
        "add",
        "minutes",
        "start",
        "note.yes",
        "type",
    ];

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => proptest::sample::select(FIELDS).prop_map(str::to_string),
            1 => any::<String>(),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            proptest::sample::select(
                &[
                    "yes", "no", "single", "multi", "text", "timer", "cancel", ""
                ][..]
            )
            .prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key(), inner), 0..6)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    fn form() -> impl Strategy<Value = Vec<u8>> {
        let value = prop_oneof![
            any::<String>(),
            any::<f64>().prop_map(|f| f.to_string()),
            proptest::sample::select(&["yes", "no", "inf", "-0", "1e400", "NaN", ""][..])
                .prop_map(str::to_string),
        ];
        proptest::collection::vec((key(), value), 0..8).prop_map(|pairs| {
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into_bytes()
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2048),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::vec((key(), json_value()), 0..8).prop_map(|p| Value::Object(
                p.into_iter().collect()
            )
            .to_string()
            .into_bytes()),
            form(),
        ]
    }

    fn content_type() -> impl Strategy<Value = Option<&'static str>> {
        proptest::option::of(proptest::sample::select(
            &[
                "application/json",
                "application/x-www-form-urlencoded",
                "application/octet-stream",
                "text/plain; charset=utf-8",
                "application/json; charset=x-nonsense",
            ][..],
        ))
    }

    #[test]
    fn random_bodies_at_every_command_and_create_route_never_get_a_5xx_and_change_nothing_when_refused()
     {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let app = runtime.block_on(TestApp::spawn_with(|c| c.limits = Limits::unlimited()));
        let mut runner = TestRunner::new(Config {
            cases: 600,
            failure_persistence: None,
            ..Config::default()
        });
        let routes = proptest::sample::select(
            ["create", "timers"]
                .into_iter()
                .chain(ACTIONS)
                .collect::<Vec<_>>(),
        );
        let accepted = std::cell::Cell::new(0);
        runner
            .run(
                &(routes, body(), content_type(), any::<bool>()),
                |(route, body, content_type, htmx)| {
                    runtime.block_on(async {
                        let id = id_of(&app.create_yes_no(600.0).await);
                        let path = match route {
                            "create" => "/api/choices".to_string(),
                            "timers" => "/timers".to_string(),
                            action => format!("/choice/{id}/{action}"),
                        };
                        let mut request = app.client.post(app.url(&path)).body(body.clone());
                        if let Some(content_type) = content_type {
                            request = request.header("content-type", content_type);
                        }
                        if htmx {
                            request = request.header("hx-request", "true");
                        }
                        let r = request.send().await.unwrap();
                        let status = r.status();
                        prop_assert!(
                            status.as_u16() < 500,
                            "{path} gave {status} for {:?}",
                            String::from_utf8_lossy(&body)
                        );
                        let c = app.choice(&id).await;
                        let changed = c["version"] != json!(1);
                        if route == "create" || route == "timers" {
                            prop_assert!(!changed);
                        } else if status.is_success() || status == StatusCode::SEE_OTHER {
                            accepted.set(accepted.get() + 1);
                            prop_assert_eq!(
                                &c["version"],
                                &json!(2),
                                "{} accepted: one change",
                                path
                            );
                        } else {
                            prop_assert!(
                                !changed,
                                "{path} refused with {status} but changed the choice"
                            );
                            prop_assert_eq!(&c["status"], &json!("pending"));
                        }
                        Ok(())
                    })
                },
            )
            .unwrap();
        println!(
            "600 random bodies: {} commands were well-formed enough to be accepted; no 5xx",
            accepted.get()
        );
        runtime.block_on(async {
            assert_eq!(app.get_json("/healthz").await.0, StatusCode::OK);
        });
    }
}

#[tokio::test]
async fn an_id_that_cannot_be_decoded_is_a_404_in_our_error_format() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/choices/%FF",
        "/api/choices/%FF/wait",
        "/choice/%FF/events",
        "/ws/%FF",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    let (status, body) = app
        .command("%FF", "submit", json!({"selection": ["yes"]}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let r = app.get_with("/choice/%FF", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
