//! The dashboard: what it shows, read fresh (the active choices from the live state, the
//! recently finished ones, today's counts and the notes from the store, and every source heard
//! of lately, with whether its heartbeats have stopped), and its one channel of frames (`board`,
//! `remaining`). A change or a tick renders a frame **once**; every viewer wakes, compares part
//! counters with what it last sent, and writes the same bytes, so a slow viewer skips stale
//! frames and nothing queues per viewer.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::clock::{Millis, now_ms, start_of_day};
use crate::engine::{Change, Subscriber};
use crate::frame::{self, Part};
use crate::live::Live;
use crate::note::{HEARTBEAT, Note};
use crate::store::{ListFilter, LogEvent, Store};
use crate::views;
use crate::views::dashboard::{Board, FeedNote, SourceLine};

/// The dashboard's frames as they stand: what its SSE viewers copy onto their sockets.
#[derive(Clone, Debug, Default)]
pub struct DashboardFrames {
    pub board: Part,
    pub remaining: Part,
}

/// Board re-renders are at least this far apart; changes in between are coalesced.
const MIN_INTERVAL: Duration = Duration::from_millis(150);
const KEEP_DASHBOARD_FINISHED: i64 = 20;
/// Notes read for the sources' last-seen lines, and how many of them the feed shows.
const DASHBOARD_NOTES_READ: i64 = 500;
const DASHBOARD_NOTES_SHOWN: usize = 50;
/// A source that sends heartbeats is stale after this many silent intervals.
const STALE_AFTER_INTERVALS: i64 = 3;
const DASHBOARD_ACTIVE_LIMIT: usize = 1000;

/// The board, kept rendered for every viewer, and re-read when something changed.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<DashboardState>,
}

struct DashboardState {
    live: Live,
    store: Store,
    frames: watch::Sender<DashboardFrames>,
    dirty: AtomicBool,
    wake: Notify,
    board: Mutex<Option<Arc<Board>>>,
    refreshing: tokio::sync::Mutex<()>,
    seq: AtomicU64,
}

impl Dashboard {
    /// A dashboard with its re-rendering task running (until the dashboard is dropped).
    pub fn start(live: Live, store: Store) -> Dashboard {
        let dashboard = Dashboard {
            inner: Arc::new(DashboardState {
                live,
                store,
                frames: watch::channel(DashboardFrames::default()).0,
                dirty: AtomicBool::new(true),
                wake: Notify::new(),
                board: Mutex::default(),
                refreshing: tokio::sync::Mutex::new(()),
                seq: AtomicU64::new(0),
            }),
        };
        tokio::spawn(rerender_loop(Arc::downgrade(&dashboard.inner)));
        dashboard
    }

    /// Subscribes to the dashboard, with its frames fresh.
    pub async fn watch(&self) -> watch::Receiver<DashboardFrames> {
        let frames = self.inner.frames.subscribe();
        if self.inner.dirty.load(Ordering::Acquire) {
            self.inner.refresh().await;
        }
        frames
    }

    /// Open dashboard streams.
    pub fn viewers(&self) -> usize {
        self.inner.frames.receiver_count()
    }

    /// The board as it stands (rendered fresh if stale), for pages and polling.
    pub async fn board(&self) -> Arc<Board> {
        // "Last seen" and staleness move with time alone: a board over a second old is redone.
        let stale = lock(&self.inner.board)
            .as_ref()
            .is_none_or(|b| now_ms() - b.rendered_at > 1_000);
        if stale {
            self.inner.mark_dirty();
        }
        if self.inner.dirty.load(Ordering::Acquire) {
            self.inner.refresh().await;
        }
        lock(&self.inner.board)
            .clone()
            .unwrap_or_else(|| Arc::new(Board::empty()))
    }

    /// One second's work: the countdowns of every viewer's board; heartbeats looked at anew
    /// every 5 s; `presence_moved`: someone joined or left a choice (the board counts them).
    pub fn tick(&self, now: Millis, presence_moved: bool) {
        let state = &self.inner;
        // Sources with heartbeats go stale with no event at all: look again every 5 s.
        if now.div_euclid(1000) % 5 == 0 {
            let board = lock(&state.board).clone();
            if board.is_some_and(|b| b.sources.iter().any(|s| s.heartbeat_every.is_some())) {
                state.mark_dirty();
            }
        }
        if presence_moved {
            state.mark_dirty();
        }
        if state.frames.receiver_count() == 0 {
            // Nobody saw this second's countdowns: the next viewer (or page) gets the board
            // rendered afresh, not what the last one saw. No wake-up: nobody is waiting.
            state.dirty.store(true, Ordering::Release);
        } else {
            let board = lock(&state.board).clone();
            if let Some(board) = board {
                let seq = state.seq.load(Ordering::Acquire) as i64;
                let frame = frame::sse(
                    seq,
                    "remaining",
                    &views::dashboard::all_left(&board, now).into_string(),
                );
                state.frames.send_modify(|f| f.remaining.replace(frame));
            }
        }
    }
}

impl Subscriber for Dashboard {
    fn changed(&self, change: &Arc<Change>) {
        let state = &self.inner;
        state
            .seq
            .fetch_max(change.event.seq as u64, Ordering::AcqRel);
        state.mark_dirty();
    }
}

impl DashboardState {
    fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Re-reads the board and renders it once for every dashboard viewer.
    async fn refresh(&self) {
        let _one_at_a_time = self.refreshing.lock().await;
        if !self.dirty.swap(false, Ordering::AcqRel) && lock(&self.board).is_some() {
            return;
        }
        let now = now_ms();
        let board = match load(&self.live, &self.store, now).await {
            Ok(board) => Arc::new(board),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the dashboard could not be read");
                self.dirty.store(true, Ordering::Release);
                return;
            }
        };
        let seq = self.seq.load(Ordering::Acquire) as i64;
        let board_frame = frame::sse(
            seq,
            "board",
            &views::dashboard::board(&board, now, &Default::default()).into_string(),
        );
        let left_frame = frame::sse(
            seq,
            "remaining",
            &views::dashboard::all_left(&board, now).into_string(),
        );
        *lock(&self.board) = Some(board);
        self.frames.send_modify(|f| {
            f.board.replace(board_frame);
            f.remaining.replace(left_frame);
        });
    }
}

/// Re-renders the board when something changed and somebody is looking.
async fn rerender_loop(dashboard: std::sync::Weak<DashboardState>) {
    loop {
        let Some(dashboard) = dashboard.upgrade() else {
            return;
        };
        // Wake now and then anyway, so the loop notices when the dashboard is gone.
        let _ = tokio::time::timeout(Duration::from_secs(5), dashboard.wake.notified()).await;
        if dashboard.frames.receiver_count() > 0 && dashboard.dirty.load(Ordering::Acquire) {
            dashboard.refresh().await;
            tokio::time::sleep(MIN_INTERVAL).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The board as it is now.
async fn load(live: &Live, store: &Store, now: Millis) -> anyhow::Result<Board> {
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
