//! The store: the only module that speaks SQL. SQLite (one file, WAL, `synchronous=FULL`) by
//! default, PostgreSQL for several nodes; the same statements run on both through sqlx's `Any`
//! driver, and only the few places that differ ask which backend this is.
//!
//! Two tables hold the choices: `choices` (current state, with a `version`) and `events`
//! (append-only, global `seq`). Writes happen in a [`Batch`]: one transaction holding any
//! number of commands, which the engine's writer commits once for all of them (group commit),
//! always on the same connection (its [`Writer`]).
//! Beside them, `push_subscriptions` (the Web Push devices) and `server_secrets` (the VAPID key).
//!
//! On PostgreSQL several nodes may share the database: every commit sends one
//! `NOTIFY choiceboard, '<last seq>'`, and a [`Listener`] (one dedicated connection running
//! `LISTEN choiceboard`) tells the engine when to read the log for changes made elsewhere.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection, Executor, Row};

use crate::choice::Choice;
use crate::clock::Millis;

const SELECT_CHOICE: &str = "SELECT state FROM choices WHERE id = $1";
/// Followed by one `(…)` of 8 parameters per row.
const INSERT_CHOICES: &str = "INSERT INTO choices (id, status, deadline_ms, created_ms, resolved_ms, source, version, state) VALUES ";
/// The version check: the row changes only if nobody changed it since it was read.
const UPDATE_CHOICE: &str = "UPDATE choices SET status = $2, deadline_ms = $3, resolved_ms = $4, version = $5, state = $6 \
     WHERE id = $1 AND version = $7";
/// Followed by one `(…)` of 5 parameters per row.
const INSERT_EVENTS: &str = "INSERT INTO events (at_ms, choice_id, type, data, source) VALUES ";
/// The version check for many rows at once (SQLite): one `(…)` of 7 parameters per row
/// between head and tail: id, status, deadline, resolved, new version, state, read version.
const UPDATE_CHOICES_HEAD: &str = "UPDATE choices SET status = v.column2, deadline_ms = v.column3, \
     resolved_ms = v.column4, version = v.column5, state = v.column6 FROM (VALUES ";
const UPDATE_CHOICES_TAIL: &str =
    ") AS v WHERE choices.id = v.column1 AND choices.version = v.column7 RETURNING choices.id";
/// The longest a request or a batch waits for a database connection.
const CONNECTION_WAIT: Duration = Duration::from_secs(3);
/// Rows written by one statement at most (parameters stay far below both backends' limits).
const ROWS_PER_STATEMENT: usize = 256;
const NOTES_AFTER: &str = "SELECT seq, at_ms, choice_id, type, data FROM events \
     WHERE type = 'note' AND seq > $1 ORDER BY seq LIMIT $2";
const NOTES_OF_SOURCE_AFTER: &str = "SELECT seq, at_ms, choice_id, type, data FROM events \
     WHERE type = 'note' AND source = $3 AND seq > $1 ORDER BY seq LIMIT $2";
const RECENT_NOTES: &str = "SELECT seq, at_ms, choice_id, type, data FROM events \
     WHERE type = 'note' ORDER BY seq DESC LIMIT $1";
const LIST_ACTIVE: &str = "SELECT state FROM choices WHERE status IN ('pending', 'paused') \
     ORDER BY created_ms DESC, id LIMIT $1";
const LIST_FINAL: &str = "SELECT state FROM choices WHERE status NOT IN ('pending', 'paused') \
     ORDER BY resolved_ms DESC, id LIMIT $1";
const LIST_ALL: &str = "SELECT state FROM choices ORDER BY created_ms DESC, id LIMIT $1";
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
const PENDING_DEADLINES: &str = "SELECT id, deadline_ms FROM choices WHERE status = 'pending'";
const EVENTS_AFTER: &str =
    "SELECT seq, at_ms, choice_id, type, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";
