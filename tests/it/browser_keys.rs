//! What a browser holds for one Web Push subscription (its key pair and authentication secret),
//! and how it decrypts a push with them (RFC 8291), written here rather than taken from the
//! server's code. Used by `webpush.rs`, `openapi.rs` and the Chromium push test
//! (`tests/components/browser/push.rs`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use serde_json::{Value, json};

/// What a browser holds for one subscription: its key pair and its authentication secret.
pub struct BrowserKeys {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl BrowserKeys {
    pub fn new() -> BrowserKeys {
        let mut auth = [0u8; 16];
        getrandom::fill(&mut auth).unwrap();
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).unwrap();
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                return BrowserKeys { secret, auth };
            }
        }
    }

    fn public(&self) -> Vec<u8> {
        self.secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// `PushSubscription.toJSON()` for `endpoint`.
    pub fn subscription(&self, endpoint: &str) -> Value {
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {"p256dh": BASE64URL.encode(self.public()), "auth": BASE64URL.encode(self.auth)},
        })
    }

    /// RFC 8291 §3-4 and RFC 8188, as a browser decrypts an `aes128gcm` push of one record.
    pub fn decrypt(&self, body: &[u8]) -> Value {
        use aes_gcm::aead::{Aead, KeyInit};
        type Hkdf = hkdf::Hkdf<sha2::Sha256>;
        let (salt, rest) = body.split_at(16);
        let record_size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let key_id_len = rest[4] as usize;
        let (server_public, ciphertext) = rest[5..].split_at(key_id_len);
        assert_eq!(
            key_id_len, 65,
            "the key id is the server's ephemeral public key"
        );
        assert!(ciphertext.len() <= record_size, "one record");
        let server_key = p256::PublicKey::from_sec1_bytes(server_public).unwrap();
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), server_key.as_affine());

        let mut key_info = b"WebPush: info\0".to_vec();
        key_info.extend(self.public());
        key_info.extend(server_public);
        let mut ikm = [0u8; 32];
        Hkdf::new(Some(&self.auth), shared.raw_secret_bytes())
            .expand(&key_info, &mut ikm)
            .unwrap();
        let prk = Hkdf::new(Some(salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .unwrap();
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .unwrap();
        let mut plain = aes_gcm::Aes128Gcm::new_from_slice(&cek)
            .unwrap()
            .decrypt(&nonce.into(), ciphertext)
            .expect("the push decrypts with the browser's keys");
        // The last record ends with the delimiter 0x02, then any padding zeros.
        while plain.last() == Some(&0) {
            plain.pop();
        }
        assert_eq!(plain.pop(), Some(2), "the last record's delimiter");
        serde_json::from_slice(&plain).expect("the payload is JSON")
    }
}
