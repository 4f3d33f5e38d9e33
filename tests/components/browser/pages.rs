//! The browser scenarios, one test each.

use std::time::Duration;

use serde_json::json;

use super::{Page, screenshot_path, with_browser};
use crate::helpers::{CLOSED_TAB_GONE_WITHIN, SseClient, TestApp, id_of};
use crate::{Component, Test};

/// This module's tests, in the order they are listed: each needs Chromium.
pub fn tests() -> Vec<Test> {
    trials!(
        Component::Chromium,
        [
            a_choice_pages_countdown_decreases_by_about_one_a_second,
            a_timeout_change_on_one_page_shows_on_the_other_within_a_second,
            submitting_on_one_page_resolves_the_choice_and_the_other_page_shows_it_and_stops_listening,
            the_dashboard_shows_a_new_choice_within_a_second_and_drops_it_once_answered,
            with_javascript_off_choosing_and_submitting_works_through_the_303,
            a_bad_action_shows_a_readable_error_on_the_page,
            ten_tabs_and_the_dashboard_the_visible_tab_is_live_and_any_other_is_current_within_a_second,
            markup_in_titles_prompts_and_options_runs_nothing_and_shows_as_text,
            a_choice_page_looks_right_on_a_desktop_and_a_phone,
            two_pages_on_a_timer_one_pauses_and_the_other_shows_paused_with_the_same_value,
            the_dashboard_shows_the_activity_feed_and_its_filter_works,
            an_unsent_draft_survives_a_refresh,
            the_dashboard_remembers_manual_mode_and_refreshes_on_demand,
            a_hidden_tab_notifies_when_ten_seconds_remain_and_when_time_is_up,
            the_dashboard_is_installable_its_worker_caches_only_the_offline_page_and_offline_says_so,
            a_final_page_says_final_and_opens_no_stream_while_a_rung_timer_listens_for_its_next_round,
            a_closed_tab_stops_counting_within_about_a_second_and_a_reloaded_one_never_leaves,
            on_a_phone_the_dashboards_update_modes_stay_on_one_line,
        ]
    )
}

/// Seconds shown in `#remaining` (`m:ss` or `h:mm:ss`).
fn seconds(clock: &str) -> i64 {
    clock.split(':').fold(0, |acc, part| {
        acc * 60 + part.trim().parse::<i64>().unwrap_or(0)
    })
}

async fn a_choice_pages_countdown_decreases_by_about_one_a_second() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let id = id_of(&app.create_yes_no(120.0).await);
        let page = browser.new_page().await;
        page.goto(&app.url(&format!("/choice/{id}"))).await;
        page.wait_for(
            "document.querySelector('#badge').dataset.state === 'live'",
            Duration::from_secs(5),
        )
        .await;
        let first = seconds(&page.text("#remaining").await);
        let started = tokio::time::Instant::now();
        // Three seconds down takes about three seconds: not at once, and not stalled.
        let three_down = format!(
            "(() => {{ const t = document.querySelector('#remaining').textContent.split(':'); return +t[0] * 60 + +t[1] <= {}; }})()",
            first - 3
        );
        page.wait_for(&three_down, Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1900),
            "from {first} three seconds down in {took:?}"
        );
        page.assert_no_console_errors();
    })
    .await;
}

