//! The live state: every pending or paused choice in memory, each with the frames rendered
//! from it and its own channels; the rest (final, old, unknown ids) is read from the store once
//! per miss and kept in a bounded cache. Every read is served from here.
//!
//! Only the engine changes it ([`Live::apply`], after each commit, and after following another
//! node's commit, before anything is published), so it is never ahead of the database and
//! never behind what a viewer was sent. A [`Topic`] exists for every active choice and for
//! every final one somebody is watching; the ticker retires a final topic once nobody is left,
//! and its choice moves to the cache.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{OnceCell, Semaphore, watch};

use crate::choice::{Choice, Status};
use crate::clock::{Millis, now_ms};
use crate::frame::{self, Part};
use crate::json::{GUEST, Presence};
use crate::store::Store;
use crate::views;

/// Final choices (and unknown ids) kept in memory after a read, at most.
const CACHE_SIZE: usize = 10_000;
/// Store reads for misses in flight or queued, at most; more are answered 503 at once.
const READS_QUEUED: usize = 64;
/// JSON `watchers` lists at most this many names (`viewers` still counts everyone).
const WATCHERS_LISTED: usize = 100;
/// How long a browser whose page said it was closing is still shown once its stream ends: a
/// reload says so too, and is back within this.
const CLOSING_GRACE: Duration = Duration::from_millis(500);

/// A choice as this node knows it, with the parts of its page that never change (the choice's
/// spec is fixed at creation), rendered at its first page view and kept with it.
#[derive(Clone)]
pub struct Entry {
    pub choice: Arc<Choice>,
    pub page: Arc<OnceLock<views::choice::Fixed>>,
}

/// A choice's frames as they stand: what SSE and WebSocket viewers copy onto their sockets.
#[derive(Clone, Debug)]
pub struct Frames {
    pub status: Part,
    pub remaining: Part,
    pub viewers: Part,
    /// The choice is final for good: send `close` after the status and end the stream.
    pub closed: bool,
    /// The choice these frames were rendered from, and the newest event seq they reflect.
    pub choice: Arc<Choice>,
    pub seq: i64,
    /// WebSocket `sync` (at every deadline change and every 5 s) and `status` messages.
    pub ws_sync: Part,
    pub ws_status: Part,
}

/// What a waiter gets: the final choice at once, or its choice's channel of changes.
pub enum Waiting {
    Final(Arc<Choice>),
    Open(watch::Receiver<Arc<Choice>>),
}

/// Who opened a stream: a stable key (the browser's viewer cookie) and a display name.
#[derive(Clone, Debug, Default)]
pub struct Viewer {
    pub key: Option<String>,
    pub name: Option<String>,
}

/// A live subscription to one choice's frames. Dropping it is leaving.
pub struct ChoiceWatch {
    pub frames: watch::Receiver<Frames>,
    _presence: PresenceGuard,
}

struct PresenceGuard {
    live: Live,
    id: String,
    key: String,
}

#[derive(Clone)]
pub struct Live {
    inner: Arc<Shared>,
}

struct Shared {
    store: Store,
    hot: Mutex<HashMap<String, Arc<Topic>>>,
    cold: Mutex<Cache>,
    /// One store read per missed id, however many ask at once.
    loading: Mutex<HashMap<String, Arc<Read>>>,
    reads: Semaphore,
    /// The newest event seq applied.
    seq: AtomicI64,
    /// How long a viewer who drops is still shown, in case it comes straight back.
    grace: Duration,
    next_connection: AtomicU64,
    /// Someone joined or left somewhere since the last tick (the dashboard shows counts).
    presence_moved: AtomicBool,
    /// Reads of choices not in memory (for `/metrics`).
    store_reads: AtomicU64,
}

struct Topic {
    frames: watch::Sender<Frames>,
    changes: watch::Sender<Arc<Choice>>,
    page: Arc<OnceLock<views::choice::Fixed>>,
    state: Mutex<TopicState>,
}