const LAST_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM events";
/// Retention: final choices resolved before the cutoff go with their events, and notes
/// written before it. Seqs are never reused, so pollers' cursors stay valid.
const PURGE_FINAL_EVENTS: &str = "DELETE FROM events WHERE choice_id IN \
     (SELECT id FROM choices WHERE status NOT IN ('pending', 'paused') AND resolved_ms < $1)";
const PURGE_FINAL_CHOICES: &str = "DELETE FROM choices \
     WHERE status NOT IN ('pending', 'paused') AND resolved_ms < $1 RETURNING id";
const PURGE_NOTES: &str =
    "DELETE FROM events WHERE choice_id IS NULL AND type = 'note' AND at_ms < $1";
const COUNT_BY_STATUS: &str = "SELECT status, COUNT(*) FROM choices GROUP BY status";
const COUNT_RESOLVED_SINCE: &str =
    "SELECT status, COUNT(*) FROM choices WHERE resolved_ms >= $1 GROUP BY status";
/// PostgreSQL draws seqs from a sequence, and two transactions may commit them out of order: a
/// poller that has read seq 6 would then never see a 5 committed a moment later. Each batch
/// takes this transaction-scoped lock right before it draws its first seq, and holds it until
/// its commit. PostgreSQL releases a transaction's locks only after its commit is visible to
/// every new snapshot, so the next batch draws higher seqs only once all lower ones are
/// visible: events become visible strictly in seq order, and `seq > since` never skips one.
/// (Seqs of rolled-back batches leave gaps; a gap is never filled later, so skipping it is
/// right.) The lock is held only for the event inserts, the NOTIFY and the commit (rows are
/// written before it), and a group commit takes it once for all its commands.
const PG_SEQ_LOCK: &str = "SELECT pg_advisory_xact_lock(7366423891)";
const PG_NOTIFY: &str = "SELECT pg_notify('choiceboard', $1)";
/// The channel every node LISTENs on; the payload is the newest seq of the notifying commit.
const PG_CHANNEL: &str = "choiceboard";
/// A cheap round trip that proves the LISTEN connection is still alive.
const PG_PING: &str = "SELECT 1";
/// The `application_name` of the LISTEN connection, so an operator (or a test) can find it
/// in `pg_stat_activity`.
pub const LISTEN_APPLICATION_NAME: &str = "choiceboard-listen";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One entry of the event log, as pollers and streams see it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LogEvent {
    pub seq: i64,
    /// RFC 3339.
    #[serde(serialize_with = "serialize_at")]
    #[schema(value_type = String)]
    pub at: Millis,
    /// Null for a note.
    #[schema(required = true)]
    pub choice_id: Option<String>,
    /// created, timeout_changed, paused, resumed, reset, voted, submitted, cancelled,
    /// timed_out, note.
    #[serde(rename = "type")]
    pub kind: String,
    pub data: serde_json::Value,
}

fn serialize_at<S: serde::Serializer>(at: &Millis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::clock::rfc3339(*at))
}

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

/// An event about to be appended; the store gives it its seq.
pub struct NewEvent<'a> {
    pub at: Millis,
    pub choice_id: Option<&'a str>,
    /// The asking program or project, when known (notes always have one).
    pub source: Option<&'a str>,
    pub kind: &'a str,
    pub data: serde_json::Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFilter {
    Active,
    Final,
    All,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// For the writer's own connection.
    options: AnyConnectOptions,
    /// The database URL, kept on PostgreSQL to open LISTEN connections.
    listen_url: Option<std::sync::Arc<str>>,
}