async fn a_timeout_change_on_one_page_shows_on_the_other_within_a_second() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let id = id_of(&app.create_yes_no(120.0).await);
        let (a, b) = (browser.new_page().await, browser.new_page().await);
        for page in [&a, &b] {
            page.goto(&app.url(&format!("/choice/{id}"))).await;
            page.wait_for("document.querySelector('#badge').dataset.state === 'live'", Duration::from_secs(5)).await;
        }
        a.click_button("+1 min").await;
        let clicked = tokio::time::Instant::now();
        b.wait_for("(() => { const t = document.querySelector('#remaining').textContent.split(':'); return +t[0] * 60 + +t[1] > 150; })()", Duration::from_secs(1)).await;
        println!("the +1 min reached the other page in {:?}", clicked.elapsed());
        // Each page, looked at, shows the server's remaining time (± 1 s), so both agree. (A
        // tab in the background may repaint its countdown only once a second.)
        for page in [&a, &b] {
            page.bring_to_front().await;
            let until = tokio::time::Instant::now() + Duration::from_secs(1);
            loop {
                let shown = seconds(&page.text("#remaining").await) as f64;
                let truth = app.choice(&id).await["remaining_seconds"].as_f64().unwrap();
                if (shown - truth).abs() <= 1.0 {
                    break;
                }
                assert!(tokio::time::Instant::now() < until, "the page shows {shown}, the server says {truth}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
    .await;
}

async fn open(page: &Page, app: &TestApp, id: &str) {
    page.goto(&app.url(&format!("/choice/{id}"))).await;
    page.wait_for(
        "document.querySelector('#badge').dataset.state === 'live'",
        Duration::from_secs(5),
    )
    .await;
}

async fn submitting_on_one_page_resolves_the_choice_and_the_other_page_shows_it_and_stops_listening()
 {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let id = id_of(&app.create_yes_no(120.0).await);
        let (a, b) = (browser.new_page().await, browser.new_page().await);
        open(&a, &app, &id).await;
        open(&b, &app, &id).await;
        b.eval("window.__closed = null; document.addEventListener('htmx:sse:close', e => window.__closed = e.detail.reason); 1").await;
        a.click("input[name=selection][value=yes]").await;
        a.click_button("Submit").await;
        b.wait_for("document.querySelector('#status').dataset.status === 'submitted'", Duration::from_secs(1)).await;
        assert!(b.text("#status").await.contains("Chosen: yes"), "{}", b.text("#status").await);
        b.wait_for("window.__closed === 'message'", Duration::from_secs(2)).await;
        a.wait_for("getComputedStyle(document.querySelector('#answer')).display === 'none'", Duration::from_secs(1)).await;
        let c = app.choice(&id).await;
        assert_eq!((c["status"].as_str(), c["result"]["via"].as_str()), (Some("submitted"), Some("web")));
        assert_eq!(c["result"]["selection"], json!(["yes"]));
    })
    .await;
}

async fn the_dashboard_shows_a_new_choice_within_a_second_and_drops_it_once_answered() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let page = browser.new_page().await;
        page.goto(&app.url("/")).await;
        page.wait_for("document.querySelector('#badge').dataset.state === 'live'", Duration::from_secs(5)).await;
        let id = id_of(&app.create(json!({"title": "Release the kraken?", "options": [{"id": "yes"}, {"id": "no"}]})).await);
        let created = tokio::time::Instant::now();
        page.wait_for(&format!("!!document.getElementById('row-{id}')"), Duration::from_secs(1)).await;
        println!("a new choice reached the dashboard in {:?}", created.elapsed());
        assert!(page.text("#active").await.contains("Release the kraken?"));
        page.wait_for(&format!("document.getElementById('left-{id}').textContent.startsWith('4:5')"), Duration::from_secs(3)).await;
        app.command(&id, "submit", json!({"selection": ["yes"]})).await;
        page.wait_for(&format!("!document.getElementById('row-{id}') && !!document.getElementById('done-{id}')"), Duration::from_secs(1)).await;
        assert!(page.text("#counts").await.contains("1 submitted"), "{}", page.text("#counts").await);
        page.set_viewport(1100, 800, false).await;
        app.create(json!({"title": "Deploy build 1234 to production?", "options": [{"id": "yes"}, {"id": "no"}], "source": "nightly-build"})).await;
        app.create(json!({"title": "Focus block", "mode": "timer", "timeout_seconds": 1500})).await;
        let paused = id_of(&app.create(json!({"title": "Which regions first?", "mode": "multi", "options": [{"id": "eu"}, {"id": "us"}, {"id": "ap"}]})).await);
        app.command(&paused, "pause", json!({})).await;
        page.wait_for("document.querySelectorAll('#active li.row').length === 3", Duration::from_secs(2)).await;
        page.screenshot(&screenshot_path("dashboard.png")).await;
        page.set_viewport(390, 844, true).await;
        page.screenshot(&screenshot_path("dashboard-phone.png")).await;
        page.assert_no_console_errors();
    })
    .await;
}

