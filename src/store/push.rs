//! Web Push devices, and the server's secrets (the VAPID key).

use sqlx::Row;

use super::database::{Store, storable_id};
use crate::clock::Millis;

const DEVICES: &str =
    "SELECT id, endpoint, p256dh, auth, created_ms FROM push_subscriptions ORDER BY created_ms, id";
/// The same device again (same endpoint, so same id) replaces its keys.
const SAVE_DEVICE: &str = "INSERT INTO push_subscriptions (id, endpoint, p256dh, auth, created_ms) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth";
const REMOVE_DEVICE: &str = "DELETE FROM push_subscriptions WHERE id = $1";
/// The first node to make a secret keeps it; every other node reads that one.
const OFFER_SECRET: &str =
    "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
const SELECT_SECRET: &str = "SELECT value FROM server_secrets WHERE name = $1";

/// A browser that asked for Web Push (`crate::webpush`): where its push service takes them,
/// and its keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// Derived from the endpoint: the same browser subscribing again keeps its row.
    pub id: String,
    pub endpoint: String,
    /// The browser's P-256 public key (uncompressed point, base64url), to encrypt for it.
    pub p256dh: String,
    /// The browser's 16-byte authentication secret, base64url.
    pub auth: String,
    pub created_ms: Millis,
}

impl Store {
    /// The devices that asked for Web Push, oldest first.
    pub async fn devices(&self) -> anyhow::Result<Vec<Device>> {
        let rows = sqlx::query(DEVICES).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(Device {
                    id: row.try_get(0)?,
                    endpoint: row.try_get(1)?,
                    p256dh: row.try_get(2)?,
                    auth: row.try_get(3)?,
                    created_ms: row.try_get(4)?,
                })
            })
            .collect()
    }

    pub async fn save_device(&self, device: &Device) -> anyhow::Result<()> {
        sqlx::query(SAVE_DEVICE)
            .bind(&device.id)
            .bind(&device.endpoint)
            .bind(&device.p256dh)
            .bind(&device.auth)
            .bind(device.created_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether there was such a device.
    pub async fn remove_device(&self, id: &str) -> anyhow::Result<bool> {
        if !storable_id(id) {
            return Ok(false);
        }
        let done = sqlx::query(REMOVE_DEVICE)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The secret called `name`: `made` is stored if there is none yet, and whichever was
    /// stored first (by any node) is returned.
    pub async fn secret(&self, name: &str, made: &str) -> anyhow::Result<String> {
        sqlx::query(OFFER_SECRET)
            .bind(name)
            .bind(made)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar(SELECT_SECRET)
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }
}