impl Store {
    /// Connects, applies the backend's migrations, and returns a ready store.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            anyhow::bail!("--database must start with sqlite: or postgres://, got {url:?}");
        };
        let url = match backend {
            // Create the file on first start, as a one-file database should.
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .with_context(|| format!("bad database URL {url:?}"))?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            // Reads are served from memory; what waits here is cold reads and the dashboard.
            // Waiting long only turns overload into timeouts: answer 503 sooner.
            .acquire_timeout(CONNECTION_WAIT)
            // A ping is one more round trip to the connection's thread for every acquire. A
            // SQLite connection is a file handle, which cannot go stale the way a socket can.
            .test_before_acquire(backend != Backend::Sqlite)
            .after_connect(move |conn, _| Box::pin(prepare(conn, backend)))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the database {url:?}"))?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await,
        }
        .context("database migrations failed")?;
        let listen_url = (backend == Backend::Postgres).then(|| url.as_str().into());
        Ok(Store {
            pool,
            backend,
            options,
            listen_url,
        })
    }

    /// Whether other nodes may write to this database too (PostgreSQL), so that this node
    /// must [`listen`](Store::listen) and follow the log to learn of their changes.
    pub fn is_shared(&self) -> bool {
        self.listen_url.is_some()
    }

    /// Opens a dedicated connection that LISTENs for the commits of every node. Each call
    /// opens a new one; the caller reconnects by calling again.
    pub async fn listen(&self) -> anyhow::Result<Listener> {
        let Some(url) = self.listen_url.as_deref() else {
            anyhow::bail!("only a shared (PostgreSQL) database has LISTEN");
        };
        let options = PgConnectOptions::from_str(url)
            .context("bad database URL")?
            .application_name(LISTEN_APPLICATION_NAME);
        // A pool of one: PgListener takes its connection from a pool. We never let it
        // reconnect by itself (the engine must catch up after every reconnect), so this pool
        // is dropped with the listener.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .context("cannot open the LISTEN connection")?;
        let mut pg = PgListener::connect_with(&pool).await?;
        pg.eager_reconnect(false);
        pg.ignore_pool_close_event(true);
        pg.listen(PG_CHANNEL).await.context("LISTEN failed")?;
        Ok(Listener { pg })
    }

    /// The writer's connection for its batches, opened when the first one begins.
    pub fn writer(&self) -> Writer {
        Writer {
            options: self.options.clone(),
            backend: self.backend,
            conn: None,
            open: false,
        }
    }

    pub async fn get(&self, id: &str) -> anyhow::Result<Option<Choice>> {
        if !storable_id(id) {
            return Ok(None);
        }
        let row = sqlx::query(SELECT_CHOICE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode_choice(&r)).transpose()
    }

    /// Every pending and paused choice, for the live state at start.
    pub async fn active(&self) -> anyhow::Result<Vec<Choice>> {
        self.list(ListFilter::Active, i64::MAX).await
    }

    pub async fn list(&self, filter: ListFilter, limit: i64) -> anyhow::Result<Vec<Choice>> {
        let sql = match filter {
            ListFilter::Active => LIST_ACTIVE,
            ListFilter::Final => LIST_FINAL,
            ListFilter::All => LIST_ALL,
        };
        let rows = sqlx::query(sql).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(decode_choice).collect()
    }

    /// Every pending choice's deadline, for the scheduler at start.
    pub async fn pending_deadlines(&self) -> anyhow::Result<Vec<(String, Millis)>> {
        let rows = sqlx::query(PENDING_DEADLINES).fetch_all(&self.pool).await?;
        rows.iter()
            .filter_map(
                |r| match (r.try_get::<String, _>(0), r.try_get::<Option<i64>, _>(1)) {
                    (Ok(id), Ok(Some(deadline))) => Some(Ok((id, deadline))),
                    (Ok(_), Ok(None)) => None,
                    (Err(e), _) | (_, Err(e)) => Some(Err(e.into())),
                },
            )
            .collect()
    }

    /// Events after `since`, oldest first, at most `limit`.
    pub async fn events_after(&self, since: i64, limit: i64) -> anyhow::Result<Vec<LogEvent>> {
        let rows = sqlx::query(EVENTS_AFTER)
            .bind(since)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_event).collect()
    }

    pub async fn last_seq(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(LAST_SEQ).fetch_one(&self.pool).await?)
    }

    /// How many choices reached each final status since `since` (the dashboard's counts).
    pub async fn resolved_since(&self, since: Millis) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = sqlx::query(COUNT_RESOLVED_SINCE)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Deletes what retention lets go of (see `PURGE_*`); returns the ids of the choices
    /// deleted and the number of notes.
    pub async fn purge_before(&self, cutoff: Millis) -> anyhow::Result<(Vec<String>, u64)> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(PURGE_FINAL_EVENTS)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        let choices: Vec<String> = sqlx::query_scalar(PURGE_FINAL_CHOICES)
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
        let notes = sqlx::query(PURGE_NOTES)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((choices, notes))
    }

    /// Notes after `since`, oldest first, optionally of one source.
    pub async fn notes_after(
        &self,
        since: i64,
        source: Option<&str>,
        limit: i64,
    ) -> anyhow::Result<Vec<LogEvent>> {
        let rows = match source {
            Some(source) => sqlx::query(NOTES_OF_SOURCE_AFTER)
                .bind(since)
                .bind(limit)
                .bind(source.replace('\0', "\u{FFFD}")),
            None => sqlx::query(NOTES_AFTER).bind(since).bind(limit),
        }
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_event).collect()
    }

    /// The newest notes, newest first.
    pub async fn recent_notes(&self, limit: i64) -> anyhow::Result<Vec<LogEvent>> {
        let rows = sqlx::query(RECENT_NOTES)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_event).collect()
    }

    /// How many choices there are in each status (for `/metrics`).
    pub async fn count_by_status(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = sqlx::query(COUNT_BY_STATUS).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

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

    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query(LAST_SEQ).fetch_one(&self.pool).await?;
        Ok(())
    }
}