async fn with_javascript_off_choosing_and_submitting_works_through_the_303() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let id = id_of(&app.create(json!({"title": "No JS?", "mode": "multi", "options": [{"id": "a"}, {"id": "b"}, {"id": "c"}]})).await);
        let page = browser.new_page().await;
        page.call("Emulation.setScriptExecutionDisabled", json!({"value": true})).await;
        page.goto(&app.url(&format!("/choice/{id}"))).await;
        assert_eq!(page.eval("typeof htmx").await, "undefined", "no script ran");
        page.click("input[name=selection][value=a]").await;
        page.click("input[name=selection][value=c]").await;
        page.click_button("Submit").await;
        page.wait_for("document.querySelector('#status') && document.querySelector('#status').dataset.status === 'submitted'", Duration::from_secs(3)).await;
        assert!(page.eval("location.pathname").await.as_str().unwrap_or("").ends_with(&id));
        assert_eq!(app.choice(&id).await["result"]["selection"], json!(["a", "c"]));
    })
    .await;
}

async fn a_bad_action_shows_a_readable_error_on_the_page() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let id = id_of(&app.create(json!({"title": "Pick two", "mode": "multi", "max_selections": 2, "options": [{"id": "a"}, {"id": "b"}, {"id": "c"}]})).await);
        let page = browser.new_page().await;
        open(&page, &app, &id).await;
        for value in ["a", "b", "c"] {
            page.click(&format!("input[name=selection][value={value}]")).await;
        }
        page.click_button("Submit").await;
        page.wait_for("document.querySelector('#errors .error')", Duration::from_secs(2)).await;
        let error = page.text("#errors").await;
        assert!(error.contains("choose between 1 and 2 options"), "{error}");
        assert_eq!(page.eval("document.querySelector('#status').dataset.status").await, "pending");
        assert_eq!(page.eval("document.querySelectorAll('input[name=selection]:checked').length").await, 3, "the form was not clobbered");
        page.click("input[name=selection][value=c]").await;
        page.click_button("Submit").await;
        page.wait_for("document.querySelector('#status').dataset.status === 'submitted' && !document.querySelector('#errors .error')", Duration::from_secs(2)).await;
    })
    .await;
}

async fn ten_tabs_and_the_dashboard_the_visible_tab_is_live_and_any_other_is_current_within_a_second()
 {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let dashboard = browser.new_page().await;
        dashboard.goto(&app.url("/")).await;
        let mut tabs = Vec::new();
        for i in 0..10 {
            let id = id_of(&app.create_yes_no(300.0 + 60.0 * i as f64).await);
            let page = browser.new_page().await;
            page.goto(&app.url(&format!("/choice/{id}"))).await;
            tabs.push((id, page));
        }
        for (id, page) in tabs.iter().rev() {
            // Time moves on elsewhere while the tab is in the background.
            let (status, changed) = app.command(id, "timeout", json!({"add": -30})).await;
            assert_eq!(status, reqwest::StatusCode::OK, "{changed}");
            page.bring_to_front().await;
            let shown_at = tokio::time::Instant::now();
            let expected = app.choice(id).await["remaining_seconds"].as_f64().unwrap();
            page.wait_for(
                &format!("(() => {{ const t = document.querySelector('#remaining').textContent.split(':'); return Math.abs(+t[0] * 60 + +t[1] - {expected}) <= 1.5; }})()"),
                Duration::from_secs(1),
            )
            .await;
            page.wait_for("document.querySelector('#badge').dataset.state === 'live'", Duration::from_secs(2)).await;
            println!("tab {id}: current {:?} after it came to the front; visibility {}", shown_at.elapsed(), page.eval("document.visibilityState").await);
        }
        // The dashboard, in the background all along, lists all ten with their countdowns as
        // they are now, within a second of coming to the front.
        dashboard.bring_to_front().await;
        for (id, _) in &tabs {
            let expected = app.choice(id).await["remaining_seconds"].as_f64().unwrap();
            dashboard
                .wait_for(
                    &format!("(() => {{ const el = document.getElementById('left-{id}'); return !!document.getElementById('row-{id}') && !!el && Math.abs(+el.dataset.remaining - {expected}) <= 1.5; }})()"),
                    Duration::from_secs(1),
                )
                .await;
        }
        let rows = dashboard.eval("document.querySelectorAll('[id^=\"row-\"]').length").await;
        assert_eq!(rows, json!(10), "the dashboard lists the ten choices");
    })
    .await;
}

