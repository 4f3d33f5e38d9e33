//! The hub: in-memory fan-out of *rendered frames*.
//!
//! Per watched choice a [`Topic`] holds the frames as they stand (`status`, `remaining`,
//! `viewers`, and whether the stream is closed) in a `watch` channel. A change or a tick renders
//! a frame **once**; every viewer wakes, compares part counters with what it last sent, and
//! writes the same bytes. A slow viewer therefore skips stale ticks and sends only the newest
//! frame of each part; nothing queues per viewer, so memory stays bounded. Choices nobody
//! watches have no topic and cost nothing. The dashboard has one topic of its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{Notify, watch};

use crate::choice::{Choice, Status};
use crate::clock::{Millis, now_ms, start_of_day};
use crate::engine::{Change, Subscriber};
use crate::json::Presence;
use crate::note::{HEARTBEAT, Note};
use crate::store::LogEvent;
use crate::store::{ListFilter, Store};
use crate::views;

/// One part of a topic's state: its latest frame and how many frames it has had.
#[derive(Clone, Debug, Default)]
pub struct Part {
    pub count: u64,
    pub bytes: Bytes,
}

impl Part {
    fn replace(&mut self, bytes: Bytes) {
        self.count += 1;
        self.bytes = bytes;
    }
}

/// A choice's frames as they stand.
#[derive(Clone, Debug, Default)]
pub struct ChoiceFrames {
    pub status: Part,
    pub remaining: Part,
    pub viewers: Part,
    /// The choice is final for good: send `close` after the status and end the stream.
    pub closed: bool,
    /// The choice these frames were rendered from.
    pub choice: Option<Arc<Choice>>,
    /// WebSocket `sync` (at every deadline change and every 5 s) and `status` messages.
    pub ws_sync: Part,
    pub ws_status: Part,
}

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
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    dashboard: Dashboard,
    store: Store,
    shutdown: watch::Sender<bool>,
    stats: HubStats,
    /// How long a viewer who drops is still shown, in case it comes straight back.
    grace: Duration,
    next_connection: AtomicU64,
}

struct Topic {
    frames: watch::Sender<ChoiceFrames>,
    state: Mutex<TopicState>,
}

struct TopicState {
    choice: Arc<Choice>,
    /// The newest event seq this topic reflects: the SSE `id:` of its frames.
    seq: i64,
    people: HashMap<String, Person>,
}

struct Person {
    name: String,
    connections: u32,
    /// Bumped on every join, so a delayed leave knows whether the person came back.
    generation: u64,
}

struct Dashboard {
    frames: watch::Sender<DashboardFrames>,
    dirty: AtomicBool,
    wake: Notify,
    board: Mutex<Option<Arc<views::dashboard::Board>>>,
    refreshing: tokio::sync::Mutex<()>,
    seq: AtomicU64,
}

/// Who opened a stream: a stable key (the browser's viewer cookie) and a display name.
#[derive(Clone, Debug, Default)]
pub struct Viewer {
    pub key: Option<String>,
    pub name: Option<String>,
}

/// A live subscription to one choice. Dropping it is leaving.
pub struct ChoiceWatch {
    pub frames: watch::Receiver<ChoiceFrames>,
    pub shutdown: watch::Receiver<bool>,
    _presence: PresenceGuard,
}

struct PresenceGuard {
    hub: Hub,
    id: String,
    key: String,
}

pub const GUEST: &str = "guest";
const KEEP_DASHBOARD_FINISHED: i64 = 20;
/// Notes read for the sources' last-seen lines, and how many of them the feed shows.
const DASHBOARD_NOTES_READ: i64 = 500;
const DASHBOARD_NOTES_SHOWN: usize = 50;
/// A source that sends heartbeats is stale after this many silent intervals.
const STALE_AFTER_INTERVALS: i64 = 3;
const DASHBOARD_ACTIVE_LIMIT: i64 = 1000;
/// Board re-renders are at least this far apart; changes in between are coalesced.
const DASHBOARD_MIN_INTERVAL: Duration = Duration::from_millis(150);