struct TopicState {
    choice: Arc<Choice>,
    seq: i64,
    people: HashMap<String, Person>,
    /// Computed when asked, dropped when someone joins, leaves or is renamed.
    presence: Option<Arc<Presence>>,
    /// Someone joined, left or was renamed since the last tick's presence frame.
    presence_due: bool,
    /// Taken out of the live set: changes go to its successor, not here.
    retired: bool,
    /// Nobody watches: frames are rendered when the first viewer joins, not on every change.
    frames_stale: bool,
}

struct Person {
    name: String,
    connections: u32,
    /// Bumped on every join, so a delayed leave knows whether the person came back.
    generation: u64,
    /// Its page said a tab is closing: the next stream of it to end leaves after
    /// [`CLOSING_GRACE`], not after the whole grace period.
    closing: bool,
}

/// Choices not in the live set, as last read or left: `None` for an id the store does not
/// have. First in, first out.
#[derive(Default)]
struct Cache {
    entries: HashMap<String, Option<Entry>>,
    order: VecDeque<String>,
}

impl Live {
    /// Loads every pending and paused choice, as of event `seq`.
    pub async fn load(store: Store, seq: i64, grace: Duration) -> anyhow::Result<Live> {
        let active = store.active().await?;
        let hot = active
            .into_iter()
            .map(|c| {
                let id = c.id.clone();
                (id, Arc::new(Topic::new(Arc::new(c), seq, Arc::default())))
            })
            .collect();
        Ok(Live {
            inner: Arc::new(Shared {
                store,
                hot: Mutex::new(hot),
                cold: Mutex::default(),
                loading: Mutex::default(),
                reads: Semaphore::new(READS_QUEUED),
                seq: AtomicI64::new(seq),
                grace,
                next_connection: AtomicU64::new(0),
                presence_moved: AtomicBool::new(false),
                store_reads: AtomicU64::new(0),
            }),
        })
    }

    /// The newest event seq applied here.
    pub fn last_seq(&self) -> i64 {
        self.inner.seq.load(Ordering::Acquire)
    }

    /// Takes a committed change: the choice right after event `seq`. Older or equal versions
    /// than what is held are ignored, so a choice never goes backwards.
    pub fn apply(&self, choice: &Arc<Choice>, seq: i64) {
        let shared = &self.inner;
        shared.seq.fetch_max(seq, Ordering::AcqRel);
        loop {
            let topic = lock(&shared.hot).get(&choice.id).cloned();
            if let Some(topic) = topic {
                if topic.offer(choice, seq) {
                    return;
                }
                // Retired while we looked: whoever holds the choice now gets it.
                continue;
            }
            let mut hot = lock(&shared.hot);
            if hot.contains_key(&choice.id) {
                continue;
            }
            place(&mut hot, &mut lock(&shared.cold), choice.clone(), seq);
            return;
        }
    }

    /// The seq of an event of no choice (a note): frames opened from now on carry it.
    pub fn saw(&self, seq: i64) {
        self.inner.seq.fetch_max(seq, Ordering::AcqRel);
    }

    /// The choice as held in memory, if it is: what a command applies to.
    pub fn current(&self, id: &str) -> Option<Arc<Choice>> {
        self.held(id).flatten().map(|e| e.choice)
    }