async fn markup_in_titles_prompts_and_options_runs_nothing_and_shows_as_text() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let title = "<script>window.__xss = 1</script>\"><img src=x onerror=\"window.__xss = 2\">";
        let prompt = "Hello <img src=x onerror=\"window.__xss = 3\"> <div hx-get=\"/boom\" hx-trigger=\"load\">hx</div> [link](javascript:window.__xss=4)";
        let c = app
            .create(json!({"title": title, "prompt": prompt, "source": "<b>src</b>",
                "options": [{"id": "x", "label": "<img src=x onerror=\"window.__xss = 5\">", "description": "<script>window.__xss = 6</script>"}]}))
            .await;
        let id = id_of(&c);
        let page = browser.new_page().await;
        page.call("Page.setBypassCSP", json!({"enabled": false})).await;
        open(&page, &app, &id).await;
        // Wait for a tick's fragments to have been swapped in too.
        page.eval("window.__swaps = 0; document.addEventListener('htmx:after:swap', () => window.__swaps++); 1").await;
        page.wait_for("window.__swaps >= 1", Duration::from_secs(3)).await;
        assert_eq!(page.eval("typeof window.__xss").await, "undefined");
        assert_eq!(page.text("h1").await, title);
        assert_eq!(page.eval("document.querySelectorAll('main img, main script:not([src]), [onerror]').length").await, 0);
        assert_eq!(page.eval("document.querySelectorAll('.prompt [hx-get], a[href^=javascript]').length").await, 0);
        assert!(page.text(".prompt").await.contains("<img src=x"));
        assert!(page.text(".option .label").await.contains("<img"));
        app.command(&id, "submit", json!({"selection": ["x"], "annotation": "<script>window.__xss = 7</script>"})).await;
        page.wait_for("document.querySelector('#status').dataset.status === 'submitted'", Duration::from_secs(2)).await;
        assert!(page.text("#status").await.contains("<script>"));
        let dashboard = browser.new_page().await;
        dashboard.goto(&app.url("/")).await;
        dashboard.wait_for("document.querySelector('#badge').dataset.state === 'live'", Duration::from_secs(5)).await;
        app.create(json!({"title": "<img src=x onerror=\"window.__xss = 8\">", "options": [{"id": "a"}]})).await;
        dashboard.wait_for("document.querySelectorAll('#active li.row').length === 1", Duration::from_secs(2)).await;
        assert_eq!(dashboard.eval("typeof window.__xss").await, "undefined");
        assert_eq!(dashboard.eval("document.querySelectorAll('main img').length").await, 0);
        assert!(dashboard.text("#finished").await.contains("<script>window.__xss = 1</script>"));
    })
    .await;
}