impl Hub {
    /// Starts the hub's ticker and dashboard tasks.
    pub fn start(store: Store, grace: Duration) -> Hub {
        let (shutdown, _) = watch::channel(false);
        let hub = Hub {
            inner: Arc::new(HubInner {
                topics: Mutex::default(),
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
                grace,
                next_connection: AtomicU64::new(0),
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
        let topics = lock(&self.inner.topics);
        topics
            .values()
            .map(|t| t.frames.receiver_count())
            .sum::<usize>()
            + self.inner.dashboard.frames.receiver_count()
    }

    /// Starts watching `choice` (as just read from the store at event `seq`).
    pub fn watch(&self, choice: Choice, seq: i64, viewer: Viewer) -> ChoiceWatch {
        let id = choice.id.clone();
        let key = viewer.key.map(|k| format!("k:{k}")).unwrap_or_else(|| {
            format!(
                "c:{}",
                self.inner.next_connection.fetch_add(1, Ordering::Relaxed)
            )
        });
        let name = viewer
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| GUEST.to_string());
        let (topic, frames) = {
            let mut topics = lock(&self.inner.topics);
            let topic = topics
                .entry(id.clone())
                .or_insert_with(|| Arc::new(Topic::new(Arc::new(choice.clone()), seq)))
                .clone();
            let frames = topic.frames.subscribe();
            (topic, frames)
        };
        topic.offer(Arc::new(choice), seq);
        topic.join(&key, name);
        self.inner.dashboard.mark_dirty();
        ChoiceWatch {
            frames,
            shutdown: self.shutdown_signal(),
            _presence: PresenceGuard {
                hub: self.clone(),
                id,
                key,
            },
        }
    }

    /// Who is watching a choice right now.
    pub fn presence(&self, id: &str) -> Presence {
        let topic = lock(&self.inner.topics).get(id).cloned();
        topic.map(|t| lock(&t.state).presence()).unwrap_or_default()
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

    /// A browser changed its display name: everyone watching with it sees the new one.
    pub fn rename(&self, viewer_key: &str, name: Option<&str>) {
        let key = format!("k:{viewer_key}");
        let name = name.unwrap_or(GUEST).to_string();
        let topics: Vec<Arc<Topic>> = lock(&self.inner.topics).values().cloned().collect();
        for topic in topics {
            let mut state = lock(&topic.state);
            let Some(person) = state.people.get_mut(&key) else {
                continue;
            };
            if person.name == name {
                continue;
            }
            person.name = name.clone();
            let frame = render_viewers(&state);
            drop(state);
            topic.frames.send_modify(|f| f.viewers.replace(frame));
        }
    }

    fn leave(&self, id: &str, key: &str) {
        let Some(topic) = lock(&self.inner.topics).get(id).cloned() else {
            return;
        };
        let generation = {
            let mut state = lock(&topic.state);
            let Some(person) = state.people.get_mut(key) else {
                return;
            };
            person.connections = person.connections.saturating_sub(1);
            if person.connections > 0 {
                return;
            }
            person.generation
        };
        // A browser (with its viewer cookie) may be back in a moment: a blip is not a leave.
        if key.starts_with("k:") && !self.inner.grace.is_zero() {
            let hub = self.clone();
            let (id, key) = (id.to_string(), key.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(hub.inner.grace).await;
                hub.forget(&id, &key, generation);
            });
        } else {
            self.forget(id, key, generation);
        }
    }

    /// Removes a person who has not come back, and the topic once nobody is left.
    fn forget(&self, id: &str, key: &str, generation: u64) {
        let mut topics = lock(&self.inner.topics);
        let Some(topic) = topics.get(id).cloned() else {
            return;
        };
        let mut state = lock(&topic.state);
        if state
            .people
            .get(key)
            .is_some_and(|p| p.connections == 0 && p.generation == generation)
        {
            state.people.remove(key);
            let frame = render_viewers(&state);
            drop(state);
            topic.frames.send_modify(|f| f.viewers.replace(frame));
            self.inner.dashboard.mark_dirty();
        } else {
            drop(state);
        }
        if lock(&topic.state).people.is_empty() && topic.frames.receiver_count() == 0 {
            topics.remove(id);
        }
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        self.hub.leave(&self.id, &self.key);
    }
}

impl Subscriber for Hub {
    fn changed(&self, change: &Arc<Change>) {
        let inner = &self.inner;
        inner
            .dashboard
            .seq
            .fetch_max(change.event.seq as u64, Ordering::AcqRel);
        inner.dashboard.mark_dirty();
        let Some(choice) = &change.choice else { return };
        let topic = lock(&inner.topics).get(&choice.id).cloned();
        if let Some(topic) = topic {
            topic.offer(choice.clone(), change.event.seq);
        }
    }
}

impl Topic {
    fn new(choice: Arc<Choice>, seq: i64) -> Topic {
        let state = TopicState {
            choice,
            seq,
            people: HashMap::new(),
        };
        let now = now_ms();
        let frames = ChoiceFrames {
            status: Part {
                count: 1,
                bytes: render_status(&state),
            },
            remaining: Part {
                count: 1,
                bytes: render_remaining(&state, now),
            },
            viewers: Part {
                count: 1,
                bytes: render_viewers(&state),
            },
            closed: closes(&state.choice),
            choice: Some(state.choice.clone()),
            ws_sync: Part {
                count: 1,
                bytes: Bytes::from(crate::json::sync(&state.choice, now).to_string()),
            },
            ws_status: Part::default(),
        };
        Topic {
            frames: watch::channel(frames).0,
            state: Mutex::new(state),
        }
    }

    /// Takes a newer state of the choice (older or equal versions are ignored) and pushes its
    /// status and remaining frames at once.
    fn offer(&self, choice: Arc<Choice>, seq: i64) {
        let mut state = lock(&self.state);
        if choice.version <= state.choice.version {
            return;
        }
        let before = std::mem::replace(&mut state.choice, choice);
        state.seq = state.seq.max(seq);
        let now = now_ms();
        let status = render_status(&state);
        let remaining = render_remaining(&state, now);
        let closed = closes(&state.choice);
        let choice = state.choice.clone();
        let ws_status = crate::json::ws_status(before.status, choice.status).map(Bytes::from);
        let countdown_moved = (before.deadline, before.paused_remaining, before.timeout_ms)
            != (choice.deadline, choice.paused_remaining, choice.timeout_ms);
        let ws_sync =
            countdown_moved.then(|| Bytes::from(crate::json::sync(&choice, now).to_string()));
        // Rendered and sent under the state lock, so frames of two changes never cross.
        self.frames.send_modify(|f| {
            f.status.replace(status);
            f.remaining.replace(remaining);
            f.closed = closed;
            f.choice = Some(choice);
            if let Some(message) = ws_status {
                f.ws_status.replace(message);
            }
            if let Some(message) = ws_sync {
                f.ws_sync.replace(message);
            }
        });
    }

    fn join(&self, key: &str, name: String) {
        let mut state = lock(&self.state);
        let person = state.people.entry(key.to_string()).or_insert(Person {
            name: name.clone(),
            connections: 0,
            generation: 0,
        });
        person.connections += 1;
        person.generation += 1;
        let renamed = person.name != name;
        person.name = name;
        if person.connections == 1 || renamed {
            let frame = render_viewers(&state);
            self.frames.send_modify(|f| f.viewers.replace(frame));
        }
    }

    fn tick(&self, now: Millis) {
        let state = lock(&self.state);
        if state.choice.status == Status::Pending {
            let frame = render_remaining(&state, now);
            // Sockets get a fresh `sync` every 5 s (on the wall-clock second, like the ticks).
            let sync = (now.div_euclid(1000) % 5 == 0)
                .then(|| Bytes::from(crate::json::sync(&state.choice, now).to_string()));
            self.frames.send_modify(|f| {
                f.remaining.replace(frame);
                if let Some(sync) = sync {
                    f.ws_sync.replace(sync);
                }
            });
        }
    }
}

impl TopicState {
    fn presence(&self) -> Presence {
        let mut names: Vec<String> = self.people.values().map(|p| p.name.clone()).collect();
        // Named people first, alphabetically; guests after.
        names.sort_by(|a, b| {
            (a == GUEST)
                .cmp(&(b == GUEST))
                .then_with(|| a.to_lowercase().cmp(&b.to_lowercase()))
        });
        // Viewers are open streams and sockets; someone in their grace period still counts once.
        let viewers = self
            .people
            .values()
            .map(|p| p.connections.max(1) as usize)
            .sum();
        Presence {
            viewers,
            watchers: names,
        }
    }
}

/// A timer that has rung may be reset into its next round, so its stream stays open.
fn closes(c: &Choice) -> bool {
    c.status.is_final()
        && !(c.status == Status::TimedOut && c.spec.mode == crate::choice::Mode::Timer)
}

fn render_status(state: &TopicState) -> Bytes {
    sse_frame(
        state.seq,
        "status",
        &views::choice::status(&state.choice).into_string(),
    )
}

fn render_remaining(state: &TopicState, now: Millis) -> Bytes {
    sse_frame(
        state.seq,
        "remaining",
        &views::choice::remaining(&state.choice, now).into_string(),
    )
}

fn render_viewers(state: &TopicState) -> Bytes {
    sse_frame(
        state.seq,
        "viewers",
        &views::choice::viewers(&state.presence()).into_string(),
    )
}

/// One SSE message. Every line of `data` gets its own `data:` field (CR, LF and CRLF all end
/// a line in SSE), so no text can break out of the message.
pub fn sse_frame(id: i64, event: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + event.len() + 40);
    out.push_str("id: ");
    out.push_str(&id.to_string());
    out.push_str("\nevent: ");
    out.push_str(event);
    out.push('\n');
    for line in data.split(['\n', '\r']) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
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
        let board = match self.load_board(now).await {
            Ok(board) => Arc::new(board),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the dashboard could not be read");
                self.dashboard.dirty.store(true, Ordering::Release);
                return;
            }
        };
        let seq = self.dashboard.seq.load(Ordering::Acquire) as i64;
        let board_frame = sse_frame(
            seq,
            "board",
            &views::dashboard::board(&board, now, &Default::default()).into_string(),
        );
        let left_frame = sse_frame(
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

    async fn load_board(&self, now: Millis) -> anyhow::Result<views::dashboard::Board> {
        let active = self
            .store
            .list(ListFilter::Active, DASHBOARD_ACTIVE_LIMIT)
            .await?;
        let finished = self
            .store
            .list(ListFilter::Final, KEEP_DASHBOARD_FINISHED)
            .await?;
        let counts: BTreeMap<String, i64> = self
            .store
            .resolved_since(start_of_day(now))
            .await?
            .into_iter()
            .collect();
        let topics = lock(&self.topics).clone();
        let viewers = |id: &str| {
            topics
                .get(id)
                .map_or(0, |t| lock(&t.state).presence().viewers)
        };
        // Grouped by source on the board (a stable sort keeps the newest first in each group).
        let mut active = active;
        active.sort_by(|a, b| a.spec.source.cmp(&b.spec.source));
        let notes = self.store.recent_notes(DASHBOARD_NOTES_READ).await?;
        let sources = sources(&notes, &active, &finished, now);
        let notes = notes
            .into_iter()
            .take(DASHBOARD_NOTES_SHOWN)
            .filter_map(|e| {
                Some(views::dashboard::FeedNote {
                    seq: e.seq,
                    at: e.at,
                    note: Note::from_data(&e.data)?,
                })
            })
            .collect();
        Ok(views::dashboard::Board {
            rendered_at: now,
            notes,
            sources,
            active: active
                .into_iter()
                .map(|c| {
                    let n = viewers(&c.id);
                    (Arc::new(c), n)
                })
                .collect(),
            finished,
            submitted_today: counts.get("submitted").copied().unwrap_or(0),
            cancelled_today: counts.get("cancelled").copied().unwrap_or(0),
            timed_out_today: counts.get("timed_out").copied().unwrap_or(0),
        })
    }

    fn tick(&self, now: Millis) {
        // Sources with heartbeats go stale with no event at all: look again every 5 s.
        if now.div_euclid(1000) % 5 == 0 {
            let board = lock(&self.dashboard.board).clone();
            if board.is_some_and(|b| b.sources.iter().any(|s| s.heartbeat_every.is_some())) {
                self.dashboard.mark_dirty();
            }
        }
        let topics: Vec<Arc<Topic>> = lock(&self.topics).values().cloned().collect();
        for topic in topics {
            topic.tick(now);
        }
        if self.dashboard.frames.receiver_count() > 0 {
            let board = lock(&self.dashboard.board).clone();
            if let Some(board) = board {
                let seq = self.dashboard.seq.load(Ordering::Acquire) as i64;
                let frame = sse_frame(
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
/// one, and one choice's viewers would end up spread over the whole burst (p99 spread 281 ms at
/// 19,000 viewers; a change waited behind it too).
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

impl views::dashboard::Board {
    pub fn empty() -> Self {
        views::dashboard::Board {
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
fn sources(
    notes: &[LogEvent],
    active: &[crate::choice::Choice],
    finished: &[crate::choice::Choice],
    now: Millis,
) -> Vec<views::dashboard::SourceLine> {
    let mut lines: BTreeMap<String, views::dashboard::SourceLine> = BTreeMap::new();
    let mut heartbeats: HashMap<String, Vec<Millis>> = HashMap::new();
    let mut seen = |name: &str, at: Millis| {
        let line = lines
            .entry(name.to_string())
            .or_insert_with(|| views::dashboard::SourceLine {
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
    for c in active.iter().chain(finished) {
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