    /// The choice, from memory, or read once from the store on a miss. `Ok(None)`: no such
    /// choice. Concurrent misses for one id share one read.
    pub async fn entry(&self, id: &str) -> anyhow::Result<Option<Entry>> {
        if let Some(held) = self.held(id) {
            return Ok(held);
        }
        let shared = &self.inner;
        let cell = lock(&shared.loading)
            .entry(id.to_string())
            .or_default()
            .clone();
        let read = cell
            .get_or_try_init(|| async {
                let _permit = shared
                    .reads
                    .try_acquire()
                    .map_err(|_| anyhow::Error::new(Busy))?;
                shared.store_reads.fetch_add(1, Ordering::Relaxed);
                Ok::<_, anyhow::Error>(shared.store.get(id).await?.map(Arc::new))
            })
            .await
            .cloned();
        {
            let mut loading = lock(&shared.loading);
            if loading.get(id).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                loading.remove(id);
            }
        }
        Ok(self.install(id, read?))
    }

    /// Hot, or cached (`Some(None)`: known not to exist); `None` when it must be read.
    fn held(&self, id: &str) -> Option<Option<Entry>> {
        let shared = &self.inner;
        if let Some(topic) = lock(&shared.hot).get(id) {
            return Some(Some(topic.entry()));
        }
        lock(&shared.cold).entries.get(id).cloned()
    }

    /// Keeps what a store read returned, unless memory already holds as new a version (a
    /// change applied while the read was on its way), and answers with what is held.
    fn install(&self, id: &str, read: Option<Arc<Choice>>) -> Option<Entry> {
        let shared = &self.inner;
        let mut hot = lock(&shared.hot);
        if let Some(topic) = hot.get(id) {
            return Some(topic.entry());
        }
        let mut cold = lock(&shared.cold);
        match read {
            // An active one not here yet is another node's create, not followed yet.
            Some(choice) => Some(place(&mut hot, &mut cold, choice, self.last_seq())),
            None => match cold.entries.get(id) {
                // Held already (the read began before a create was applied): keep it.
                Some(Some(held)) => Some(held.clone()),
                _ => {
                    cold.put_missing(id);
                    None
                }
            },
        }
    }

    /// The topic of a known choice, made live if it was only cached.
    async fn topic(&self, id: &str) -> anyhow::Result<Option<(Arc<Topic>, HotGuard<'_>)>> {
        loop {
            if self.entry(id).await?.is_none() {
                return Ok(None);
            }
            let shared = &self.inner;
            let mut hot = lock(&shared.hot);
            if let Some(topic) = hot.get(id).cloned() {
                return Ok(Some((topic, hot)));
            }
            let cached = lock(&shared.cold).entries.remove(id).flatten();
            // Evicted (or forgotten) since: read again.
            let Some(entry) = cached else { continue };
            let topic = Arc::new(Topic::new(entry.choice, self.last_seq(), entry.page));
            hot.insert(id.to_string(), topic.clone());
            return Ok(Some((topic, hot)));
        }
    }

    /// Starts watching a choice's frames; the first frames received are its current state.
    /// `Ok(None)`: no such choice.
    pub async fn watch(&self, id: &str, viewer: Viewer) -> anyhow::Result<Option<ChoiceWatch>> {
        let Some((topic, hot)) = self.topic(id).await? else {
            return Ok(None);
        };
        // Subscribed under the live set's lock: the ticker cannot retire it in between.
        let frames = topic.frames.subscribe();
        drop(hot);
        let shared = &self.inner;
        let key = viewer.key.map(|k| format!("k:{k}")).unwrap_or_else(|| {
            format!(
                "c:{}",
                shared.next_connection.fetch_add(1, Ordering::Relaxed)
            )
        });
        let name = viewer
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| GUEST.to_string());
        topic.join(&key, name, self);
        Ok(Some(ChoiceWatch {
            frames,
            _presence: PresenceGuard {
                live: self.clone(),
                id: id.to_string(),
                key,
            },
        }))
    }

    /// Waits on a choice's own channel: only its changes wake the waiter. `Ok(None)`: no such
    /// choice.
    pub async fn wait(&self, id: &str) -> anyhow::Result<Option<Waiting>> {
        let shared = &self.inner;
        if let Some(entry) = self.entry(id).await? {
            if entry.choice.status.is_final() && !lock(&shared.hot).contains_key(id) {
                return Ok(Some(Waiting::Final(entry.choice)));
            }
        }
        let Some((topic, hot)) = self.topic(id).await? else {
            return Ok(None);
        };
        let changes = topic.changes.subscribe();
        drop(hot);
        let current = changes.borrow().clone();
        Ok(Some(if current.status.is_final() {
            Waiting::Final(current)
        } else {
            Waiting::Open(changes)
        }))
    }

    /// Every pending and paused choice, newest first.
    pub fn active(&self) -> Vec<Arc<Choice>> {
        let topics: Vec<Arc<Topic>> = lock(&self.inner.hot).values().cloned().collect();
        let mut active: Vec<Arc<Choice>> = topics
            .iter()
            .map(|t| lock(&t.state).choice.clone())
            .filter(|c| !c.status.is_final())
            .collect();
        active.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        active
    }

    /// Who is watching a choice right now.
    pub fn presence(&self, id: &str) -> Arc<Presence> {
        let topic = lock(&self.inner.hot).get(id).cloned();
        topic.map_or_else(Arc::default, |t| lock(&t.state).presence())
    }

    /// Choices held with their frames: every active one, and final ones being watched.
    pub fn topics(&self) -> usize {
        lock(&self.inner.hot).len()
    }

    /// Choices read from the store because memory did not hold them.
    pub fn store_reads(&self) -> u64 {
        self.inner.store_reads.load(Ordering::Relaxed)
    }

    /// Open streams and sockets on choices.
    pub fn open_streams(&self) -> usize {
        lock(&self.inner.hot)
            .values()
            .map(|t| t.frames.receiver_count())
            .sum()
    }

    /// Forgets choices the store has deleted (retention).
    pub fn forget(&self, ids: &[String]) {
        let mut hot = lock(&self.inner.hot);
        let mut cold = lock(&self.inner.cold);
        for id in ids {
            if let Some(topic) = hot.remove(id) {
                lock(&topic.state).retired = true;
            }
            cold.entries.remove(id);
        }
        let Cache { entries, order } = &mut *cold;
        order.retain(|id| entries.contains_key(id));
    }

    /// A browser changed its display name: everyone watching with it sees the new one.
    pub fn rename(&self, viewer_key: &str, name: Option<&str>) {
        let key = format!("k:{viewer_key}");
        let name = name.unwrap_or(GUEST).to_string();
        let topics: Vec<Arc<Topic>> = lock(&self.inner.hot).values().cloned().collect();
        for topic in topics {
            let mut state = lock(&topic.state);
            let Some(person) = state.people.get_mut(&key) else {
                continue;
            };
            if person.name != name {
                person.name = name.clone();
                state.presence_changed(self);
            }
        }
    }

    /// Once a second, on the wall-clock second: the countdowns of watched choices, presence
    /// frames still due, and final topics nobody watches any more go back to the cache.
    /// Answers whether anyone joined or left since the last tick.
    pub fn tick(&self, now: Millis) -> bool {
        let topics: Vec<Arc<Topic>> = lock(&self.inner.hot).values().cloned().collect();
        let mut idle = Vec::new();
        for topic in topics {
            if topic.tick(now) {
                idle.push(topic);
            }
        }
        if !idle.is_empty() {
            let mut hot = lock(&self.inner.hot);
            let mut cold = lock(&self.inner.cold);
            for topic in idle {
                let mut state = lock(&topic.state);
                if !topic.is_idle(&state) {
                    continue;
                }
                state.retired = true;
                hot.remove(&state.choice.id);
                cold.put(Entry {
                    choice: state.choice.clone(),
                    page: topic.page.clone(),
                });
            }
        }
        self.inner.presence_moved.swap(false, Ordering::AcqRel)
    }

    fn leave(&self, id: &str, key: &str) {
        let Some(topic) = lock(&self.inner.hot).get(id).cloned() else {
            return;
        };
        let (generation, grace) = {
            let mut state = lock(&topic.state);
            let Some(person) = state.people.get_mut(key) else {
                return;
            };
            person.connections = person.connections.saturating_sub(1);
            let closing = std::mem::take(&mut person.closing);
            let (left, generation) = (person.connections, person.generation);
            // One stream fewer: the count changes even while the person stays.
            state.presence_changed(self);
            if left > 0 {
                return;
            }
            let grace = if closing {
                self.closing_grace()
            } else {
                self.inner.grace
            };
            (generation, grace)
        };
        self.forget_after(topic, key, generation, grace);
    }

    /// A browser's page on a choice says its tab is closing (its beacon, `key` its viewer
    /// cookie): once that tab's stream has ended, the browser leaves after [`CLOSING_GRACE`]
    /// rather than after the whole grace period.
    pub fn closing(&self, id: &str, key: &str) {
        let key = format!("k:{key}");
        let Some(topic) = lock(&self.inner.hot).get(id).cloned() else {
            return;
        };
        let generation = {
            let mut state = lock(&topic.state);
            let Some(person) = state.people.get_mut(&key) else {
                return;
            };
            if person.connections > 0 {
                // The beacon came first: the stream's end is still on its way.
                person.closing = true;
                return;
            }
            person.generation
        };
        // The stream ended first, and its grace period is running: cut it short.
        self.forget_after(topic, &key, generation, self.closing_grace());
    }

    fn closing_grace(&self) -> Duration {
        CLOSING_GRACE.min(self.inner.grace)
    }

    /// Forgets a person who left after `grace`, unless they are back by then.
    fn forget_after(&self, topic: Arc<Topic>, key: &str, generation: u64, grace: Duration) {
        // A browser (with its viewer cookie) may be back in a moment: a blip is not a leave.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if key.starts_with("k:") && !grace.is_zero() => {
                let (live, key) = (self.clone(), key.to_string());
                runtime.spawn(async move {
                    tokio::time::sleep(grace).await;
                    topic.forget(&live, &key, generation);
                });
            }
            _ => topic.forget(self, key, generation),
        }
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        self.live.leave(&self.id, &self.key);
    }
}

