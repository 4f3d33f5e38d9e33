//! Access: the token on the API and the dashboard, the cookie sign-in, choices open by id, the
//! refusal of a public bind, and the cross-site and host checks.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{SseClient, TestApp, code, id_of};

const TOKEN: &str = "s3cret-token-for-tests";

async fn with_token() -> TestApp {
    TestApp::spawn_with(|c| c.token = Some(TOKEN.into())).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn create_with_token(app: &TestApp) -> String {
    let r = app
        .client
        .post(app.url("/api/choices"))
        .header("authorization", &bearer(TOKEN))
        .json(&json!({"title": "Deploy?", "options": [{"id": "yes"}, {"id": "no"}], "timeout_seconds": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    id_of(&r.json::<Value>().await.unwrap())
}

#[tokio::test]
async fn api_calls_without_the_token_or_with_a_wrong_one_get_401() {
    let app = with_token().await;
    let id = create_with_token(&app).await;
    for path in [
        "/api/choices".to_string(),
        format!("/api/choices/{id}"),
        format!("/api/choices/{id}/wait?timeout=0"),
        "/api/status".into(),
        "/api/events".into(),
        "/api/openapi.json".into(),
        "/metrics".into(),
    ] {
        for auth in [None, Some("Bearer wrong"), Some("Bearer "), Some(TOKEN)] {
            let mut request = app.client.get(app.url(&path));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path} with {auth:?}");
            assert!(
                r.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer")
            );
            let body: Value = r.json().await.unwrap();
            assert_eq!(code(&body), "unauthorized", "{path}");
        }
        let r = app
            .get_with(&path, &[("authorization", &bearer(TOKEN))])
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{path} with the token");
    }
    // A create without the token creates nothing.
    let (status, body) = app
        .post_json("/api/choices", &json!({"title": "sneaky", "mode": "text"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let r = app
        .get_with(
            "/api/choices?status=all",
            &[("authorization", &bearer(TOKEN))],
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["choices"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The health check stays open for load balancers.
    assert_eq!(app.get_json("/healthz").await.0, StatusCode::OK);
}

/// Each route's guard comes from the group it is declared in: these answer without the token
/// (whatever else they say), and everything else, an unknown path included, needs it.
#[tokio::test]
async fn only_a_choice_and_public_paths_are_open() {
    let app = with_token().await;
    let open = [
        ("GET", "/choice/abc"),
        ("POST", "/choice/abc/submit"),
        ("GET", "/choice/abc/events"),
        ("POST", "/choice/abc/events/leave"),
        ("GET", "/ws/abc"),
        ("GET", "/healthz"),
        ("GET", "/static/htmx.js"),
        ("GET", "/login"),
        ("POST", "/name"),
        ("GET", "/sw.js"),
        ("GET", "/manifest.webmanifest"),
        ("GET", "/offline"),
    ];
    let guarded = [
        ("GET", "/"),
        ("POST", "/mcp"),
        ("GET", "/board"),
        ("GET", "/events"),
        ("POST", "/timers"),
        ("GET", "/api/choices"),
        ("GET", "/api/choices/abc/wait?timeout=0"),
        ("GET", "/api/events"),
        ("GET", "/api/push/subscriptions"),
        ("GET", "/ws"),
        ("GET", "/ws/"),
        ("GET", "/metrics"),
        ("GET", "/api/openapi.json"),
        ("GET", "/nope"),
        ("GET", "/choice/abc/submit/more"),
    ];
    for (open, (method, path)) in open
        .iter()
        .map(|route| (true, route))
        .chain(guarded.iter().map(|route| (false, route)))
    {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        if open {
            assert_ne!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} is open"
            );
        } else {
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} needs the token"
            );
        }
    }
}

#[tokio::test]
async fn a_choice_its_stream_its_commands_and_its_socket_need_only_its_id() {
    let app = with_token().await;
    let id = create_with_token(&app).await;
    let page = app.get_with(&format!("/choice/{id}"), &[]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let mut sse = SseClient::connect(&app.client, &app.events_url(&id), None).await;
    assert_eq!(
        sse.next(Duration::from_secs(2)).await.unwrap().event,
        "status"
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/{id}", app.addr))
        .await
        .expect("a choice's socket needs no token");
    let first = socket.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("connected"));
    let (status, body) = app
        .command(&id, "submit", json!({"selection": ["yes"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "submitted");
}

#[tokio::test]
async fn the_log_socket_needs_the_token() {
    let app = with_token().await;
    let url = format!("ws://{}/ws?since=0", app.addr);
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", bearer(TOKEN).parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .expect("with the token the log socket opens");
}

fn set_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("cb_session="))
        .map(str::to_string)
}

#[tokio::test]
async fn the_dashboard_asks_for_the_token_once_then_a_cookie_keeps_it() {
    let app = with_token().await;
    let html = "text/html,application/xhtml+xml";
    // Not signed in: the form, with where to go next.
    let r = app.get_with("/board", &[("accept", html)]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"login\""), "{page}");
    assert!(page.contains("name=\"next\" value=\"/board\""), "{page}");
    // A program gets JSON, not a form.
    let (status, body) = app.get_json("/board").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );

    // A wrong token: the form again, no cookie.
    let r = app
        .post_form("/login", &[("token", "nope"), ("next", "/")])
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r).is_none());

    // The right one: a cookie that is HttpOnly, SameSite=Strict, and not the token itself.
    let r = app
        .post_form("/login", &[("token", TOKEN), ("next", "/board")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/board");
    let cookie = set_cookie(&r).expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie must not carry the token"
    );
    let pair = cookie.split(';').next().unwrap().to_string();

    // With the cookie: the dashboard, its fragment, its stream and its form.
    for path in ["/", "/board"] {
        let r = app
            .get_with(path, &[("cookie", &pair), ("accept", html)])
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let mut sse =
        SseClient::connect_with(&app.client, &app.url("/events"), &[("cookie", &pair)]).await;
    assert!(sse.next(Duration::from_secs(2)).await.is_some());
    let r = app
        .post_with(
            "/timers",
            &[
                ("cookie", &pair),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "title=Focus&minutes=25",
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The cookie opens the API too (a signed-in browser may look at the JSON).
    let r = app.get_with("/api/choices", &[("cookie", &pair)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A forged cookie does not.
    let r = app
        .get_with("/board", &[("cookie", "cb_session=forged")])
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Signing out clears it.
    let r = app.post_with("/logout", &[("cookie", &pair)], "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&r).unwrap().contains("Max-Age=0"));
}

/// Targets a browser would follow to another host: backslashes (read as slashes), `//`, tabs
/// and newlines (dropped), absolute URLs.
const ELSEWHERE: &[&str] = &[
    "//evil.example/",
    "///evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
];

#[tokio::test]
async fn sign_in_never_sends_the_browser_to_another_site() {
    let app = with_token().await;
    for next in ELSEWHERE {
        let r = app
            .post_form("/login", &[("token", TOKEN), ("next", next)])
            .await;
        assert_eq!(r.headers()["location"], "/", "{next:?}");
    }
}

#[tokio::test]
async fn naming_yourself_never_sends_the_browser_to_another_site() {
    let app = TestApp::spawn().await;
    for back in ELSEWHERE {
        let r = app
            .post_form("/name", &[("name", "x"), ("back", back)])
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{back:?}");
        assert_eq!(r.headers()["location"], "/", "{back:?}");
    }
    // Encoded, a slash or backslash is part of a path of ours, and stays one.
    for back in ["/choice/abc", "/%2F%2Fevil.example", "/%5Cevil.example"] {
        let r = app
            .post_form("/name", &[("name", "x"), ("back", back)])
            .await;
        assert_eq!(r.headers()["location"], *back, "{back:?}");
    }
}

#[tokio::test]
async fn a_link_from_another_site_reloads_once_to_pick_up_the_strict_cookie() {
    let app = with_token().await;
    let r = app
        .get_with(
            "/",
            &[("accept", "text/html"), ("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("http-equiv=\"refresh\" content=\"0\""),
        "{page}"
    );
    // From our own page (the reload) there is no second bounce.
    let r = app
        .get_with(
            "/",
            &[("accept", "text/html"), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert!(
        !r.text()
            .await
            .unwrap()
            .contains("http-equiv=\"refresh\" content=\"0\"")
    );
}

#[tokio::test]
async fn without_a_token_the_api_and_the_dashboard_are_open() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get_json("/api/choices").await.0, StatusCode::OK);
    let r = app.get_with("/", &[("accept", "text/html")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    // And /login just goes on.
    let r = app.get_with("/login?next=/board", &[]).await;
    assert_eq!(
        (r.status(), r.headers()["location"].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/board")
    );
}

async fn serve_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("c.db").display());
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_choiceboard"));
    command
        .args(["serve", "--database", &database])
        .args(args)
        .env_remove("CHOICEBOARD_TOKEN")
        .env_remove("CHOICEBOARD_ALLOW_PUBLIC")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(3), child.wait()).await;
    let _ = child.start_kill();
    let mut text = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text),
    )
    .await;
    (
        status.ok().and_then(|s| s.ok()).and_then(|s| s.code()),
        text,
    )
}

#[tokio::test]
async fn a_public_bind_without_a_token_is_refused_with_one_line() {
    let (status, stderr) = serve_exit(&["--bind", "0.0.0.0:0"], &[]).await;
    assert_eq!(status, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
    assert!(
        lines[0].contains("--allow-public") && lines[0].contains("--token"),
        "{stderr}"
    );
    let (status, _) = serve_exit(&["--bind", "[::]:0"], &[]).await;
    assert_eq!(status, Some(1));

    // With a token, or explicitly allowed, it serves (and is still running when we stop it).
    let (status, stderr) =
        serve_exit(&["--bind", "0.0.0.0:0"], &[("CHOICEBOARD_TOKEN", "t")]).await;
    assert_eq!(status, None, "{stderr}");
    assert!(stderr.contains("choiceboard is serving"), "{stderr}");
    let (status, stderr) = serve_exit(&["--bind", "0.0.0.0:0", "--allow-public"], &[]).await;
    assert_eq!(status, None, "{stderr}");
}

const EVIL: &str = "https://evil.example";

#[tokio::test]
async fn a_foreign_origin_is_refused_on_forms_htmx_json_and_websockets_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(600.0).await);
    let submit = app.url(&format!("/choice/{id}/submit"));
    let form = |origin: &'static str| {
        app.client
            .post(&submit)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin)
            .body("selection=yes")
    };
    // A plain form post from another site: a readable page.
    let r = form(EVIL)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("data-code=\"forbidden_origin\"")
    );
    // HTMX: a fragment aimed at the error box.
    let r = form(EVIL)
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["hx-retarget"], "#errors");
    assert!(r.text().await.unwrap().contains("forbidden_origin"));
    // JSON, and Sec-Fetch-Site alone, and an opaque origin from another site.
    let r = app
        .client
        .post(&submit)
        .header("origin", EVIL)
        .json(&json!({"selection": ["yes"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(code(&r.json().await.unwrap()), "forbidden_origin");
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "null"),
    ] {
        let r = app
            .client
            .post(&submit)
            .header(name, value)
            .json(&json!({"selection": ["yes"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    // Creates, timers, names and sign-ins too.
    for path in ["/api/choices", "/timers", "/name", "/login"] {
        let r = app.post_with(path, &[("origin", EVIL)], "title=x").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // WebSocket upgrades, on a choice and on the log.
    for path in [format!("/ws/{id}"), "/ws".to_string()] {
        let mut request = format!("ws://{}{path}", app.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("origin", EVIL.parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{path}")
            }
            other => panic!("{path}: expected 403, got {:?}", other.map(|_| ())),
        }
    }
    let c = app.choice(&id).await;
    assert_eq!(
        (c["status"].clone(), c["version"].clone()),
        (json!("pending"), json!(1))
    );
    assert_eq!(
        app.get_json("/api/choices?status=all").await.1["choices"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Our own pages pass: by Origin, by Sec-Fetch-Site, and by Sec-Fetch-Site when the
    // no-referrer policy makes the browser send `Origin: null`.
    let own = format!("http://{}", app.addr);
    let r = app
        .post_with(
            &format!("/choice/{id}/pause"),
            &[("origin", &own), ("accept", "application/json")],
            "",
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_with(
            &format!("/choice/{id}/resume"),
            &[
                ("origin", "null"),
                ("sec-fetch-site", "same-origin"),
                ("accept", "application/json"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = form("null")
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_loopback_server_answers_only_to_loopback_names() {
    // DNS rebinding: a web page whose name now points at 127.0.0.1 is still another site.
    let app = TestApp::spawn().await;
    let port = app.addr.port();
    let r = app
        .get_with("/api/choices", &[("host", &format!("evil.example:{port}"))])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "app.localhost".into(),
    ] {
        let r = app.get_with("/api/choices", &[("host", &host)]).await;
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
    // The public URL's host is ours too.
    let app =
        TestApp::spawn_with(|c| c.public_url = Some("https://board.example.com".into())).await;
    let r = app
        .get_with("/api/choices", &[("host", "board.example.com")])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_response_has_the_security_headers_and_pages_have_no_inline_script() {
    let app = TestApp::spawn_with(|c| c.token = Some("t".into())).await;
    let r = app
        .client
        .post(app.url("/api/choices"))
        .header("authorization", "Bearer t")
        .json(&json!({"title": "Headers", "options": [{"id": "a"}]}))
        .send()
        .await
        .unwrap();
    let id = id_of(&r.json().await.unwrap());
    for (path, auth) in [
        ("/".to_string(), true),
        (format!("/choice/{id}"), false),
        ("/login".into(), false),
        ("/choice/nope".into(), false),
        ("/api/choices".into(), true),
    ] {
        let mut request = app.client.get(app.url(&path)).header("accept", "text/html");
        if auth {
            request = request.header("authorization", "Bearer t");
        }
        let r = request.send().await.unwrap();
        let h = r.headers().clone();
        let csp = h["content-security-policy"].to_str().unwrap();
        for needle in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(needle), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let body = r.text().await.unwrap();
        for (at, _) in body.match_indices("<script") {
            let tag = &body[at..body[at..].find('>').map_or(body.len(), |e| at + e)];
            assert!(tag.contains(" src="), "{path}: inline script {tag}");
        }
        for bad in [
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            "hx-on",
            "javascript:",
        ] {
            assert!(!body.contains(bad), "{path} contains {bad}");
        }
    }
}

#[tokio::test]
async fn a_foreign_origin_cannot_open_the_log_socket_even_with_a_cookie_less_upgrade() {
    // The upgrade check runs before the token check: refused as foreign, not as unsigned.
    let app = TestApp::spawn_with(|c| c.token = Some("t".into())).await;
    let mut request = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    request
        .headers_mut()
        .insert("authorization", "Bearer t".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
}
