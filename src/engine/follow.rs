//! Following the nodes that share the database (PostgreSQL). A listener task holds a LISTEN
//! connection and, on every NOTIFY (and after every reconnect), asks the writer to *follow*
//! the log: read the events after the last seq it has seen, skip the ones this node wrote
//! itself (already published right after their commit), and publish the others with the
//! choice's current row, exactly like a local change. Following runs in the writer task, so
//! local and remote changes are published one at a time and a choice's published version
//! never goes backwards.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{Change, Inner, ListenState};
use crate::choice::{Choice, EventKind};
use crate::store::{LogEvent, Store};

/// How many events one read of the log takes when following other nodes.
const FOLLOW_PAGE: i64 = 500;
/// A quiet LISTEN connection is pinged (and the log read, as a safety net) this often.
const LISTEN_IDLE: Duration = Duration::from_secs(10);
/// Reconnecting waits this long after the first failure, doubling up to `BACKOFF_MAX`.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The writer's view of the shared log: what it has read, and which seqs it wrote itself.
pub(super) struct Follow {
    /// Every event up to here has been published (or was this node's own).
    pub(super) seen: i64,
    /// Seqs above `seen` that this node committed and published itself.
    pub(super) own: BTreeSet<i64>,
    /// The listener's "read the log" requests (capacity one: requests coalesce).
    pub(super) woken: mpsc::Receiver<()>,
    /// To ask again after a failed read.
    pub(super) wake: mpsc::Sender<()>,
}

/// Reads the log after `seen` and publishes what other nodes wrote, each event with its
/// choice's current row. On an error nothing is marked seen, so the next call retries.
pub(super) async fn follow_log(inner: &Inner, follow: &mut Follow) -> anyhow::Result<()> {
    loop {
        let events = inner.store.events_after(follow.seen, FOLLOW_PAGE).await?;
        let full_page = events.len() as i64 == FOLLOW_PAGE;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(());
        };
        let remote: Vec<LogEvent> = events
            .into_iter()
            .filter(|e| !follow.own.remove(&e.seq))
            .collect();
        // Load every choice first: if a read fails, nothing is published twice on retry.
        let mut rows: HashMap<String, Option<Arc<Choice>>> = HashMap::new();
        for event in &remote {
            if let Some(id) = &event.choice_id {
                if !rows.contains_key(id) {
                    let row = inner.store.get(id).await?.map(Arc::new);
                    rows.insert(id.clone(), row);
                }
            }
        }
        follow.seen = last;
        follow.own = follow.own.split_off(&(last + 1));
        for event in remote {
            let choice = match event.choice_id.as_ref().map(|id| rows.get(id)) {
                // A note: no choice to go with it.
                None => None,
                Some(Some(Some(choice))) => Some(choice.clone()),
                // A choice since deleted (retention): nothing to show; pollers still read it.
                Some(_) => continue,
            };
            let kind = EventKind::parse(&event.kind);
            inner.publish(Arc::new(Change {
                event,
                kind,
                choice,
            }));
        }
        if !full_page {
            return Ok(());
        }
    }
}

/// Holds a LISTEN connection and asks the writer to read the log on every NOTIFY, after every
/// (re)connect, and now and then while all is quiet. Ends when the writer has ended.
pub(super) async fn listen_loop(
    store: Store,
    wake: mpsc::Sender<()>,
    state: watch::Sender<ListenState>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut failures: u32 = 0;
    loop {
        let attempt = tokio::select! {
            attempt = store.listen() => attempt,
            _ = wake.closed() => return,
        };
        match attempt {
            Ok(mut listener) => {
                // Whatever committed before LISTEN took effect is read by this catch-up;
                // whatever commits after it is notified.
                let _ = wake.try_send(());
                state.send_replace(ListenState::Connected);
                if failures > 0 {
                    tracing::info!(
                        attempts = failures,
                        "LISTEN connection restored; catching up from the last seen seq"
                    );
                }
                failures = 0;
                backoff = BACKOFF_MIN;
                let lost = loop {
                    tokio::select! {
                        next = listener.next(LISTEN_IDLE) => match next {
                            // A commit somewhere, or a quiet spell with a live connection
                            // (then the read is a cheap safety net).
                            Ok(_) => { let _ = wake.try_send(()); }
                            Err(e) => break e,
                        },
                        _ = wake.closed() => return,
                    }
                };
                state.send_replace(ListenState::Reconnecting);
                tracing::warn!(error = %format!("{lost:#}"), "lost the LISTEN connection: other nodes' changes are not heard until it is back; reconnecting");
            }
            Err(e) => {
                state.send_replace(ListenState::Reconnecting);
                failures += 1;
                // The first failure and then every tenth, so an outage does not flood the log.
                if failures % 10 == 1 {
                    tracing::warn!(error = %format!("{e:#}"), attempts = failures, retry_in = ?backoff, "cannot LISTEN for other nodes' changes");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = wake.closed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