/// Puts a choice the live set does not hold where it belongs, the live set if it is active,
/// the cache if final; unless the cache holds as new a version already. Answers what is held.
fn place(
    hot: &mut HashMap<String, Arc<Topic>>,
    cold: &mut Cache,
    choice: Arc<Choice>,
    seq: i64,
) -> Entry {
    let cached = cold.entries.get(&choice.id).cloned().flatten();
    if let Some(held) = cached
        .as_ref()
        .filter(|e| e.choice.version >= choice.version)
    {
        return held.clone();
    }
    // The spec never changes: the page rendered for an older version serves this one too.
    let page = cached.map(|e| e.page).unwrap_or_default();
    if choice.status.is_final() {
        let entry = Entry { choice, page };
        cold.put(entry.clone());
        entry
    } else {
        cold.entries.remove(&choice.id);
        let topic = Arc::new(Topic::new(choice, seq, page));
        let entry = topic.entry();
        hot.insert(entry.choice.id.clone(), topic);
        entry
    }
}

/// One store read, shared by everyone who missed the same id meanwhile.
type Read = OnceCell<Option<Arc<Choice>>>;

/// Holds the live set's lock while a new subscriber subscribes.
type HotGuard<'a> = std::sync::MutexGuard<'a, HashMap<String, Arc<Topic>>>;