async fn a_choice_page_looks_right_on_a_desktop_and_a_phone() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let c = app
            .create(json!({
                "title": "Deploy build 1234 to production?",
                "prompt": "All **42 checks** passed. The release notes are [here](https://example.com/notes).\n\n- migrates the `orders` table\n- needs a 2 minute maintenance window",
                "options": [
                    {"id": "ship", "label": "Ship it now", "description": "Deploy to all regions", "recommended": true},
                    {"id": "canary", "label": "Canary first", "description": "5% of traffic for an hour"},
                    {"id": "hold", "label": "Hold", "description": null}
                ],
                "default_selection": ["hold"], "timeout_seconds": 300, "source": "nightly-build"
            }))
            .await;
        let id = id_of(&c);
        let page = browser.new_page().await;
        page.set_viewport(1100, 900, false).await;
        open(&page, &app, &id).await;
        page.screenshot(&screenshot_path("choice.png")).await;
        page.set_viewport(390, 844, true).await;
        page.screenshot(&screenshot_path("choice-phone.png")).await;
        let weight = page
            .eval("performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map(e => [e.name, e.transferSize, e.encodedBodySize])")
            .await;
        println!("requests: {weight}");
        let entries = weight.as_array().unwrap();
        let transferred: f64 = entries.iter().map(|e| e[1].as_f64().unwrap_or(0.0)).sum();
        // The page, its stylesheet, htmx, and our two modules (live.js, choice.js); the stream
        // comes after.
        assert_eq!(entries.len(), 5, "{weight}");
        assert!(transferred < 80.0 * 1024.0, "{transferred} bytes");
        println!("a choice page: {} requests and its stream, {transferred} bytes transferred", entries.len());
        page.assert_no_console_errors();
    })
    .await;
}

async fn two_pages_on_a_timer_one_pauses_and_the_other_shows_paused_with_the_same_value() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let id = id_of(
            &app.create(json!({"title": "Focus block", "mode": "timer", "timeout_seconds": 1500}))
                .await,
        );
        let (a, b) = (browser.new_page().await, browser.new_page().await);
        a.set_viewport(1000, 800, false).await;
        open(&a, &app, &id).await;
        open(&b, &app, &id).await;
        a.click_button("Pause").await;
        let clicked = tokio::time::Instant::now();
        b.wait_for(
            "document.querySelector('#status').dataset.status === 'paused'",
            Duration::from_secs(1),
        )
        .await;
        println!(
            "the pause reached the other page in {:?}",
            clicked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (ta, tb) = (a.text("#remaining").await, b.text("#remaining").await);
        assert_eq!(ta, tb, "the same frozen value");
        assert!(
            b.eval(
                "getComputedStyle(document.querySelector('form.when-paused')).display !== 'none'"
            )
            .await
            .as_bool()
            .unwrap()
        );
        a.screenshot(&screenshot_path("timer.png")).await;
        a.assert_no_console_errors();
    })
    .await;
}

async fn the_dashboard_shows_the_activity_feed_and_its_filter_works() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        app.create(json!({"title": "Merge the release branch?", "source": "release-bot", "options": [{"id": "yes"}, {"id": "no"}]})).await;
        app.create(json!({"title": "Retry the flaky spec?", "source": "nightly", "options": [{"id": "retry"}, {"id": "skip"}]})).await;
        let page = browser.new_page().await;
        page.set_viewport(1100, 900, false).await;
        page.goto(&app.url("/")).await;
        page.wait_for("document.querySelector('#badge').dataset.state === 'live'", Duration::from_secs(5)).await;
        for (source, kind, level, message) in [
            ("nightly", "spec_started", "info", "spec 3 of 7 started"),
            ("nightly", "spec_failed", "error", "spec 4 failed: timeout in checkout"),
            ("release-bot", "heartbeat", "info", "alive"),
            ("release-bot", "waiting", "warn", "waiting for an answer on the merge"),
        ] {
            app.post_json("/api/notes", &json!({"source": source, "kind": kind, "level": level, "message": message})).await;
        }
        page.wait_for("document.querySelectorAll('#feed .note').length === 4", Duration::from_secs(2)).await;
        assert_eq!(page.text("#feed .note .message").await, "waiting for an answer on the merge", "newest first");
        page.eval("const s = document.querySelector('#filter select[name=source]'); s.value = 'nightly'; s.dispatchEvent(new Event('change', {bubbles: true})); 1").await;
        let visible = "Array.from(document.querySelectorAll('#feed .note')).filter(n => !n.hidden).map(n => n.dataset.source + ':' + n.dataset.level).join(',')";
        assert_eq!(page.eval(visible).await, "nightly:error,nightly:info");
        assert_eq!(page.eval("Array.from(document.querySelectorAll('#active li.row')).filter(r => !r.hidden).length").await, 1);
        page.eval("const l = document.querySelector('#filter select[name=level]'); l.value = 'error'; l.dispatchEvent(new Event('change', {bubbles: true})); 1").await;
        assert_eq!(page.eval(visible).await, "nightly:error");
        // A new note arriving live is filtered too.
        app.post_json("/api/notes", &json!({"source": "release-bot", "level": "error", "message": "cannot reach the registry"})).await;
        page.wait_for("document.querySelectorAll('#feed .note').length === 5", Duration::from_secs(2)).await;
        page.wait_for(&format!("{visible} === 'nightly:error'"), Duration::from_secs(1)).await;
        assert!(page.eval("location.search").await.as_str().unwrap().contains("source=nightly"));
        page.eval("for (const n of ['source', 'level']) { const s = document.querySelector(`#filter select[name=${n}]`); s.value = ''; s.dispatchEvent(new Event('change', {bubbles: true})); } 1").await;
        page.screenshot(&screenshot_path("dashboard-activity.png")).await;
        page.assert_no_console_errors();
    })
    .await;
}

