//! Web Push: a browser that asked to be notified ("Notify this device" on the dashboard) gets
//! the same pushes as the ntfy topics, through its own push service, even with no tab open.
//!
//! - Delivery is RFC 8030: one POST per device to the endpoint its browser gave, with `TTL`,
//!   `Urgency` and a `Topic` (the choice id), so a push service holding an undelivered push
//!   about a choice replaces it with the newer one.
//! - The payload is encrypted for the device as RFC 8291 says (`aes128gcm`), by the
//!   `web-push-native` crate.
//! - Each POST carries a VAPID `Authorization` (RFC 8292): an ES256 JWT signed by `p256`. The
//!   signing key is made once, kept in the database, and shared by every node; the browser
//!   subscribes with its public half.
//! - A device whose push service answers 404 or 410 has unsubscribed: its row is removed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use serde::Deserialize;
use sha2::Digest as _;

use crate::choice::{Rejection, invalid};
use crate::clock::{Millis, now_ms};
use crate::store::{Device, Store};

/// The name of the VAPID signing key in `server_secrets`.
const VAPID_SECRET: &str = "vapid_p256";
/// How long a VAPID token is valid (RFC 8292 allows at most 24 hours).
const TOKEN_LIFETIME_S: i64 = 12 * 3600;
/// Subscriptions made on other nodes reach this one's deliveries within this long.
const DEVICES_FRESH: Duration = Duration::from_secs(5);
const MAX_ENDPOINT: usize = 2048;

/// A browser's `PushSubscription`, as its `toJSON()` gives it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// The push service's URL for this browser: `https://`, or `http://` on a loopback host.
    endpoint: String,
    /// Accepted and ignored: a push service says when a subscription has ended.
    #[serde(rename = "expirationTime", default)]
    #[allow(dead_code)]
    expiration_time: Option<f64>,
    keys: SubscriptionKeys,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SubscriptionKeys {
    /// P-256 public key, uncompressed (65 bytes), base64url.
    p256dh: String,
    /// Authentication secret (16 bytes), base64url.
    auth: String,
}