impl Topic {
    /// A topic whose frames are rendered when its first viewer joins.
    fn new(choice: Arc<Choice>, seq: i64, page: Arc<OnceLock<views::choice::Fixed>>) -> Topic {
        let state = TopicState {
            choice: choice.clone(),
            seq,
            people: HashMap::new(),
            presence: None,
            presence_due: false,
            retired: false,
            frames_stale: true,
        };
        let frames = Frames {
            status: Part::default(),
            remaining: Part::default(),
            viewers: Part::default(),
            closed: closes(&choice),
            choice: choice.clone(),
            seq,
            ws_sync: Part::default(),
            ws_status: Part::default(),
        };
        Topic {
            frames: watch::channel(frames).0,
            changes: watch::channel(choice).0,
            page,
            state: Mutex::new(state),
        }
    }

    fn entry(&self) -> Entry {
        Entry {
            choice: lock(&self.state).choice.clone(),
            page: self.page.clone(),
        }
    }

    /// Takes a newer state of the choice and pushes its frames and its change at once. False
    /// if this topic is retired (the caller finds the one that holds the choice now).
    fn offer(&self, choice: &Arc<Choice>, seq: i64) -> bool {
        let mut state = lock(&self.state);
        if state.retired {
            return false;
        }
        if choice.version <= state.choice.version {
            return true;
        }
        let before = std::mem::replace(&mut state.choice, choice.clone());
        state.seq = state.seq.max(seq);
        self.changes.send_replace(choice.clone());
        if self.frames.receiver_count() == 0 {
            // Nobody watches: nothing to render for now.
            state.frames_stale = true;
            return true;
        }
        if state.frames_stale {
            self.render_all(&mut state);
            return true;
        }
        let now = now_ms();
        let status = render_status(&state);
        let remaining = render_remaining(&state, now);
        let closed = closes(choice);
        let ws_status = crate::json::ws_status(before.status, choice.status).map(Bytes::from);
        let countdown_moved = (before.deadline, before.paused_remaining, before.timeout_ms)
            != (choice.deadline, choice.paused_remaining, choice.timeout_ms);
        let ws_sync =
            countdown_moved.then(|| Bytes::from(crate::json::sync(choice, now).to_string()));
        let seq = state.seq;
        // Sent under the state lock, so frames of two changes never cross.
        self.frames.send_modify(|f| {
            f.status.replace(status);
            f.remaining.replace(remaining);
            f.closed = closed;
            f.choice = choice.clone();
            f.seq = seq;
            if let Some(message) = ws_status {
                f.ws_status.replace(message);
            }
            if let Some(message) = ws_sync {
                f.ws_sync.replace(message);
            }
        });
        true
    }

