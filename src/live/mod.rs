//! The live state: every pending or paused choice in memory, each with the frames rendered
//! from it and its own channels; the rest (final, old, unknown ids) is read from the store once
//! per miss and kept in a bounded cache. Every read is served from here.
//!
//! Only the engine changes it ([`Live::apply`], after each commit, and after following another
//! node's commit, before anything is published), so it is never ahead of the database and
//! never behind what a viewer was sent. A [`Topic`] exists for every active choice and for
//! every final one somebody is watching; the ticker retires a final topic once nobody is left,
//! and its choice moves to the cache.
//!
//! By job: `cache` (the cold side), `topic` (one live choice and its channels), `frames` (the
//! frames viewers read, and the one function that renders them), `presence` (who watches).

mod cache;
mod frames;
mod presence;
mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OnceCell, Semaphore, watch};

use crate::choice::Choice;
use crate::clock::Millis;
use crate::json::{GUEST, Presence};
use crate::store::Store;

use cache::Cache;
pub use cache::Entry;
pub use frames::Frames;
use presence::Leave;
use topic::{Topic, lock};

/// Store reads for misses in flight or queued, at most; more are answered 503 at once.
const READS_QUEUED: usize = 64;
/// How long a browser whose page said it was closing is still shown once its stream ends: a
/// reload says so too, and is back within this.
const CLOSING_GRACE: Duration = Duration::from_millis(500);

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
    inner: Arc<LiveState>,
}

/// Everything a [`Live`] handle shares: the live set, the cache, reads in flight, counters.
struct LiveState {
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
            inner: Arc::new(LiveState {
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
        lock(&shared.cold).get(id).cloned()
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
            None => match cold.get(id) {
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
            let cached = lock(&shared.cold).remove(id).flatten();
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
        let frames = topic.subscribe();
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
        topic.join(&key, name, &shared.presence_moved);
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
        let changes = topic.changes();
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
            .map(|t| t.choice())
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
        topic.map_or_else(Arc::default, |t| t.presence())
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
        lock(&self.inner.hot).values().map(|t| t.streams()).sum()
    }

    /// Forgets choices the store has deleted (retention).
    pub fn forget(&self, ids: &[String]) {
        let mut hot = lock(&self.inner.hot);
        let mut cold = lock(&self.inner.cold);
        for id in ids {
            if let Some(topic) = hot.remove(id) {
                topic.retire();
            }
        }
        cold.forget(ids);
    }

    /// A browser changed its display name: everyone watching with it sees the new one.
    pub fn rename(&self, viewer_key: &str, name: Option<&str>) {
        let key = format!("k:{viewer_key}");
        let name = name.unwrap_or(GUEST).to_string();
        let topics: Vec<Arc<Topic>> = lock(&self.inner.hot).values().cloned().collect();
        for topic in topics {
            topic.rename(&key, &name, &self.inner.presence_moved);
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
                if let Some(entry) = topic.retire_if_idle() {
                    hot.remove(&entry.choice.id);
                    cold.put(entry);
                }
            }
        }
        self.inner.presence_moved.swap(false, Ordering::AcqRel)
    }

    fn leave(&self, id: &str, key: &str) {
        let Some(topic) = lock(&self.inner.hot).get(id).cloned() else {
            return;
        };
        let Leave::Gone {
            generation,
            closing,
        } = topic.leave(key, &self.inner.presence_moved)
        else {
            return;
        };
        let grace = if closing {
            self.closing_grace()
        } else {
            self.inner.grace
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
        let Some(generation) = topic.closing(&key) else {
            return;
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
                    topic.forget(&key, generation, &live.inner.presence_moved);
                });
            }
            _ => topic.forget(key, generation, &self.inner.presence_moved),
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
    let cached = cold.get(&choice.id).cloned().flatten();
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
        cold.remove(&choice.id);
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

/// Too many store reads are waiting already: answered 503 with `Retry-After`, at once.
#[derive(Debug)]
pub struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many reads are waiting for the database")
    }
}

impl std::error::Error for Busy {}