async fn an_unsent_draft_survives_a_refresh() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let id = id_of(&app.create(json!({"title": "Which?", "mode": "multi", "options": [{"id": "a"}, {"id": "b"}, {"id": "c"}]})).await);
        let page = browser.new_page().await;
        open(&page, &app, &id).await;
        page.click("input[name=selection][value=b]").await;
        page.click("input[name='note.b']").await;
        page.call("Input.insertText", json!({"text": "only after lunch"})).await;
        page.goto(&app.url(&format!("/choice/{id}"))).await;
        page.wait_for("document.querySelector('input[value=b]').checked", Duration::from_secs(2)).await;
        assert_eq!(page.eval("document.querySelector(\"input[name='note.b']\").value").await, "only after lunch");
        assert_eq!(page.eval("document.querySelectorAll('input[name=selection]:checked').length").await, 1);
    })
    .await;
}

async fn the_dashboard_remembers_manual_mode_and_refreshes_on_demand() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let page = browser.new_page().await;
        page.goto(&app.url("/")).await;
        page.wait_for("document.querySelector('#badge').dataset.state === 'live'", Duration::from_secs(5)).await;
        page.click("#modes button[data-mode=manual]").await;
        page.wait_for("!document.getElementById('stream')", Duration::from_secs(1)).await;
        page.goto(&app.url("/")).await;
        page.wait_for("document.querySelector('#modes').dataset.mode === 'manual' && !document.getElementById('stream')", Duration::from_secs(2)).await;
        let id = id_of(&app.create_yes_no(300.0).await);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(page.eval(&format!("!!document.getElementById('row-{id}')")).await, false, "manual: nothing arrives by itself");
        page.click("#refresh").await;
        page.wait_for(&format!("!!document.getElementById('row-{id}')"), Duration::from_secs(2)).await;
        page.click("#modes button[data-mode=live]").await;
        page.wait_for("document.querySelector('#badge').dataset.state === 'live'", Duration::from_secs(3)).await;
        let second = id_of(&app.create_yes_no(300.0).await);
        page.wait_for(&format!("!!document.getElementById('row-{second}')"), Duration::from_secs(1)).await;
    })
    .await;
}