    /// Every part from the state as it is (the first viewer joins, or one came back).
    fn render_all(&self, state: &mut TopicState) {
        state.frames_stale = false;
        let now = now_ms();
        let status = render_status(state);
        let remaining = render_remaining(state, now);
        let viewers = render_viewers(state);
        let sync = Bytes::from(crate::json::sync(&state.choice, now).to_string());
        let (choice, seq) = (state.choice.clone(), state.seq);
        self.frames.send_modify(|f| {
            f.status.replace(status);
            f.remaining.replace(remaining);
            f.viewers.replace(viewers);
            f.ws_sync.replace(sync);
            f.closed = closes(&choice);
            f.choice = choice;
            f.seq = seq;
        });
    }

    fn join(self: &Arc<Self>, key: &str, name: String, live: &Live) {
        let mut state = lock(&self.state);
        let person = state.people.entry(key.to_string()).or_insert(Person {
            name: name.clone(),
            connections: 0,
            generation: 0,
            closing: false,
        });
        person.connections += 1;
        person.generation += 1;
        person.name = name;
        state.presence_changed(live);
        if state.frames_stale {
            // The joiner subscribed already, so from here on every change renders too. The
            // viewers frame among them counts the joiner.
            self.render_all(&mut state);
        }
    }

    /// Removes a person who has not come back.
    fn forget(self: &Arc<Self>, live: &Live, key: &str, generation: u64) {
        let mut state = lock(&self.state);
        if state
            .people
            .get(key)
            .is_some_and(|p| p.connections == 0 && p.generation == generation)
        {
            state.people.remove(key);
            state.presence_changed(live);
        }
    }

    /// One second's work; true if this topic may be retired.
    fn tick(&self, now: Millis) -> bool {
        let mut state = lock(&self.state);
        if self.frames.receiver_count() == 0 {
            // Nobody saw this second's countdown: the next viewer's first frames are rendered
            // when it joins, not left over from the last time anyone watched.
            state.frames_stale = true;
            return self.is_idle(&state);
        }
        let viewers = state.presence_due.then(|| render_viewers(&mut state));
        let remaining = (state.choice.status == Status::Pending).then(|| {
            // Sockets get a fresh `sync` every 5 s (on the wall-clock second, like the ticks).
            let sync = (now.div_euclid(1000) % 5 == 0)
                .then(|| Bytes::from(crate::json::sync(&state.choice, now).to_string()));
            (render_remaining(&state, now), sync)
        });
        if viewers.is_some() || remaining.is_some() {
            // One change: a viewer wakes once and writes both frames together.
            self.frames.send_modify(|f| {
                if let Some(frame) = viewers {
                    f.viewers.replace(frame);
                }
                if let Some((frame, sync)) = remaining {
                    f.remaining.replace(frame);
                    if let Some(sync) = sync {
                        f.ws_sync.replace(sync);
                    }
                }
            });
        }
        self.is_idle(&state)
    }