/// The writer's connection, the same for every batch, and none of the pool's. SQLite keeps a
/// page cache per connection and empties it whenever another connection has written since; a
/// writer taking the next connection of the pool for each batch would read its pages from the
/// file again every time. It is opened on the writer's thread, so on SQLite the thread sqlx
/// starts for it shares the writer's priority (see `engine::spawn_writer`).
pub struct Writer {
    options: AnyConnectOptions,
    backend: Backend,
    conn: Option<AnyConnection>,
    /// A batch began on `conn` and has not committed.
    open: bool,
}

impl Writer {
    pub async fn begin(&mut self) -> anyhow::Result<Batch<'_>> {
        if std::mem::take(&mut self.open) {
            // A batch that did not commit: closing its connection rolls it back.
            self.conn = None;
        }
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                // Bounded like the pool's: an unreachable or stalled server must fail this
                // batch, not hold every command behind it until TCP gives up.
                let open = async {
                    let mut conn = AnyConnection::connect_with(&self.options).await?;
                    prepare(&mut conn, self.backend).await?;
                    Ok::<_, sqlx::Error>(conn)
                };
                tokio::time::timeout(CONNECTION_WAIT, open)
                    .await
                    .context("timed out opening the writer's connection")?
                    .context("cannot open the writer's connection")?
            }
        };
        let conn = self.conn.insert(conn);
        // On SQLite BEGIN rides with the batch's first statement (see `Batch::statement`).
        let begin_pending = match self.backend {
            Backend::Sqlite => true,
            Backend::Postgres => {
                conn.execute("BEGIN").await.context("begin")?;
                false
            }
        };
        self.open = true;
        Ok(Batch {
            conn,
            open: &mut self.open,
            backend: self.backend,
            begin_pending,
            seq_locked: false,
        })
    }

    /// After a failed batch: the next one opens a new connection, in case this one broke.
    pub fn reset(&mut self) {
        self.conn = None;
        self.open = false;
    }
}

/// Sets up each new connection.
async fn prepare(conn: &mut AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        // sqlx sets neither by default. WAL lets readers run beside the writer; FULL makes
        // every commit reach the disk before it is acknowledged, so an acknowledged command
        // survives kill -9 and power loss.
        conn.execute("PRAGMA journal_mode = WAL").await?;
        conn.execute("PRAGMA synchronous = FULL").await?;
        conn.execute("PRAGMA busy_timeout = 10000").await?;
    }
    Ok(())
}

