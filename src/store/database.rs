//! The connections to the database: the pool (opened with the migrations), each connection's
//! settings, and the LISTEN connection that hears other nodes' commits.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{AnyConnection, AnyPool, Executor};

/// The longest a request or a batch waits for a database connection.
pub(super) const CONNECTION_WAIT: Duration = Duration::from_secs(3);
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

#[derive(Clone)]
pub struct Store {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
    /// For the writer's own connection.
    pub(super) options: AnyConnectOptions,
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
}

/// Sets up each new connection.
pub(super) async fn prepare(conn: &mut AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
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

/// PostgreSQL's TEXT cannot hold U+0000 (the query would fail), and no stored id has one: an
/// id with one names no choice, on either backend.
pub(super) fn storable_id(id: &str) -> bool {
    !id.contains('\0')
}