// The row is the store's (`store::Device`); what a subscription must be is decided here.
impl Device {
    /// Checks a browser's subscription; the error names the field that is wrong.
    pub fn new(subscription: Subscription, now: Millis) -> Result<Device, Rejection> {
        let endpoint = subscription.endpoint.trim().to_string();
        if endpoint.len() > MAX_ENDPOINT {
            return Err(invalid("endpoint", "is longer than 2048 characters"));
        }
        let url = reqwest::Url::parse(&endpoint)
            .map_err(|e| invalid("endpoint", format!("is not a URL: {e}")))?;
        let host = url.host_str().unwrap_or_default();
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
            return Err(invalid(
                "endpoint",
                "must be an https:// URL (http:// only on a loopback host)",
            ));
        }
        let keys = subscription.keys;
        public_key(&keys.p256dh).ok_or_else(|| {
            invalid(
                "keys.p256dh",
                "is not a P-256 public key (65 bytes, uncompressed, base64url)",
            )
        })?;
        auth_secret(&keys.auth)
            .ok_or_else(|| invalid("keys.auth", "is not 16 bytes of base64url"))?;
        Ok(Device {
            id: Device::id_of(&endpoint),
            endpoint,
            p256dh: keys.p256dh.trim().to_string(),
            auth: keys.auth.trim().to_string(),
            created_ms: now,
        })
    }

    /// The first 16 bytes of the endpoint's SHA-256, base64url.
    fn id_of(endpoint: &str) -> String {
        BASE64URL.encode(&sha2::Sha256::digest(endpoint.as_bytes())[..16])
    }

    /// The push service's host: all that the API shows of an endpoint, which is a secret of
    /// its browser.
    pub fn push_service(&self) -> String {
        reqwest::Url::parse(&self.endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// Browsers send base64url, some with padding, some with the standard alphabet.
fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text
        .trim()
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    BASE64URL.decode(text).ok()
}

fn public_key(p256dh: &str) -> Option<p256::PublicKey> {
    let bytes = decode(p256dh)?;
    (bytes.len() == 65)
        .then(|| p256::PublicKey::from_sec1_bytes(&bytes).ok())
        .flatten()
}

fn auth_secret(auth: &str) -> Option<web_push_native::Auth> {
    let bytes: [u8; 16] = decode(auth)?.try_into().ok()?;
    Some(web_push_native::Auth::from(bytes))
}

/// One push for every device: the same JSON payload, encrypted for each.
pub struct Message {
    /// The choice id: the `Topic`, so a newer push about it replaces an undelivered one.
    pub topic: String,
    pub payload: Vec<u8>,
    /// How long the push service should try: past the deadline, a push is old news.
    pub ttl_s: u64,
    /// RFC 8030 §5.3: `high` for the minute warning, `low` once decided.
    pub urgency: &'static str,
}

pub enum Delivery {
    Delivered,
    /// The push service says this device is gone (404, 410): it has been removed.
    Gone,
    Failed(String),
}

pub struct WebPush {
    store: Store,
    signer: p256::ecdsa::SigningKey,
    /// The signing key's public half, uncompressed, base64url: `applicationServerKey`.
    public_key: String,
    /// RFC 8292's `sub`: who to contact about these pushes.
    contact: Option<String>,
    devices: Mutex<Option<(Instant, Arc<Vec<Device>>)>>,
}

impl WebPush {
    /// Reads the VAPID key, making it if this is the first start.
    pub async fn open(store: Store, contact: Option<String>) -> anyhow::Result<WebPush> {
        let made = BASE64URL.encode(random_secret_key()?.to_bytes());
        let stored = store.secret(VAPID_SECRET, &made).await?;
        let secret = decode(&stored)
            .and_then(|bytes| p256::SecretKey::from_slice(&bytes).ok())
            .ok_or_else(|| anyhow::anyhow!("the stored VAPID key is not a P-256 key"))?;
        let public_key = BASE64URL.encode(secret.public_key().to_encoded_point(false).as_bytes());
        Ok(WebPush {
            store,
            signer: p256::ecdsa::SigningKey::from(secret),
            public_key,
            contact,
            devices: Mutex::new(None),
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    pub async fn subscribe(&self, device: &Device) -> anyhow::Result<()> {
        self.store.save_device(device).await?;
        self.forget_devices();
        Ok(())
    }

    /// Whether there was such a device.
    pub async fn unsubscribe(&self, id: &str) -> anyhow::Result<bool> {
        let removed = self.store.remove_device(id).await?;
        self.forget_devices();
        Ok(removed)
    }

    /// The devices to push to; read again from the store when they may have changed.
    pub async fn devices(&self) -> anyhow::Result<Arc<Vec<Device>>> {
        if let Some((at, devices)) = &*self.devices.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < DEVICES_FRESH
        {
            return Ok(devices.clone());
        }
        let devices = Arc::new(self.store.devices().await?);
        *self.devices.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), devices.clone()));
        Ok(devices)
    }

    fn forget_devices(&self) {
        *self.devices.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Encrypts `message` for `device` and POSTs it to the device's push service.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        device: &Device,
        message: &Message,
    ) -> Delivery {
        let (Some(key), Some(auth)) = (public_key(&device.p256dh), auth_secret(&device.auth))
        else {
            return Delivery::Failed("the stored keys do not parse".into());
        };
        let body = match web_push_native::encrypt(message.payload.clone(), &key, &auth) {
            Ok(body) => body,
            Err(e) => return Delivery::Failed(format!("encryption failed: {e}")),
        };
        let Some(authorization) = self.authorization(&device.endpoint) else {
            return Delivery::Failed("the endpoint has no origin".into());
        };
        let mut request = client
            .post(&device.endpoint)
            .header("TTL", message.ttl_s)
            .header("Urgency", message.urgency)
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", authorization);
        if is_topic(&message.topic) {
            request = request.header("Topic", &message.topic);
        }
        match request.body(body).send().await {
            Ok(r) if r.status().is_success() => Delivery::Delivered,
            Ok(r) if matches!(r.status().as_u16(), 404 | 410) => {
                match self.unsubscribe(&device.id).await {
                    Ok(_) => {
                        tracing::info!(device = %device.id, "a push service says a device has unsubscribed; removed it")
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "a device that has unsubscribed could not be removed")
                    }
                }
                Delivery::Gone
            }
            Ok(r) => Delivery::Failed(format!("status {}", r.status())),
            Err(e) => Delivery::Failed(e.to_string()),
        }
    }

    /// RFC 8292 §3: `vapid t=JWT, k=PUBLIC KEY`, the JWT naming the endpoint's origin.
    fn authorization(&self, endpoint: &str) -> Option<String> {
        let origin = reqwest::Url::parse(endpoint).ok()?.origin();
        if !origin.is_tuple() {
            return None;
        }
        let mut claims = serde_json::json!({
            "aud": origin.ascii_serialization(),
            "exp": now_ms() / 1000 + TOKEN_LIFETIME_S,
        });
        if let Some(contact) = &self.contact {
            claims["sub"] = contact.as_str().into();
        }
        let signed = format!(
            "{}.{}",
            BASE64URL.encode(br#"{"typ":"JWT","alg":"ES256"}"#),
            BASE64URL.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature = self.signer.sign(signed.as_bytes());
        Some(format!(
            "vapid t={signed}.{}, k={}",
            BASE64URL.encode(signature.to_bytes()),
            self.public_key
        ))
    }
}

/// RFC 8030 §5.4: at most 32 characters of the base64url alphabet.
fn is_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 32
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new P-256 key from the system's randomness (a random 32 bytes is a valid scalar but for
/// a chance of about 2⁻³²: draw again then).
fn random_secret_key() -> anyhow::Result<p256::SecretKey> {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
        if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(endpoint: &str, p256dh: &str, auth: &str) -> Subscription {
        serde_json::from_value(serde_json::json!({
            "endpoint": endpoint, "expirationTime": null, "keys": {"p256dh": p256dh, "auth": auth}
        }))
        .expect("a subscription")
    }

    const P256DH: &str =
        "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY";
    const AUTH: &str = "_ordMnz7uTCmrpBTeUV4Bw";

    fn field_of(result: Result<Device, Rejection>) -> String {
        match result {
            Err(Rejection::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_subscription_is_checked_field_by_field() {
        let ok = Device::new(subscription("https://push.example/abc", P256DH, AUTH), 5)
            .expect("a good subscription");
        assert_eq!(ok.push_service(), "push.example");
        assert_eq!(ok.id.len(), 22);
        assert_eq!(
            ok.id,
            Device::new(subscription("https://push.example/abc", P256DH, AUTH), 9)
                .expect("again")
                .id,
            "one device, one id"
        );
        for (endpoint, p256dh, auth, field) in [
            ("not a url", P256DH, AUTH, "endpoint"),
            ("http://push.example/abc", P256DH, AUTH, "endpoint"),
            ("ftp://push.example/abc", P256DH, AUTH, "endpoint"),
            ("https://push.example/abc", "AAAA", AUTH, "keys.p256dh"),
            (
                "https://push.example/abc",
                &P256DH.replace('B', "C"),
                AUTH,
                "keys.p256dh",
            ),
            (
                "https://push.example/abc",
                P256DH,
                "_ordMnz7uTCmrpBTeUV4",
                "keys.auth",
            ),
            ("https://push.example/abc", P256DH, "*", "keys.auth"),
        ] {
            assert_eq!(
                field_of(Device::new(subscription(endpoint, p256dh, auth), 0)),
                field,
                "{endpoint} {p256dh} {auth}"
            );
        }
        assert!(Device::new(subscription("http://127.0.0.1:9/x", P256DH, AUTH), 0).is_ok());
        assert!(Device::new(subscription("http://[::1]:9/x", P256DH, AUTH), 0).is_ok());
    }

    #[test]
    fn topics_are_short_base64url() {
        assert!(is_topic("AbC-_09"));
        assert!(!is_topic(""));
        assert!(!is_topic("a b"));
        assert!(!is_topic(&"a".repeat(33)));
    }
}