/// One write transaction: any number of commands, committed once.
///
/// The writer waits for every statement's round trip to the connection, with every command
/// of the batch, so on SQLite (where one query may hold several statements) the BEGIN goes
/// with the first statement and the COMMIT with the last: a batch of creates is one trip.
/// A batch dropped without `commit` is rolled back when `Writer::begin` closes its
/// connection.
pub struct Batch<'c> {
    conn: &'c mut AnyConnection,
    open: &'c mut bool,
    backend: Backend,
    /// SQLite: the transaction has not begun yet; the next statement begins it.
    begin_pending: bool,
    seq_locked: bool,
}

impl Batch<'_> {
    /// `sql`, begun with the transaction's BEGIN if it is the first statement on SQLite.
    fn statement(&mut self, sql: &str) -> String {
        if std::mem::take(&mut self.begin_pending) {
            format!("BEGIN; {sql}")
        } else {
            sql.to_string()
        }
    }

    /// Whether other nodes write to this database too.
    pub fn is_shared(&self) -> bool {
        self.backend == Backend::Postgres
    }

    pub async fn load(&mut self, id: &str) -> anyhow::Result<Option<Choice>> {
        if !storable_id(id) {
            return Ok(None);
        }
        let sql = self.statement(SELECT_CHOICE);
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *self.conn)
            .await?;
        row.map(|r| decode_choice(&r)).transpose()
    }

    /// Inserts new choices, all in one statement.
    pub async fn insert_all(&mut self, choices: &[&Choice]) -> anyhow::Result<()> {
        for chunk in choices.chunks(ROWS_PER_STATEMENT) {
            let sql = self.statement(&multi_row(self.backend, INSERT_CHOICES, 8, chunk.len(), ""));
            let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() <= 4);
            for choice in chunk {
                query = query
                    .bind(choice.id.as_str())
                    .bind(choice.status.as_str())
                    .bind(choice.deadline)
                    .bind(choice.created_at)
                    .bind(choice.resolved_at)
                    // The column is for queries; the exact text is in `state`. PostgreSQL's
                    // TEXT cannot hold U+0000, and one such source must not fail the batch.
                    .bind(
                        choice
                            .spec
                            .source
                            .as_deref()
                            .map(|s| s.replace('\0', "\u{FFFD}")),
                    )
                    .bind(choice.version)
                    .bind(serde_json::to_string(choice)?);
            }
            query.execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    /// Writes `choice` if the stored row is still at `read_version`; false if someone else
    /// (another node) changed it first.
    pub async fn update(&mut self, choice: &Choice, read_version: i64) -> anyhow::Result<bool> {
        Ok(self.update_all(&[(choice, read_version)]).await?.is_empty())
    }

    /// Writes each choice if its stored row is still at the version given with it (the
    /// version check); answers the ids of those that were not (another node changed them
    /// first). On SQLite one statement for all; on PostgreSQL one per row, in the order given,
    /// so that two nodes' batches lock shared rows in the same order and never deadlock.
    pub async fn update_all(&mut self, rows: &[(&Choice, i64)]) -> anyhow::Result<Vec<String>> {
        let mut stale = Vec::new();
        let per_statement = match self.backend {
            Backend::Sqlite => ROWS_PER_STATEMENT,
            Backend::Postgres => 1,
        };
        for chunk in rows.chunks(per_statement) {
            // PostgreSQL's rows, one at a time. (On SQLite a BEGIN may go first in the query,
            // and then its count of changed rows is not this statement's alone.)
            let written: Vec<String> = if let [(choice, read_version)] = chunk
                && self.backend == Backend::Postgres
            {
                let done = sqlx::query(UPDATE_CHOICE)
                    .bind(&choice.id)
                    .bind(choice.status.as_str())
                    .bind(choice.deadline)
                    .bind(choice.resolved_at)
                    .bind(choice.version)
                    .bind(serde_json::to_string(choice)?)
                    .bind(read_version)
                    .execute(&mut *self.conn)
                    .await?;
                if done.rows_affected() == 1 {
                    vec![choice.id.clone()]
                } else {
                    Vec::new()
                }
            } else {
                let sql = self.statement(&multi_row(
                    self.backend,
                    UPDATE_CHOICES_HEAD,
                    7,
                    chunk.len(),
                    UPDATE_CHOICES_TAIL,
                ));
                let mut query = sqlx::query_scalar(AssertSqlSafe(sql)).persistent(chunk.len() <= 4);
                for (choice, read_version) in chunk {
                    query = query
                        .bind(choice.id.as_str())
                        .bind(choice.status.as_str())
                        .bind(choice.deadline)
                        .bind(choice.resolved_at)
                        .bind(choice.version)
                        .bind(serde_json::to_string(choice)?)
                        .bind(*read_version);
                }
                query.fetch_all(&mut *self.conn).await?
            };
            stale.extend(
                chunk
                    .iter()
                    .filter(|(c, _)| !written.contains(&c.id))
                    .map(|(c, _)| c.id.clone()),
            );
        }
        Ok(stale)
    }

    /// Appends the batch's events, in one statement, and commits; the events get ascending
    /// seqs in the order given. On PostgreSQL it also tells the other nodes the newest seq
    /// (one NOTIFY per commit, never one per event: NOTIFY takes a global lock at commit).
    pub async fn commit(mut self, events: Vec<NewEvent<'_>>) -> anyhow::Result<Vec<LogEvent>> {
        if self.backend == Backend::Postgres && !events.is_empty() && !self.seq_locked {
            sqlx::query(PG_SEQ_LOCK).execute(&mut *self.conn).await?;
            self.seq_locked = true;
        }
        let mut appended = Vec::with_capacity(events.len());
        let chunks = events.chunks(ROWS_PER_STATEMENT).count();
        for (n, chunk) in events.chunks(ROWS_PER_STATEMENT).enumerate() {
            let mut sql = self.statement(&multi_row(
                self.backend,
                INSERT_EVENTS,
                5,
                chunk.len(),
                " RETURNING seq",
            ));
            let last = n + 1 == chunks;
            if last && self.backend == Backend::Sqlite {
                sql.push_str("; COMMIT");
            }
            let mut query = sqlx::query_scalar(AssertSqlSafe(sql)).persistent(chunk.len() <= 4);
            for event in chunk {
                query = query
                    .bind(event.at)
                    .bind(event.choice_id)
                    .bind(event.kind)
                    .bind(event.data.to_string())
                    .bind(event.source.map(|s| s.replace('\0', "\u{FFFD}")));
            }
            // Rows are numbered in the order they are inserted; RETURNING's order is not
            // promised, so the seqs are sorted back into it.
            let mut seqs: Vec<i64> = query.fetch_all(&mut *self.conn).await?;
            seqs.sort_unstable();
            anyhow::ensure!(
                seqs.len() == chunk.len(),
                "an event insert returned {} seqs for {} events",
                seqs.len(),
                chunk.len()
            );
            for (event, seq) in chunk.iter().zip(seqs) {
                appended.push(LogEvent {
                    seq,
                    at: event.at,
                    choice_id: event.choice_id.map(str::to_string),
                    kind: event.kind.to_string(),
                    data: event.data.clone(),
                });
            }
        }
        match self.backend {
            Backend::Sqlite if events.is_empty() && !self.begin_pending => {
                self.conn.execute("COMMIT").await.context("commit")?;
            }
            // Committed with the last events, or nothing was ever begun.
            Backend::Sqlite => {}
            Backend::Postgres => {
                if let Some(last) = appended.last() {
                    sqlx::query(PG_NOTIFY)
                        .bind(last.seq.to_string())
                        .execute(&mut *self.conn)
                        .await?;
                }
                self.conn.execute("COMMIT").await.context("commit")?;
            }
        }
        *self.open = false;
        Ok(appended)
    }
}

