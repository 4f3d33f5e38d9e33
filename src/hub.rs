//! The hub: the 1 Hz ticker, and the dashboard's fan-out of rendered frames.
//!
//! Once a second, on the wall-clock second, the ticker has the [live state](crate::live)
//! render each watched choice's countdown once, and renders the dashboard's. The dashboard has
//! one channel of frames (`board`, `remaining`): a change or a tick renders a frame **once**;
//! every viewer wakes, compares part counters with what it last sent, and writes the same
//! bytes, so a slow viewer skips stale frames and nothing queues per viewer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::board;
use crate::clock::{Millis, now_ms};
use crate::engine::{Change, Subscriber};
use crate::frame::{self, Part};
use crate::live::Live;
use crate::store::Store;
use crate::views;

#[derive(Clone, Debug, Default)]
pub struct DashboardFrames {
    pub board: Part,
    pub remaining: Part,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct HubStats {
    pub frames_sent: AtomicU64,
    pub frames_skipped: AtomicU64,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    live: Live,
    dashboard: Dashboard,
    store: Store,
    shutdown: watch::Sender<bool>,
    stats: HubStats,
}

struct Dashboard {
    frames: watch::Sender<DashboardFrames>,
    dirty: AtomicBool,
    wake: Notify,
    board: Mutex<Option<Arc<views::dashboard::Board>>>,
    refreshing: tokio::sync::Mutex<()>,
    seq: AtomicU64,
}

/// Board re-renders are at least this far apart; changes in between are coalesced.
const DASHBOARD_MIN_INTERVAL: Duration = Duration::from_millis(150);

impl Hub {
    /// Starts the ticker and the dashboard's task.
    pub fn start(live: Live, store: Store) -> Hub {
        let (shutdown, _) = watch::channel(false);
        let hub = Hub {
            inner: Arc::new(HubInner {
                live,
                dashboard: Dashboard {
                    frames: watch::channel(DashboardFrames::default()).0,
                    dirty: AtomicBool::new(true),
                    wake: Notify::new(),
                    board: Mutex::default(),
                    refreshing: tokio::sync::Mutex::new(()),
                    seq: AtomicU64::new(0),
                },
                store,
                shutdown,
                stats: HubStats::default(),
            }),
        };
        let ticker = Arc::downgrade(&hub.inner);
        if let Err(e) = std::thread::Builder::new()
            .name("choiceboard-ticker".into())
            .spawn(move || tick_loop(ticker))
        {
            tracing::error!(error = %e, "the ticker thread could not start; countdowns will not tick");
        }
        tokio::spawn(dashboard_loop(Arc::downgrade(&hub.inner)));
        hub
    }

    pub fn stats(&self) -> &HubStats {
        &self.inner.stats
    }

    /// Ends every stream (graceful shutdown).
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Open streams and sockets, on choices and on the dashboard.
    pub fn open_streams(&self) -> usize {
        self.inner.live.open_streams() + self.inner.dashboard.frames.receiver_count()
    }

    /// Subscribes to the dashboard, with its frames fresh.
    pub async fn watch_dashboard(
        &self,
    ) -> (watch::Receiver<DashboardFrames>, watch::Receiver<bool>) {
        let frames = self.inner.dashboard.frames.subscribe();
        if self.inner.dashboard.dirty.load(Ordering::Acquire) {
            self.inner.refresh_dashboard().await;
        }
        (frames, self.shutdown_signal())
    }

