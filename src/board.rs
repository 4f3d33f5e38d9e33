//! What the dashboard shows, read fresh: the active choices from the live state, the recently
//! finished ones, today's counts and the notes from the store, and every source heard of
//! lately, with whether its heartbeats have stopped. The hub renders it; this only reads.

use std::collections::{BTreeMap, HashMap};

use crate::clock::{Millis, start_of_day};
use crate::live::Live;
use crate::note::{HEARTBEAT, Note};
use crate::store::{ListFilter, LogEvent, Store};
use crate::views::dashboard::{Board, FeedNote, SourceLine};

const KEEP_DASHBOARD_FINISHED: i64 = 20;
/// Notes read for the sources' last-seen lines, and how many of them the feed shows.
const DASHBOARD_NOTES_READ: i64 = 500;
const DASHBOARD_NOTES_SHOWN: usize = 50;
/// A source that sends heartbeats is stale after this many silent intervals.
const STALE_AFTER_INTERVALS: i64 = 3;
const DASHBOARD_ACTIVE_LIMIT: usize = 1000;

/// The board as it is now.
pub async fn load(live: &Live, store: &Store, now: Millis) -> anyhow::Result<Board> {
    let mut active = live.active();
    active.truncate(DASHBOARD_ACTIVE_LIMIT);
    let finished = store
        .list(ListFilter::Final, KEEP_DASHBOARD_FINISHED)
        .await?;
    let counts: BTreeMap<String, i64> = store
        .resolved_since(start_of_day(now))
        .await?
        .into_iter()
        .collect();
    // Grouped by source on the board (a stable sort keeps the newest first in each group).
    active.sort_by(|a, b| a.spec.source.cmp(&b.spec.source));
    let notes = store.recent_notes(DASHBOARD_NOTES_READ).await?;
    let sources = sources(&notes, active.iter().map(|c| &**c).chain(&finished), now);
    let notes = notes
        .into_iter()
        .take(DASHBOARD_NOTES_SHOWN)
        .filter_map(|e| {
            Some(FeedNote {
                seq: e.seq,
                at: e.at,
                note: Note::from_data(&e.data)?,
            })
        })
        .collect();
    Ok(Board {
        rendered_at: now,
        notes,
        sources,
        active: active
            .into_iter()
            .map(|c| {
                let n = live.presence(&c.id).viewers;
                (c, n)
            })
            .collect(),
        finished,
        submitted_today: counts.get("submitted").copied().unwrap_or(0),
        cancelled_today: counts.get("cancelled").copied().unwrap_or(0),
        timed_out_today: counts.get("timed_out").copied().unwrap_or(0),
    })
}

impl Board {
    pub fn empty() -> Self {
        Board {
            active: Vec::new(),
            finished: Vec::new(),
            submitted_today: 0,
            cancelled_today: 0,
            timed_out_today: 0,
            notes: Vec::new(),
            rendered_at: 0,
            sources: Vec::new(),
        }
    }
}

/// Every source heard of lately: from notes (newest first) and from the choices on the board.
/// A source whose last two heartbeats were T apart is stale once silent for 3 T.
fn sources<'a>(
    notes: &[LogEvent],
    choices: impl Iterator<Item = &'a crate::choice::Choice>,
    now: Millis,
) -> Vec<SourceLine> {
    let mut lines: BTreeMap<String, SourceLine> = BTreeMap::new();
    let mut heartbeats: HashMap<String, Vec<Millis>> = HashMap::new();
    let mut seen = |name: &str, at: Millis| {
        let line = lines.entry(name.to_string()).or_insert_with(|| SourceLine {
            name: name.to_string(),
            last_seen: at,
            heartbeat_every: None,
            stale: false,
        });
        line.last_seen = line.last_seen.max(at);
    };
    for event in notes {
        let Some(note) = Note::from_data(&event.data) else {
            continue;
        };
        seen(&note.source, event.at);
        if note.kind == HEARTBEAT {
            heartbeats.entry(note.source).or_default().push(event.at);
        }
    }
    for c in choices {
        if let Some(source) = &c.spec.source {
            seen(source, c.resolved_at.unwrap_or(c.created_at));
        }
    }
    for (name, beats) in heartbeats {
        // Newest first: the last interval is between the first two.
        if let (Some(last), Some(previous), Some(line)) =
            (beats.first(), beats.get(1), lines.get_mut(&name))
        {
            let every = (last - previous).max(1);
            line.heartbeat_every = Some(every);
            line.stale = now - line.last_seen.max(*last) > STALE_AFTER_INTERVALS * every;
        }
    }
    lines.into_values().collect()
}