/// A LISTEN connection. Dropping it closes the connection.
pub struct Listener {
    pg: PgListener,
}

impl Listener {
    /// Waits up to `idle` for the next notification. `Ok(Some(seq))`: a commit with events up
    /// to `seq` (0 if the payload is not a number); `Ok(None)`: nothing for `idle`, and the
    /// connection answered a ping; `Err`: the connection is lost, open a new one.
    pub async fn next(&mut self, idle: Duration) -> anyhow::Result<Option<i64>> {
        // `try_recv` is cancel-safe: a message is taken off the socket only once it is whole.
        match tokio::time::timeout(idle, self.pg.try_recv()).await {
            Ok(Ok(Some(notification))) => Ok(Some(notification.payload().parse().unwrap_or(0))),
            Ok(Ok(None)) => anyhow::bail!("the LISTEN connection was closed"),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("the LISTEN connection failed")),
            Err(_) => {
                // Quiet for a while: make sure the connection is not silently dead.
                match tokio::time::timeout(idle, sqlx::query(PG_PING).execute(&mut self.pg)).await {
                    Ok(Ok(_)) => Ok(None),
                    Ok(Err(e)) => {
                        Err(anyhow::Error::new(e).context("the LISTEN connection failed"))
                    }
                    Err(_) => anyhow::bail!("the LISTEN connection did not answer a ping"),
                }
            }
        }
    }
}