async fn a_hidden_tab_notifies_when_ten_seconds_remain_and_when_time_is_up() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let id = id_of(&app.create_yes_no(12.0).await);
        let page = browser.new_page().await;
        page.call("Browser.grantPermissions", json!({"permissions": ["notifications"], "origin": app.url("")})).await;
        // Record notifications instead of showing them.
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": "window.__notes = []; window.Notification = class { constructor(title, o) { window.__notes.push(o.body); } static get permission() { return 'granted'; } static requestPermission() { return Promise.resolve('granted'); } };"}),
        )
        .await;
        open(&page, &app, &id).await;
        // Another tab in front hides this one: its stream closes, its countdown goes on.
        let other = browser.new_page().await;
        other.bring_to_front().await;
        page.wait_for("document.hidden", Duration::from_secs(2)).await;
        page.wait_for("window.__notes.includes('Less than 10 seconds left.')", Duration::from_secs(6)).await;
        page.wait_for("window.__notes.includes('Time is up.')", Duration::from_secs(14)).await;
        assert_eq!(app.choice(&id).await["status"], "timed_out");
    })
    .await;
}

async fn the_dashboard_is_installable_its_worker_caches_only_the_offline_page_and_offline_says_so()
{
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let page = browser.new_page().await;
        page.goto(&app.url("/")).await;
        page.eval("window.__scope = null; navigator.serviceWorker.ready.then(r => { window.__scope = r.scope; }); 1").await;
        page.wait_for("window.__scope !== null", Duration::from_secs(5)).await;
        assert_eq!(page.eval("window.__scope").await, json!(app.url("/")));
        page.eval("window.__manifest = null; fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json()).then(m => { window.__manifest = m; }); 1").await;
        page.wait_for("window.__manifest !== null", Duration::from_secs(3)).await;
        let manifest = page.eval("window.__manifest").await;
        assert_eq!(manifest["display"], "standalone");
        assert_eq!(manifest["start_url"], "/");
        for icon in manifest["icons"].as_array().expect("icons") {
            let src = icon["src"].as_str().expect("src");
            let r = app.client.get(app.url(src)).send().await.unwrap();
            assert_eq!(r.headers()["content-type"], "image/png", "{src}");
        }
        // The worker's cache holds the offline page and nothing else: no page, no fragment,
        // no countdown that could go stale.
        page.eval("window.__cached = null; caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k).then(c => c.keys())))).then(all => { window.__cached = all.flat().map(r => new URL(r.url).pathname); }); 1").await;
        page.wait_for("window.__cached !== null", Duration::from_secs(3)).await;
        assert_eq!(page.eval("window.__cached").await, json!(["/offline"]));
        page.assert_no_console_errors();

        // With the server gone, a navigation shows the offline page instead of the browser's error.
        let id = id_of(&app.create_yes_no(120.0).await);
        app.stop().await;
        page.goto(&format!("http://127.0.0.1:{}/choice/{id}", page_port(&page).await)).await;
        page.wait_for("document.body && document.body.textContent.includes('You are offline')", Duration::from_secs(5)).await;
        assert!(!page.text("body").await.contains("Deploy?"));
    })
    .await;
}

/// The port of the page's own origin.
async fn page_port(page: &Page) -> String {
    page.eval("location.port")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn a_final_page_says_final_and_opens_no_stream_while_a_rung_timer_listens_for_its_next_round()
{
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let id = id_of(&app.create_yes_no(120.0).await);
        app.command(&id, "submit", json!({"selection": ["yes"]}))
            .await;
        let page = browser.new_page().await;
        let requests = page.record_requests().await;
        page.goto(&app.url(&format!("/choice/{id}"))).await;
        // Past live.js's first tick, which repaints the badge, and any stream's connect.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The browser going back online does not make a final page reconnect either.
        page.eval("window.dispatchEvent(new Event('online')); 1")
            .await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let seen = requests.lock().unwrap().clone();
        assert!(
            seen.iter()
                .any(|url| url.ends_with(&format!("/choice/{id}"))),
            "{seen:?}"
        );
        assert!(
            !seen.iter().any(|url| url.contains("/events")),
            "no stream: {seen:?}"
        );
        assert_eq!(page.text("#badge").await, "Final");
        assert_eq!(
            page.eval("document.querySelector('#badge').dataset.state")
                .await,
            "closed"
        );
        let how = page
            .eval("document.querySelector('.how time').textContent")
            .await;
        assert!(how.as_str().unwrap_or("").ends_with(" UTC"), "{how}");
        page.assert_no_console_errors();

        // A rung timer may start its next round: its page listens on.
        let timer = id_of(
            &app.create(json!({"title": "Tea", "mode": "timer", "timeout_seconds": 1}))
                .await,
        );
        app.get_json(&format!("/api/choices/{timer}/wait?timeout=3"))
            .await;
        let page = browser.new_page().await;
        let requests = page.record_requests().await;
        page.goto(&app.url(&format!("/choice/{timer}"))).await;
        page.wait_for(
            "document.querySelector('#badge').dataset.state === 'live'",
            Duration::from_secs(5),
        )
        .await;
        let seen = requests.lock().unwrap().clone();
        assert!(
            seen.iter()
                .any(|url| url.ends_with(&format!("/choice/{timer}/events"))),
            "{seen:?}"
        );
        app.command(&timer, "reset", json!({})).await;
        page.wait_for(
            "document.querySelector('#status').dataset.round === '2'",
            Duration::from_secs(2),
        )
        .await;
    })
    .await;
}

