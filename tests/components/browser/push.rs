//! Web Push in Chromium: the dashboard's "Notify this device" button, and the service worker
//! showing a push and answering from its buttons.
//!
//! Headless Chromium has no push service (`pushManager.subscribe` fails: there is no Google
//! account or network behind it). So the first test checks that the failure is said plainly;
//! the second stands in for that one piece only: `subscribe()` returns a subscription whose
//! endpoint is a local push service holding the keys, and the push that service receives is
//! decrypted there and handed to the real worker with `ServiceWorker.deliverPushMessage`.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Browser, Page, screenshot_path, with_browser};
use crate::browser_keys::BrowserKeys;
use crate::helpers::{TestApp, id_of};
use crate::receiver::{pushes_matching, receiver};
use crate::{Component, Test};

/// This module's tests, in the order they are listed: each needs Chromium.
pub fn tests() -> Vec<Test> {
    trials!(
        Component::Chromium,
        [
            without_a_push_service_the_button_says_why_and_nothing_is_stored,
            a_subscribed_phone_shows_the_push_with_its_buttons_and_a_tap_answers,
        ]
    )
}

/// The dashboard at phone width, notifications allowed, after `init_script` (if any) runs
/// in every document of the tab.
async fn dashboard(browser: &Browser, app: &TestApp, init_script: Option<String>) -> Page {
    let page = browser.new_page().await;
    if let Some(source) = init_script {
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": source}),
        )
        .await;
    }
    page.call(
        "Browser.grantPermissions",
        json!({"permissions": ["notifications"], "origin": app.url("")}),
    )
    .await;
    page.set_viewport(390, 844, true).await;
    page.goto(&app.url("/")).await;
    page.wait_for(
        "!document.getElementById('push').hidden",
        Duration::from_secs(5),
    )
    .await;
    page
}

async fn without_a_push_service_the_button_says_why_and_nothing_is_stored() {
    with_browser(|browser| async move {
        let app = TestApp::spawn().await;
        let page = dashboard(&browser, &app, None).await;
        assert_eq!(page.text("#push-device").await, "Notify this device");
        page.click("#push-device").await;
        let said = page
            .wait_for(
                "document.getElementById('push-status').textContent",
                Duration::from_secs(10),
            )
            .await;
        println!("the button said: {said}");
        assert!(
            said.as_str()
                .unwrap()
                .starts_with("Not notified: this browser's push service did not answer"),
            "{said}"
        );
        assert_eq!(page.text("#push-device").await, "Notify this device");
        let (_, list) = app.get_json("/api/push/subscriptions").await;
        assert_eq!(list["devices"], json!([]));
        page.assert_no_console_errors();
    })
    .await;
}

