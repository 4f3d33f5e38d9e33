//! The writer's batch: one transaction for any number of commands, committed once (group
//! commit), on the writer's own connection.

use anyhow::Context;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};

use super::choices::{LogEvent, SELECT_CHOICE, decode_choice};
use super::database::{Backend, CONNECTION_WAIT, Store, prepare, storable_id};
use crate::choice::Choice;
use crate::clock::Millis;

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
/// Rows written by one statement at most (parameters stay far below both backends' limits).
const ROWS_PER_STATEMENT: usize = 256;
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

/// An event about to be appended; the store gives it its seq.
pub struct NewEvent<'a> {
    pub at: Millis,
    pub choice_id: Option<&'a str>,
    /// The asking program or project, when known (notes always have one).
    pub source: Option<&'a str>,
    pub kind: &'a str,
    pub data: serde_json::Value,
}

impl Store {
    /// The writer's connection for its batches, opened when the first one begins.
    pub fn writer(&self) -> Writer {
        Writer {
            options: self.options.clone(),
            backend: self.backend,
            conn: None,
            open: false,
        }
    }
}

/// The writer's connection, the same for every batch, and none of the pool's. SQLite keeps a
/// page cache per connection and empties it whenever another connection has written since; a
/// writer taking the next connection of the pool for each batch would read its pages from the
/// file again every time. It is opened on the writer's thread, so on SQLite the thread sqlx
/// starts for it shares the writer's priority (see `engine::writer::spawn_writer`).
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
