//! Web Push: a local push service (the receiver, holding the keys a browser would) gets each
//! push encrypted for it (RFC 8291) and signed (RFC 8292), and decrypts it here with code of
//! its own, not the server's.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser_keys::BrowserKeys;
use crate::helpers::{TestApp, code, field, id_of, now_ms};
use crate::receiver::{Received, pushes_matching, receiver};

/// Checks RFC 8292's `Authorization: vapid t=JWT, k=KEY` for a push to `origin`; returns the
/// JWT's claims.
fn verify_vapid(push: &Received, server_key: &str, origin: &str) -> Value {
    use p256::ecdsa::signature::Verifier as _;
    let header = push.header("authorization");
    let rest = header
        .strip_prefix("vapid ")
        .unwrap_or_else(|| panic!("{header}"));
    let (mut token, mut key) = ("", "");
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("t", v)) => token = v,
            Some(("k", v)) => key = v,
            _ => panic!("unexpected part {part:?} in {header}"),
        }
    }
    assert_eq!(key, server_key, "k is the key the browser subscribed with");
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let verifier =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&BASE64URL.decode(key).unwrap()).unwrap();
    let signature =
        p256::ecdsa::Signature::from_slice(&BASE64URL.decode(signature).unwrap()).unwrap();
    verifier
        .verify(signed.as_bytes(), &signature)
        .expect("the JWT is signed by the server's VAPID key");
    let (header, claims) = signed.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&BASE64URL.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let claims: Value = serde_json::from_slice(&BASE64URL.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["aud"], origin);
    let exp = claims["exp"].as_i64().unwrap();
    let now = now_ms() / 1000;
    assert!(exp > now && exp <= now + 24 * 3600, "exp {exp}, now {now}");
    claims
}

async fn server_key(app: &TestApp) -> String {
    let (status, body) = app.get_json("/api/push/key").await;
    assert_eq!(status, StatusCode::OK);
    body["public_key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_device_gets_each_push_encrypted_signed_and_answerable() {
    let (service, got) = receiver(201, Duration::ZERO).await;
    let app = TestApp::spawn_with(|c| c.push_contact = Some("mailto:ops@example.com".into())).await;
    let browser = BrowserKeys::new();
    let endpoint = format!("{service}/device-1");
    let (status, device) = app
        .post_json("/api/push/subscriptions", &browser.subscription(&endpoint))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    assert_eq!(device["push_service"], "127.0.0.1");
    let (_, list) = app.get_json("/api/push/subscriptions").await;
    assert_eq!(
        list["devices"],
        json!([device]),
        "the endpoint itself is not shown"
    );
    let key = server_key(&app).await;
    let origin = service.trim_end_matches("/topic").to_string();

    let id = id_of(
        &app.create(json!({"title": "Deploy build 1234?", "timeout_seconds": 61,
            "options": [{"id": "yes", "label": "Ship it"}, {"id": "no", "label": "Hold"}]}))
            .await,
    );
    let created = pushes_matching(&got, Duration::from_secs(3), |r| {
        r.path == "/topic/device-1"
    })
    .await;
    assert_eq!(created.method, "POST");
    assert_eq!(created.header("content-encoding"), "aes128gcm");
    assert_eq!(
        created.header("topic"),
        id,
        "a newer push about the choice replaces this one"
    );
    assert_eq!(created.header("urgency"), "normal");
    let ttl: u64 = created.header("ttl").parse().unwrap();
    assert!(
        (50..=61).contains(&ttl),
        "kept no longer than the choice waits: {ttl}"
    );
    let claims = verify_vapid(&created, &key, &origin);
    assert_eq!(claims["sub"], "mailto:ops@example.com");
    let payload = browser.decrypt(&created.raw);
    println!("decrypted: {payload}");
    let page = app.url(&format!("/choice/{id}"));
    assert_eq!(payload["title"], "Deploy build 1234?");
    assert_eq!(payload["url"], page);
    assert_eq!(payload["tag"], id);
    assert_eq!(payload["final"], false);
    assert_eq!(
        payload["actions"],
        json!([{"action": "yes", "title": "Ship it"}, {"action": "no", "title": "Hold"}])
    );
    assert_eq!(payload["answer"], format!("{page}/submit"));

    // A minute before the deadline: the same notification, now urgent.
    let warning = pushes_matching(&got, Duration::from_secs(4), |r| {
        r.header("urgency") == "high"
    })
    .await;
    assert_eq!(warning.header("topic"), id);
    let warned = browser.decrypt(&warning.raw);
    assert!(
        warned["body"]
            .as_str()
            .unwrap()
            .contains("Less than a minute left"),
        "{warned}"
    );
    assert_eq!(
        warned["actions"].as_array().map(Vec::len),
        Some(2),
        "the warning answers too"
    );

    // Tapping "Hold" posts what the service worker posts; the notification then shows the
    // result, quietly, and offers nothing more to tap.
    let tap = |option: &'static str| {
        app.client
            .post(payload["answer"].as_str().unwrap())
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("selection={option}&via=push"))
            .send()
    };
    assert_eq!(tap("no").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        tap("yes").await.unwrap().status(),
        StatusCode::CONFLICT,
        "a second tap changes nothing"
    );
    assert_eq!(app.choice(&id).await["result"]["via"], "push");
    let decided = pushes_matching(&got, Duration::from_secs(3), |r| {
        r.header("urgency") == "low"
    })
    .await;
    let decided = browser.decrypt(&decided.raw);
    assert_eq!(decided["final"], true, "{decided}");
    assert_eq!(decided["tag"], id);
    assert!(
        decided["body"].as_str().unwrap().contains("Hold"),
        "{decided}"
    );
    assert_eq!(decided["actions"], json!([]));
}