    /// Final, and nobody watching or waiting.
    fn is_idle(&self, state: &TopicState) -> bool {
        state.choice.status.is_final()
            && state.people.is_empty()
            && self.frames.receiver_count() == 0
            && self.changes.receiver_count() == 0
    }
}

impl TopicState {
    /// Someone joined, left or was renamed: the next tick sends the presence frame. Coalesced
    /// to one a second, and on the wall-clock second, so it rides in the same write as that
    /// second's countdown (in a wave of joins, one wake-up per viewer a second, not two).
    fn presence_changed(&mut self, live: &Live) {
        self.presence = None;
        self.presence_due = true;
        live.inner.presence_moved.store(true, Ordering::Release);
    }

    fn presence(&mut self) -> Arc<Presence> {
        if let Some(presence) = &self.presence {
            return presence.clone();
        }
        let mut named: Vec<&str> = self
            .people
            .values()
            .map(|p| p.name.as_str())
            .filter(|n| *n != GUEST)
            .collect();
        named.sort_by_key(|n| n.to_lowercase());
        let guests = self.people.len() - named.len();
        let watchers = named
            .into_iter()
            .map(str::to_string)
            .chain(std::iter::repeat_n(GUEST.to_string(), guests))
            .take(WATCHERS_LISTED)
            .collect();
        // Viewers are open streams and sockets; someone in their grace period still counts once.
        let viewers = self
            .people
            .values()
            .map(|p| p.connections.max(1) as usize)
            .sum();
        let presence = Arc::new(Presence {
            viewers,
            people: self.people.len(),
            watchers,
        });
        self.presence = Some(presence.clone());
        presence
    }
}

impl Cache {
    fn put(&mut self, entry: Entry) {
        let id = entry.choice.id.clone();
        self.insert(id, Some(entry));
    }

    fn put_missing(&mut self, id: &str) {
        self.insert(id.to_string(), None);
    }

    fn insert(&mut self, id: String, entry: Option<Entry>) {
        if self.entries.insert(id.clone(), entry).is_none() {
            self.order.push_back(id);
        }
        while self.entries.len() > CACHE_SIZE {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        // Ids removed by other paths leave stale places in the queue; drop them now and then.
        if self.order.len() > 2 * CACHE_SIZE {
            let entries = &self.entries;
            self.order.retain(|id| entries.contains_key(id));
        }
    }
}

/// Too many store reads are waiting already: answered 503 with `Retry-After`, at once.
#[derive(Debug)]
pub struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many reads are waiting for the database")
    }
}

impl std::error::Error for Busy {}

/// A settled choice's stream ends (a rung timer's stays open for its next round).
fn closes(c: &Choice) -> bool {
    c.is_settled()
}

fn render_status(state: &TopicState) -> Bytes {
    frame::sse(
        state.seq,
        "status",
        &views::choice::status(&state.choice).into_string(),
    )
}

fn render_remaining(state: &TopicState, now: Millis) -> Bytes {
    frame::sse(
        state.seq,
        "remaining",
        &views::choice::remaining(&state.choice, now).into_string(),
    )
}

/// The viewers frame as of now: nothing is due any more.
fn render_viewers(state: &mut TopicState) -> Bytes {
    state.presence_due = false;
    let presence = state.presence();
    frame::sse(
        state.seq,
        "viewers",
        &views::choice::viewers(&presence).into_string(),
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
