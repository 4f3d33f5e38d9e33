//! Signing in to the dashboard in a real browser: the token once, then the HttpOnly,
//! SameSite=Strict cookie carries the page, its fragments and its live stream.

use std::time::Duration;

use serde_json::{Value, json};

use super::with_browser;
use crate::helpers::{TestApp, id_of};
use crate::{Component, Test};

/// This module's tests, in the order they are listed: each needs Chromium.
pub fn tests() -> Vec<Test> {
    trials!(
        Component::Chromium,
        [the_dashboard_asks_for_the_token_once_then_goes_live_on_the_cookie,]
    )
}

const TOKEN: &str = "browser-token-123";

async fn the_dashboard_asks_for_the_token_once_then_goes_live_on_the_cookie() {
    with_browser(|browser| async move {
        let app = TestApp::spawn_with(|c| c.token = Some(TOKEN.into())).await;
        let page = browser.new_page().await;
        page.goto(&app.url("/")).await;
        page.wait_for("document.querySelector('#login')", Duration::from_secs(5)).await;
        page.eval(&format!("document.querySelector('input[name=token]').value = {}", json!(TOKEN))).await;
        page.click_button("Open the dashboard").await;
        page.wait_for(
            "document.querySelector('#badge') && document.querySelector('#badge').dataset.state === 'live'",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(page.eval("location.pathname").await, "/");
        // Scripts cannot read the cookie.
        assert_eq!(page.eval("document.cookie.includes('cb_session')").await, false);
        // The live stream (an EventSource on the cookie) brings a new choice at once.
        let r = app
            .client
            .post(app.url("/api/choices"))
            .bearer_auth(TOKEN)
            .json(&json!({"title": "Seen live?", "options": [{"id": "a"}]}))
            .send()
            .await
            .unwrap();
        let id = id_of(&r.json::<Value>().await.unwrap());
        page.wait_for(&format!("document.getElementById('row-{id}')"), Duration::from_secs(2)).await;
        // Coming back needs no second sign-in.
        page.goto(&app.url("/")).await;
        page.wait_for("document.querySelector('#board')", Duration::from_secs(5)).await;
        // Only the first, unsigned load was refused; no CSP violation, no script error.
        let errors: Vec<String> = page
            .console_errors()
            .into_iter()
            .filter(|e| !e.contains("status of 401"))
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    })
    .await;
}