#[tokio::test]
async fn a_push_service_answering_410_removes_the_device() {
    let (service, got) = receiver(410, Duration::ZERO).await;
    let app = TestApp::spawn().await;
    let (status, _) = app
        .post_json(
            "/api/push/subscriptions",
            &BrowserKeys::new().subscription(&format!("{service}/gone")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.create_yes_no(600.0).await;
    pushes_matching(&got, Duration::from_secs(3), |r| r.path == "/topic/gone").await;
    let until = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (_, list) = app.get_json("/api/push/subscriptions").await;
        if list["devices"] == json!([]) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "still subscribed: {list}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Gone means gone: the next choice is not pushed to it again.
    let pushed = got.lock().unwrap().len();
    app.create_yes_no(600.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        got.lock().unwrap().len(),
        pushed,
        "no retries to a device that is gone"
    );
}

#[tokio::test]
async fn a_malformed_subscription_is_refused_by_name_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let good = BrowserKeys::new().subscription("https://push.example/abc");
    let with = |path: &[&str], value: Value| {
        let mut body = good.clone();
        let mut at = &mut body;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = value;
        body
    };
    for (body, wanted) in [
        (
            with(&["endpoint"], json!("http://push.example/abc")),
            "endpoint",
        ),
        (with(&["endpoint"], json!("not a url")), "endpoint"),
        (with(&["keys", "p256dh"], json!("AAAA")), "keys.p256dh"),
        (with(&["keys", "auth"], json!("c2hvcnQ")), "keys.auth"),
        // A typo is refused by name, never ignored.
        (
            with(&["endpoints"], json!("https://push.example/abc")),
            "endpoints",
        ),
        (with(&["keys", "p256"], json!("AAAA")), "keys.p256"),
    ] {
        let (status, error) = app.post_json("/api/push/subscriptions", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {error}");
        assert_eq!(field(&error), wanted, "{error}");
    }
    let (status, error) = app
        .post_json(
            "/api/push/subscriptions",
            &json!({"endpoint": "https://push.example/abc"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("keys"),
        "{error}"
    );
    let r = app
        .post_with(
            "/api/push/subscriptions",
            &[("content-type", "application/json")],
            "{not json",
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (_, list) = app.get_json("/api/push/subscriptions").await;
    assert_eq!(list["devices"], json!([]), "nothing was stored");

    // The same browser subscribing twice is one device; removing it works once.
    let (_, first) = app.post_json("/api/push/subscriptions", &good).await;
    let (status, again) = app.post_json("/api/push/subscriptions", &good).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["id"], again["id"]);
    let (_, list) = app.get_json("/api/push/subscriptions").await;
    assert_eq!(list["devices"].as_array().map(Vec::len), Some(1), "{list}");
    let remove = app.url(&format!(
        "/api/push/subscriptions/{}",
        first["id"].as_str().unwrap()
    ));
    assert_eq!(
        app.client.delete(&remove).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let r = app.client.delete(&remove).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(code(&r.json().await.unwrap()), "not_found");
}

#[tokio::test]
async fn the_vapid_key_is_made_once_and_kept_in_the_database() {
    let app = TestApp::spawn().await;
    let key = server_key(&app).await;
    let point = BASE64URL.decode(&key).unwrap();
    assert!(
        p256::PublicKey::from_sec1_bytes(&point).is_ok() && point.len() == 65,
        "{key}"
    );
    // Another server on the same database (a restart, or a second node) signs with it too.
    let other = TestApp::spawn_on(&app.database).await;
    assert_eq!(server_key(&other).await, key);
    other.stop().await;
    // A fresh database gets a key of its own.
    assert_ne!(server_key(&TestApp::spawn().await).await, key);
}