async fn a_subscribed_phone_shows_the_push_with_its_buttons_and_a_tap_answers() {
    with_browser(|browser| async move {
        let (service, got) = receiver(201, Duration::ZERO).await;
        let app = TestApp::spawn().await;
        let keys = BrowserKeys::new();
        let subscription = keys.subscription(&format!("{service}/phone"));
        // The one stand-in: what the browser's push service would return.
        let stand_in = format!(
            "(() => {{ let current = null; const made = {{ endpoint: {endpoint}, toJSON: () => ({json}), unsubscribe: () => {{ current = null; return Promise.resolve(true); }} }};\
             PushManager.prototype.subscribe = function (o) {{ window.__subscribedWith = o; current = made; return Promise.resolve(made); }};\
             PushManager.prototype.getSubscription = function () {{ return Promise.resolve(current); }}; }})()",
            endpoint = subscription["endpoint"],
            json = subscription
        );
        let page = dashboard(&browser, &app, Some(stand_in)).await;
        page.click("#push-device").await;
        page.wait_for("document.getElementById('push-device').getAttribute('aria-pressed') === 'true'", Duration::from_secs(5)).await;
        assert_eq!(page.text("#push-status").await, "This device will be notified.");
        let (_, key) = app.get_json("/api/push/key").await;
        let used = page
            .eval("btoa(String.fromCharCode(...new Uint8Array(window.__subscribedWith.applicationServerKey))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '')")
            .await;
        assert_eq!(used, key["public_key"], "subscribed with the server's VAPID key");
        assert_eq!(page.eval("window.__subscribedWith.userVisibleOnly").await, json!(true));
        let (_, list) = app.get_json("/api/push/subscriptions").await;
        assert_eq!(list["devices"].as_array().map(Vec::len), Some(1), "{list}");

        // A question arrives at the phone's push service, encrypted for the phone.
        let id = id_of(&app.create(json!({"title": "Deploy build 1234?", "timeout_seconds": 600,
            "options": [{"id": "yes", "label": "Ship it"}, {"id": "no", "label": "Hold"}]})).await);
        page.wait_for("document.querySelector('#board') && document.querySelector('#board').textContent.includes('Deploy build 1234?')", Duration::from_secs(3)).await;
        page.screenshot(&screenshot_path("dashboard-phone-notify.png")).await;
        let pushed = pushes_matching(&got, Duration::from_secs(3), |r| r.path == "/topic/phone").await;
        let payload = keys.decrypt(&pushed.raw);

        // The real worker shows it.
        let registration = page
            .call_then_event("ServiceWorker.enable", json!({}), "ServiceWorker.workerRegistrationUpdated", |p| {
                p["registrations"].as_array().is_some_and(|r| !r.is_empty())
            })
            .await;
        let registration_id = registration["registrations"][0]["registrationId"].clone();
        page.call(
            "ServiceWorker.deliverPushMessage",
            json!({"origin": app.url(""), "registrationId": registration_id, "data": payload.to_string()}),
        )
        .await;
        let shown = page
            .wait_for(
                "(window.__shown = window.__shown || null, navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => { window.__shown = ns.map(n => ({title: n.title, body: n.body, tag: n.tag, actions: n.actions.map(a => ({action: a.action, title: a.title})), data: n.data})); }), window.__shown && window.__shown.length && window.__shown)",
                // Starting a stopped worker on a busy two-core machine took over 5 s once in CI
                // (the PostgreSQL pass, beside the SQLite one); nothing here is about speed.
                Duration::from_secs(15),
            )
            .await;
        println!("shown: {shown}");
        let shown = &shown[0];
        assert_eq!(shown["title"], "Deploy build 1234?");
        assert_eq!(shown["tag"], id);
        assert_eq!(shown["data"]["url"], app.url(&format!("/choice/{id}")));
        assert_eq!(
            shown["actions"],
            json!([{"action": "yes", "title": "Ship it"}, {"action": "no", "title": "Hold"}])
        );
        notification_card(&browser, shown).await;

        // "Ship it", as the worker's notificationclick runs it.
        let worker = browser.attach_worker("/sw.js").await;
        worker
            .eval("self.registration.getNotifications().then(ns => answer(ns[0], 'yes')).then(() => true)")
            .await;
        let choice = app.choice(&id).await;
        assert_eq!(choice["status"], "submitted");
        assert_eq!(choice["result"]["selection"], json!(["yes"]));
        assert_eq!(choice["result"]["via"], "push");
        // A second tap (the other button, later): the notification says why nothing happened.
        worker
            .eval("self.registration.getNotifications().then(ns => answer(ns[0], 'no')).then(() => true)")
            .await;
        let why = worker
            .wait_for("(self.registration.getNotifications().then(ns => { self.__why = ns.length ? ns[0].body : ''; }), self.__why)", Duration::from_secs(3))
            .await;
        println!("after a second tap: {why}");
        assert_eq!(why, "the choice is already submitted, cancelled or timed out", "the server's 409, word for word");
        worker.assert_no_console_errors();

        // "Stop notifying this device" removes it from the server too.
        page.click("#push-device").await;
        page.wait_for("document.getElementById('push-device').getAttribute('aria-pressed') === 'false'", Duration::from_secs(5)).await;
        assert_eq!(page.text("#push-status").await, "This device will no longer be notified.");
        let (_, list) = app.get_json("/api/push/subscriptions").await;
        assert_eq!(list["devices"], json!([]));
        page.assert_no_console_errors();
    })
    .await;
}

/// Draws what the worker handed to the notification system, as a phone would show it, and
/// saves it (the system's own notification is not part of a headless page).
async fn notification_card(browser: &Browser, shown: &Value) {
    let card = browser.new_page().await;
    card.set_viewport(390, 220, false).await;
    card.goto("about:blank#card").await;
    let script = format!(
        "(() => {{ const n = {shown}; document.body.style = 'margin:0;font:15px system-ui;background:#222;padding:16px';\
         const box = document.createElement('div'); box.style = 'background:#fff;border-radius:14px;padding:12px 14px';\
         const head = document.createElement('div'); head.style = 'color:#666;font-size:12px'; head.textContent = 'choiceboard · now';\
         const title = document.createElement('div'); title.style = 'font-weight:600;margin:4px 0'; title.textContent = n.title;\
         const body = document.createElement('div'); body.style = 'color:#333;word-break:break-all'; body.textContent = n.body;\
         const row = document.createElement('div'); row.style = 'display:flex;gap:18px;margin-top:10px;color:#1a5fd0;font-weight:600';\
         for (const a of n.actions) {{ const b = document.createElement('span'); b.textContent = a.title.toUpperCase(); row.append(b); }}\
         box.append(head, title, body, row); document.body.append(box); return true; }})()"
    );
    card.eval(&script).await;
    card.screenshot(&screenshot_path("web-push-notification.png"))
        .await;
}
