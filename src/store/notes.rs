//! The programs' activity notes, as read back from the event log.

use super::choices::{LogEvent, decode_event};
use super::database::Store;

const NOTES_AFTER: &str = "SELECT seq, at_ms, choice_id, type, data FROM events \
     WHERE type = 'note' AND seq > $1 ORDER BY seq LIMIT $2";
const NOTES_OF_SOURCE_AFTER: &str = "SELECT seq, at_ms, choice_id, type, data FROM events \
     WHERE type = 'note' AND source = $3 AND seq > $1 ORDER BY seq LIMIT $2";
const RECENT_NOTES: &str = "SELECT seq, at_ms, choice_id, type, data FROM events \
     WHERE type = 'note' ORDER BY seq DESC LIMIT $1";

impl Store {
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
}
