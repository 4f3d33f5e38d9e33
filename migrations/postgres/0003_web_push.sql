-- Web Push: one row per browser that asked to be notified. `id` is derived from the endpoint
-- (the push service's URL for that browser), so the same device subscribing again replaces
-- its row instead of adding one.
CREATE TABLE push_subscriptions (
    id         TEXT PRIMARY KEY,
    endpoint   TEXT NOT NULL,
    p256dh     TEXT NOT NULL,
    auth       TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Secrets the server makes once and every node shares (the VAPID signing key).
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