    /// The dashboard's board as it stands (rendered fresh if stale), for pages and polling.
    pub async fn board(&self) -> Arc<views::dashboard::Board> {
        // "Last seen" and staleness move with time alone: a board over a second old is redone.
        let stale = lock(&self.inner.dashboard.board)
            .as_ref()
            .is_none_or(|b| now_ms() - b.rendered_at > 1_000);
        if stale {
            self.inner.dashboard.mark_dirty();
        }
        if self.inner.dashboard.dirty.load(Ordering::Acquire) {
            self.inner.refresh_dashboard().await;
        }
        lock(&self.inner.dashboard.board)
            .clone()
            .unwrap_or_else(|| Arc::new(views::dashboard::Board::empty()))
    }
}

impl Subscriber for Hub {
    fn changed(&self, change: &Arc<Change>) {
        let dashboard = &self.inner.dashboard;
        dashboard
            .seq
            .fetch_max(change.event.seq as u64, Ordering::AcqRel);
        dashboard.mark_dirty();
    }
}

impl Dashboard {
    fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

impl HubInner {
    /// Re-reads the board from the store and renders it once for every dashboard viewer.
    async fn refresh_dashboard(&self) {
        let _one_at_a_time = self.dashboard.refreshing.lock().await;
        if !self.dashboard.dirty.swap(false, Ordering::AcqRel)
            && lock(&self.dashboard.board).is_some()
        {
            return;
        }
        let now = now_ms();
        let board = match board::load(&self.live, &self.store, now).await {
            Ok(board) => Arc::new(board),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the dashboard could not be read");
                self.dashboard.dirty.store(true, Ordering::Release);
                return;
            }
        };
        let seq = self.dashboard.seq.load(Ordering::Acquire) as i64;
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
        *lock(&self.dashboard.board) = Some(board);
        self.dashboard.frames.send_modify(|f| {
            f.board.replace(board_frame);
            f.remaining.replace(left_frame);
        });
    }

    fn tick(&self, now: Millis) {
        // Sources with heartbeats go stale with no event at all: look again every 5 s.
        if now.div_euclid(1000) % 5 == 0 {
            let board = lock(&self.dashboard.board).clone();
            if board.is_some_and(|b| b.sources.iter().any(|s| s.heartbeat_every.is_some())) {
                self.dashboard.mark_dirty();
            }
        }
        if self.live.tick(now) {
            // Someone joined or left: the board's viewer counts.
            self.dashboard.mark_dirty();
        }
        if self.dashboard.frames.receiver_count() == 0 {
            // Nobody saw this second's countdowns: the next viewer (or page) gets the board
            // rendered afresh, not what the last one saw. No wake-up: nobody is waiting.
            self.dashboard.dirty.store(true, Ordering::Release);
        } else {
            let board = lock(&self.dashboard.board).clone();
            if let Some(board) = board {
                let seq = self.dashboard.seq.load(Ordering::Acquire) as i64;
                let frame = frame::sse(
                    seq,
                    "remaining",
                    &views::dashboard::all_left(&board, now).into_string(),
                );
                self.dashboard
                    .frames
                    .send_modify(|f| f.remaining.replace(frame));
            }
        }
    }
}

/// Ticks once a second, on the wall-clock second, so every viewer's countdown flips together.
///
/// On a thread of its own, outside the runtime: wake-ups from outside enter the runtime's
/// shared queue in order, so the viewers of one choice run together. Woken from a worker, the
/// first few hundred would sit in that worker's local queue and the rest overflow to the shared
/// one, and one choice's viewers would end up spread over the whole burst (a change waited
/// behind it too; bench/README.md has the figures).
fn tick_loop(hub: std::sync::Weak<HubInner>) {
    loop {
        let wait = 1000 - now_ms().rem_euclid(1000);
        std::thread::sleep(Duration::from_millis(wait as u64));
        let Some(hub) = hub.upgrade() else { return };
        hub.tick(now_ms());
    }
}

/// Re-renders the board when something changed and somebody is looking.
async fn dashboard_loop(hub: std::sync::Weak<HubInner>) {
    loop {
        let Some(hub) = hub.upgrade() else { return };
        // Wake now and then anyway, so the loop notices when the hub is gone.
        let _ = tokio::time::timeout(Duration::from_secs(5), hub.dashboard.wake.notified()).await;
        if hub.dashboard.frames.receiver_count() > 0 && hub.dashboard.dirty.load(Ordering::Acquire)
        {
            hub.refresh_dashboard().await;
            tokio::time::sleep(DASHBOARD_MIN_INTERVAL).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
