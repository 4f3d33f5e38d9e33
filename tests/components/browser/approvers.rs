//! Approvers in real pages: two approvers vote by clicking on their own links, and a third
//! page, without a key, watches the votes arrive and then the result.

use std::time::Duration;

use serde_json::json;

use super::{Page, screenshot_path, with_browser};
use crate::helpers::id_of;
use crate::{Component, Test};

/// This module's tests, in the order they are listed: each needs Chromium.
pub fn tests() -> Vec<Test> {
    trials!(
        Component::Chromium,
        [two_approvers_vote_on_their_links_and_a_watcher_sees_each_vote_then_the_result,]
    )
}

async fn open(page: &Page, url: &str) {
    page.goto(url).await;
    page.wait_for(
        "document.querySelector('#badge').dataset.state === 'live'",
        Duration::from_secs(5),
    )
    .await;
}

async fn two_approvers_vote_on_their_links_and_a_watcher_sees_each_vote_then_the_result() {
    with_browser(|browser| async move {
        let app = crate::helpers::TestApp::spawn().await;
        let created = app
            .create(json!({
                "title": "Deploy build 1234?",
                "options": [{"id": "yes", "label": "Ship it"}, {"id": "no", "label": "Hold"}],
                "approvers": ["ana", "bo", "cy"],
                "quorum": 2,
                "timeout_seconds": 120,
            }))
            .await;
        let id = id_of(&created);
        let link = |name: &str| created["approver_links"][name].as_str().expect("a link").to_string();
        let (ana, bo, watcher) = (browser.new_page().await, browser.new_page().await, browser.new_page().await);
        open(&ana, &link("ana")).await;
        open(&bo, &link("bo")).await;
        open(&watcher, &app.url(&format!("/choice/{id}"))).await;

        // Without a key the page cannot vote, and says whose votes are needed.
        assert_eq!(watcher.eval("document.querySelector('#answer') === null").await, true);
        let ballot = watcher.text("#ballot").await;
        assert!(ballot.contains("ana") && ballot.contains("bo") && ballot.contains("cy"), "{ballot}");
        assert!(watcher.text("#votes").await.contains("2 of 3 needed"));
        assert!(ana.text("#answer legend").await.contains("Your vote, ana"));

        ana.click("#answer input[name=selection][value=yes]").await;
        ana.click_button("Vote").await;
        watcher
            .wait_for("document.querySelector('#votes li[data-approver=ana] [data-voted]')?.textContent === 'Ship it'", Duration::from_secs(1))
            .await;
        assert_eq!(app.choice(&id).await["status"], "pending");
        watcher.screenshot(&screenshot_path("approvers-one-vote.png")).await;

        bo.click("#answer input[name=selection][value=yes]").await;
        bo.click_button("Vote").await;
        watcher
            .wait_for("document.querySelector('#status').dataset.status === 'submitted'", Duration::from_secs(1))
            .await;
        let status = watcher.text("#status").await;
        assert!(status.contains("Chosen: Ship it") && status.contains("by bo"), "{status}");
        // Each approver's page, looked at, shows it too, its form gone. (A tab in the
        // background may be left to catch up when it is shown again.)
        for page in [&ana, &bo] {
            page.bring_to_front().await;
            page.wait_for("document.querySelector('#status').dataset.status === 'submitted'", Duration::from_secs(1)).await;
            page.wait_for("getComputedStyle(document.querySelector('#answer')).display === 'none'", Duration::from_secs(1)).await;
        }
        let result = app.choice(&id).await["result"].clone();
        assert_eq!(result["by"], "bo");
        assert_eq!(result["votes"].as_array().map(Vec::len), Some(2));
        watcher.screenshot(&screenshot_path("approvers-decided.png")).await;
        for page in [&ana, &bo, &watcher] {
            page.assert_no_console_errors();
        }
    })
    .await;
}
