//! What every stream shares: the 1 Hz ticker that has each watched choice's countdown and the
//! dashboard's rendered once a second, the shutdown signal that ends streams, and the count of
//! frames sent and skipped.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::now_ms;
use crate::dashboard::Dashboard;
use crate::live::Live;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct FrameStats {
    pub frames_sent: AtomicU64,
    pub frames_skipped: AtomicU64,
}

#[derive(Clone)]
pub struct Streams {
    inner: Arc<StreamsState>,
}

struct StreamsState {
    live: Live,
    dashboard: Dashboard,
    shutdown: watch::Sender<bool>,
    stats: FrameStats,
}

impl Streams {
    /// Starts the ticker.
    pub fn start(live: Live, dashboard: Dashboard) -> Streams {
        let (shutdown, _) = watch::channel(false);
        let streams = Streams {
            inner: Arc::new(StreamsState {
                live,
                dashboard,
                shutdown,
                stats: FrameStats::default(),
            }),
        };
        let ticker = Arc::downgrade(&streams.inner);
        if let Err(e) = std::thread::Builder::new()
            .name("choiceboard-ticker".into())
            .spawn(move || tick_loop(ticker))
        {
            tracing::error!(error = %e, "the ticker thread could not start; countdowns will not tick");
        }
        streams
    }

    pub fn stats(&self) -> &FrameStats {
        &self.inner.stats
    }

    pub fn dashboard(&self) -> &Dashboard {
        &self.inner.dashboard
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
        self.inner.live.open_streams() + self.inner.dashboard.viewers()
    }
}

/// Ticks once a second, on the wall-clock second, so every viewer's countdown flips together.
///
/// On a thread of its own, outside the runtime: wake-ups from outside enter the runtime's
/// shared queue in order, so the viewers of one choice run together. Woken from a worker, the
/// first few hundred would sit in that worker's local queue and the rest overflow to the shared
/// one, and one choice's viewers would end up spread over the whole burst (a change waited
/// behind it too; bench/README.md has the figures).
fn tick_loop(streams: std::sync::Weak<StreamsState>) {
    loop {
        let wait = 1000 - now_ms().rem_euclid(1000);
        std::thread::sleep(Duration::from_millis(wait as u64));
        let Some(streams) = streams.upgrade() else {
            return;
        };
        let now = now_ms();
        let presence_moved = streams.live.tick(now);
        streams.dashboard.tick(now, presence_moved);
    }
}