async fn a_closed_tab_stops_counting_within_about_a_second_and_a_reloaded_one_never_leaves() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let id = id_of(&app.create_yes_no(120.0).await);
        let mut observer = SseClient::connect_with(
            &app.client,
            &app.events_url(&id),
            &[("cookie", "cb_viewer=observer-0123456789; cb_name=Obs")],
        )
        .await;
        let page = browser.new_page().await;
        open(&page, &app, &id).await;
        observer.until("viewers", "data-count=\"2\"", Duration::from_secs(2)).await.expect("the tab counts");
        // A reload ends the tab's stream (and sends its beacon), and comes back at once.
        let reloaded = tokio::time::Instant::now();
        page.call("Page.reload", json!({})).await;
        page.wait_for("document.readyState === 'complete' && document.querySelector('#badge').dataset.state === 'live'", Duration::from_secs(5)).await;
        println!("the reloaded page was live again in {:?}", reloaded.elapsed());
        let mut counts = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_millis(2500);
        while let Some(m) = observer.next(until.saturating_duration_since(tokio::time::Instant::now())).await {
            if m.event == "viewers" {
                counts.push(m.data);
            }
        }
        assert!(counts.iter().all(|v| !v.contains("data-count=\"1\"")), "no leave shown: {counts:?}");
        assert_eq!(app.choice(&id).await["viewers"], 2);
        page.close().await;
        let closed = tokio::time::Instant::now();
        observer.until("viewers", "data-count=\"1\"", CLOSED_TAB_GONE_WITHIN).await.expect("the closed tab stops counting");
        let took = closed.elapsed();
        println!("a closed tab stopped counting in {took:?}");
        assert!(took <= CLOSED_TAB_GONE_WITHIN, "{took:?}");
        assert_eq!(app.choice(&id).await["watchers"], json!([{"name": "Obs"}]));
    })
    .await;
}

async fn on_a_phone_the_dashboards_update_modes_stay_on_one_line() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        app.create(json!({"title": "Deploy build 1234 to production?", "source": "nightly-build", "options": [{"id": "yes"}, {"id": "no"}]})).await;
        let page = browser.new_page().await;
        for width in [360, 320] {
            page.set_viewport(width, 800, true).await;
            page.goto(&app.url("/")).await;
            page.wait_for("!document.querySelector('#modes').hidden", Duration::from_secs(2)).await;
            let tops = page
                .eval("['live', 'poll', 'manual'].map(m => Math.round(document.querySelector(`#modes button[data-mode=${m}]`).getBoundingClientRect().top))")
                .await;
            assert!(tops[0] == tops[1] && tops[1] == tops[2], "at {width} px: {tops}");
            page.screenshot(&screenshot_path(&format!("dashboard-{width}.png"))).await;
        }
        page.assert_no_console_errors();
    })
    .await;
}
