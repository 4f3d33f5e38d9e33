//! Pages and static files: the choice page and the dashboard as HTML, readable error pages,
//! HTMX fragments for commands, cached and compressed static files.

use reqwest::StatusCode;

use serde_json::json;

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
    let path = format!("/choice/{id}/pause");
    let pause = || app.post_with(&path, &[("hx-request", "true")], "");
    let r = pause().await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("id=\"status\"")
            && body.contains("data-status=\"paused\"")
            && body.contains("hx-swap-oob"),
        "{body}"
    );
    let r = pause().await;
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

/// The HTML of a choice's page.
async fn page_of(app: &TestApp, id: &str) -> String {
    let r = app.get_with(&format!("/choice/{id}"), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_final_page_says_final_opens_no_stream_and_gives_its_time_as_people_read_it() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    let open = page_of(&app, &id).await;
    assert!(open.contains("data-state=\"static\""), "{open}");
    assert!(
        open.contains("id=\"stream\"")
            && open.contains(&format!("data-leave=\"/choice/{id}/events/leave\"")),
        "an open choice streams, and its tab says when it closes"
    );
    let (_, c) = app
        .command(&id, "submit", json!({"selection": ["yes"]}))
        .await;
    let page = page_of(&app, &id).await;
    assert!(
        page.contains("<span class=\"badge\" id=\"badge\" data-state=\"closed\"><span class=\"badge-state\">Final</span>"),
        "{page}"
    );
    assert!(
        !page.contains("id=\"stream\"") && !page.contains("hx-sse:connect"),
        "a final page opens no stream: {page}"
    );
    let iso = c["resolved_at"].as_str().expect("resolved_at").to_string();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let number = |r: std::ops::Range<usize>| iso[r].parse::<usize>().unwrap();
    let readable = format!(
        "{} {} {}, {} UTC",
        number(8..10),
        MONTHS[number(5..7) - 1],
        &iso[0..4],
        &iso[11..19]
    );
    let time = format!("<time datetime=\"{iso}\">{readable}</time>");
    assert!(page.contains(&time), "{time} in {page}");
    assert_eq!(
        page.matches(&iso).count(),
        1,
        "the ISO instant only in the datetime attribute"
    );
}

#[tokio::test]
async fn a_rung_timer_keeps_its_stream_for_its_next_round_and_a_stopped_one_is_final() {
    let app = TestApp::spawn().await;
    let rung = id_of(
        &app.create(json!({"title": "Tea", "mode": "timer", "timeout_seconds": 1}))
            .await,
    );
    app.get_json(&format!("/api/choices/{rung}/wait?timeout=3"))
        .await;
    assert_eq!(app.choice(&rung).await["status"], "timed_out");
    let page = page_of(&app, &rung).await;
    assert!(
        page.contains("id=\"stream\"") && page.contains("data-state=\"static\""),
        "{page}"
    );
    let stopped = id_of(
        &app.create(json!({"title": "Tea", "mode": "timer", "timeout_seconds": 60}))
            .await,
    );
    app.command(&stopped, "cancel", json!({})).await;
    let page = page_of(&app, &stopped).await;
    assert!(
        !page.contains("id=\"stream\"") && page.contains("data-state=\"closed\""),
        "{page}"
    );
}

#[tokio::test]
async fn every_page_has_a_description() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_yes_no(60.0).await);
    for path in [
        format!("/choice/{id}"),
        "/".to_string(),
        "/choice/nope".to_string(),
        "/offline".to_string(),
    ] {
        let page = app.get_with(&path, &[]).await.text().await.unwrap();
        assert!(
            page.contains("<meta name=\"description\" content=\"choiceboard: "),
            "{path}: {page}"
        );
    }
}

#[tokio::test]
async fn the_dashboard_names_each_source_once_in_its_group() {
    let app = TestApp::spawn().await;
    for title in ["Deploy?", "Roll back?"] {
        app.create(json!({"title": title, "source": "nightly-build", "options": [{"id": "yes"}]}))
            .await;
    }
    let page = app.get_with("/", &[]).await.text().await.unwrap();
    let start = page
        .find("<ul class=\"rows\" id=\"active\"")
        .expect("the active list");
    let active = &page[start..start + page[start..].find("</ul>").unwrap()];
    assert_eq!(active.matches(">nightly-build<").count(), 1, "{active}");
    assert_eq!(active.matches("class=\"row\"").count(), 2, "{active}");
}

#[tokio::test]
async fn a_page_says_what_nobody_answering_does_when_its_marks_say_otherwise() {
    let app = TestApp::spawn().await;
    let note = |page: &str| {
        let start = page.find("id=\"if-nobody-answers\"")?;
        let text = &page[start..];
        Some(text[text.find('>')? + 1..text.find("</p>")?].to_string())
    };
    let options = json!([
        {"id": "ship", "label": "Ship it", "recommended": true},
        {"id": "hold", "label": "Hold"}
    ]);
    let differs = id_of(
        &app.create(json!({"title": "Deploy?", "options": options, "default_selection": ["hold"]}))
            .await,
    );
    assert_eq!(
        note(&page_of(&app, &differs).await).as_deref(),
        Some("<strong>Hold</strong> is chosen if nobody answers in time.")
    );
    let agrees = id_of(
        &app.create(json!({"title": "Deploy?", "options": options, "default_selection": ["ship"]}))
            .await,
    );
    assert_eq!(
        note(&page_of(&app, &agrees).await),
        None,
        "nothing to explain"
    );
    let cancels = id_of(
        &app.create(json!({"title": "Deploy?", "options": options, "default_selection": ["ship"], "on_timeout": "cancel"}))
            .await,
    );
    assert_eq!(
        note(&page_of(&app, &cancels).await).as_deref(),
        Some("Nobody answering in time cancels it.")
    );
    let unmarked = id_of(&app.create_yes_no(60.0).await);
    assert_eq!(note(&page_of(&app, &unmarked).await), None);
    let several = id_of(
        &app.create(json!({"title": "Regions?", "mode": "multi", "options": [
            {"id": "eu", "recommended": true}, {"id": "us"}, {"id": "ap"}],
            "default_selection": ["us", "ap"]}))
            .await,
    );
    assert_eq!(
        note(&page_of(&app, &several).await).as_deref(),
        Some("<strong>us</strong> and <strong>ap</strong> are chosen if nobody answers in time.")
    );
}
