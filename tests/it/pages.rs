//! Pages and static files: the choice page and the dashboard as HTML, readable error pages,
//! HTMX fragments for commands, cached and compressed static files.

use reqwest::StatusCode;

use crate::helpers::{TestApp, id_of};

#[tokio::test]
async fn pages_are_html_and_an_unknown_choice_is_a_readable_404() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let r = app.get_with(&format!("/choice/{id}"), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let page = r.text().await.unwrap();
    for needle in [
        "id=\"remaining\"",
        "role=\"timer\"",
        "data-remaining=",
        "data-deadline=",
        "id=\"status\"",
        "id=\"viewers\"",
        "<noscript>",
    ] {
        assert!(page.contains(needle), "the page has {needle}");
    }
    let r = app.get_with("/choice/nope", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("Not found."));
    let r = app
        .get_with(&format!("/choice/{id}"), &[("accept", "application/json")])
        .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["id"],
        id.as_str()
    );
    let r = app.get_with("/", &[]).await;
    assert!(r.text().await.unwrap().contains("id=\"board\""));
}

#[tokio::test]
async fn an_htmx_command_gets_fragments_and_an_htmx_error_is_retargeted_to_the_error_box() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let r = app
        .post_with(
            &format!("/choice/{id}/pause"),
            &[("hx-request", "true")],
            "",
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("id=\"status\"")
            && body.contains("data-status=\"paused\"")
            && body.contains("hx-swap-oob"),
        "{body}"
    );
    let r = app
        .post_with(
            &format!("/choice/{id}/pause"),
            &[("hx-request", "true")],
            "",
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.headers()["hx-retarget"], "#errors");
    assert!(r.text().await.unwrap().contains("already paused"));
}

#[tokio::test]
async fn static_files_are_cached_and_compressed() {
    let app = TestApp::spawn().await;
    let dashboard = app.get_with("/", &[]).await.text().await.unwrap();
    let module = dashboard
        .split('"')
        .find(|s| s.starts_with("/static/") && s.ends_with("/live.js"))
        .expect("the page loads live.js")
        .to_string();
    for path in ["/static/htmx.js", "/static/app.css", module.as_str()] {
        let r = app.get_with(path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert_eq!(r.headers()["content-encoding"], "gzip", "{path}");
    }
    // Another build's module is still served (a tab open across a deploy), but not kept.
    let r = app.get_with("/static/0ld0ld00/live.js", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let r = app.get_with("/static/0ld0ld00/nope.js", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