/// Is this error the database being too busy to answer now (no pooled connection came free
/// in time), rather than a fault? Such errors are answered 503 with `Retry-After`.
pub fn is_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(|e| matches!(e, sqlx::Error::PoolTimedOut))
    })
}

/// `head` followed by `rows` groups of `columns` parameters, then `tail`: `… ($1, $2), ($3,
/// $4) …` on PostgreSQL, `… (?, ?), (?, ?) …` on SQLite (which would look every `$N` up by
/// name). Only our constants and parameter numbers go in; every value is bound, so the
/// statement is as safe as a literal one.
///
/// On SQLite the statement is `INSERT OR FAIL` / `UPDATE OR FAIL`. A statement that writes
/// several rows in a transaction otherwise keeps a statement journal, a copy of every page it
/// touches (spilled to a temporary file past 64 KiB), so that a failed constraint could undo
/// that one statement alone. None is needed here: a failed statement fails its whole batch,
/// and the batch's transaction is rolled back.
fn multi_row(backend: Backend, head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 6 + 8);
    let verb = ["INSERT ", "UPDATE "]
        .into_iter()
        .find_map(|verb| Some((verb, head.strip_prefix(verb)?)));
    match (backend, verb) {
        (Backend::Sqlite, Some((verb, rest))) => {
            sql.push_str(verb);
            sql.push_str("OR FAIL ");
            sql.push_str(rest);
        }
        _ => sql.push_str(head),
    }
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(row * columns + column + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// PostgreSQL's TEXT cannot hold U+0000 (the query would fail), and no stored id has one: an
/// id with one names no choice, on either backend.
fn storable_id(id: &str) -> bool {
    !id.contains('\0')
}

fn decode_choice(row: &sqlx::any::AnyRow) -> anyhow::Result<Choice> {
    let state: String = row.try_get(0)?;
    serde_json::from_str(&state).context("a stored choice does not parse")
}

fn decode_event(row: &sqlx::any::AnyRow) -> anyhow::Result<LogEvent> {
    let data: String = row.try_get(4)?;
    Ok(LogEvent {
        seq: row.try_get(0)?,
        at: row.try_get(1)?,
        choice_id: row.try_get(2)?,
        kind: row.try_get(3)?,
        data: serde_json::from_str(&data).context("stored event data does not parse")?,
    })
}
