//! Choices and the event log as read back (one choice, lists, pending deadlines, events after
//! a seq, counts), and retention, which deletes the old ones.

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;

use super::database::{Store, storable_id};
use crate::choice::Choice;
use crate::clock::Millis;

/// Also the writer's read of a row it does not hold (`Batch::load`).
pub(super) const SELECT_CHOICE: &str = "SELECT state FROM choices WHERE id = $1";
const LIST_ACTIVE: &str = "SELECT state FROM choices WHERE status IN ('pending', 'paused') \
     ORDER BY created_ms DESC, id LIMIT $1";
const LIST_FINAL: &str = "SELECT state FROM choices WHERE status NOT IN ('pending', 'paused') \
     ORDER BY resolved_ms DESC, id LIMIT $1";
const LIST_ALL: &str = "SELECT state FROM choices ORDER BY created_ms DESC, id LIMIT $1";
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFilter {
    Active,
    Final,
    All,
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

impl Store {
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

    /// Whether the database answers (for `/healthz`): a read of the log's head.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query(LAST_SEQ).fetch_one(&self.pool).await?;
        Ok(())
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

    /// How many choices there are in each status (for `/metrics`).
    pub async fn count_by_status(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = sqlx::query(COUNT_BY_STATUS).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

pub(super) fn decode_choice(row: &sqlx::any::AnyRow) -> anyhow::Result<Choice> {
    let state: String = row.try_get(0)?;
    serde_json::from_str(&state).context("a stored choice does not parse")
}

pub(super) fn decode_event(row: &sqlx::any::AnyRow) -> anyhow::Result<LogEvent> {
    let data: String = row.try_get(4)?;
    Ok(LogEvent {
        seq: row.try_get(0)?,
        at: row.try_get(1)?,
        choice_id: row.try_get(2)?,
        kind: row.try_get(3)?,
        data: serde_json::from_str(&data).context("stored event data does not parse")?,
    })
}
