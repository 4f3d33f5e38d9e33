//! The engine: the only path that changes a choice. Transition, store, update the live state,
//! publish. It owns the [live state](crate::live), from which every read is served.
//!
//! Every create and command becomes a job for the one `writer` (on a thread of its own), which
//! takes all the jobs waiting at that moment, applies them in one transaction, commits once
//! (group commit: one fsync for many commands) and only then answers each job and publishes its
//! change. Races between nodes are settled by the store's version check; within a node the
//! writer serialises them.
//!
//! On a shared database (PostgreSQL, several nodes) the writer also *follows* the log other
//! nodes write: see [`follow`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::choice::{Actor, Choice, Command, EventKind, NewChoice, Via};
use crate::clock::now_ms;
use crate::live::{Entry, Live, Waiting};
use crate::note::Note;
use crate::scheduler::{Expire, Scheduler};
use crate::store::{LogEvent, Store};

pub mod error;
mod follow;
pub use error::EngineError;
mod writer;
use follow::{Follow, listen_loop};
use writer::{spawn_writer, write_loop};

/// One committed change: the event as logged and the choice right after it.
///
/// A change may come from another node (see [`Engine::publish_remote`]); then `choice` is
/// the row as read when this node learnt of the event, which may already include later
/// changes. Either way, for one choice the published `choice.version` never decreases.
/// Events of different choices from different nodes may arrive out of seq order; a
/// subscriber that needs the log in order reads it from the store.
#[derive(Debug)]
pub struct Change {
    pub event: LogEvent,
    /// The event's kind; `None` for events of no choice (notes).
    pub kind: Option<EventKind>,
    /// The choice right after the event; `None` for events of no choice (notes).
    pub choice: Option<Arc<Choice>>,
}

/// Receives every committed change, in seq order, synchronously after the commit. The dashboard
/// renders from it; it must not block.
pub trait Subscriber: Send + Sync + 'static {
    fn changed(&self, change: &Arc<Change>);
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    live: Live,
    jobs: mpsc::Sender<Job>,
    changes: broadcast::Sender<Arc<Change>>,
    scheduler: Scheduler,
    subscribers: std::sync::RwLock<Vec<Arc<dyn Subscriber>>>,
    listen: watch::Receiver<ListenState>,
}

/// Whether this node hears the other nodes' commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenState {
    /// A database only this node writes (SQLite): nothing to hear.
    Alone,
    /// LISTENing: other nodes' changes reach this node within moments.
    Connected,
    /// The LISTEN connection is lost (or not yet open); this node retries with backoff and
    /// catches up from its last seen seq once it is back. Reads and writes still work.
    Reconnecting,
}

impl ListenState {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenState::Alone => "alone",
            ListenState::Connected => "connected",
            ListenState::Reconnecting => "reconnecting",
        }
    }
}

enum Op {
    Create(Box<Choice>),
    Command {
        id: String,
        command: Command,
        actor: Actor,
    },
    Note(Note),
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Arc<Change>, EngineError>>,
}

/// How many jobs one transaction takes at most (`--max-batch` may lower it).
pub const MAX_BATCH: usize = 512;
/// Jobs waiting for the writer, at most; more are answered 503 at once.
const JOBS_QUEUED: usize = 8192;
/// How long start-up waits for the first LISTEN before serving degraded.
const FIRST_LISTEN_WAIT: Duration = Duration::from_secs(5);

impl Engine {
    /// Loads every active choice into the live state, and starts the writer and the deadline
    /// scheduler, arming every pending deadline (overdue ones expire at once).
    /// `presence_grace`: how long a viewer whose stream dropped is still shown as watching;
    /// `max_batch`: the most commands one commit takes (1 to `MAX_BATCH`).
    ///
    /// On a shared database it also starts following the other nodes, and waits a few seconds
    /// for the first LISTEN; if that fails it serves anyway, degraded, and keeps retrying.
    pub async fn start(
        store: Store,
        presence_grace: Duration,
        max_batch: usize,
    ) -> anyhow::Result<Engine> {
        let (jobs, rx) = mpsc::channel(JOBS_QUEUED);
        let (changes, _) = broadcast::channel(4096);
        let scheduler = Scheduler::default();
        // The seq first, then the choices: a change another node commits in between is then
        // both in memory and followed from the log, rather than in neither.
        let seen = store.last_seq().await?;
        let live = Live::load(store.clone(), seen, presence_grace).await?;
        for choice in live.active() {
            scheduler.arm(&choice.id, choice.deadline);
        }
        let shared = store.is_shared();
        let (listen_tx, listen) = watch::channel(if shared {
            ListenState::Reconnecting
        } else {
            ListenState::Alone
        });
        let inner = Arc::new(Inner {
            store: store.clone(),
            live,
            jobs,
            changes,
            scheduler: scheduler.clone(),
            subscribers: Default::default(),
            listen,
        });
        let follow = if shared {
            let (wake, woken) = mpsc::channel(1);
            tokio::spawn(listen_loop(store, wake.clone(), listen_tx));
            Some(Follow {
                seen,
                own: BTreeSet::new(),
                woken,
                wake,
            })
        } else {
            None
        };
        let max_batch = max_batch.clamp(1, MAX_BATCH);
        let connection = inner.store.writer();
        spawn_writer(write_loop(
            Arc::downgrade(&inner),
            connection,
            rx,
            follow,
            max_batch,
        ))?;
        tokio::spawn(scheduler.run(Arc::downgrade(&inner)));
        if shared {
            let mut state = inner.listen.clone();
            let first = state.wait_for(|s| *s == ListenState::Connected);
            if tokio::time::timeout(FIRST_LISTEN_WAIT, first)
                .await
                .is_err()
            {
                tracing::warn!(
                    "serving without LISTEN for now: other nodes' changes arrive once it connects"
                );
            }
        }
        Ok(Engine { inner })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The live state: every read is served from it.
    pub fn live(&self) -> &Live {
        &self.inner.live
    }

    /// The newest seq this node has published.
    pub fn last_seq(&self) -> i64 {
        self.inner.live.last_seq()
    }

    /// Whether this node hears the other nodes (for `/healthz`).
    pub fn listen_state(&self) -> ListenState {
        *self.inner.listen.borrow()
    }

    /// Every committed change from now on. A receiver that lags sees `Lagged` and must catch
    /// up from the store.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.inner.changes.subscribe()
    }

    pub fn add_subscriber(&self, subscriber: Arc<dyn Subscriber>) {
        self.inner
            .subscribers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(subscriber);
    }

    pub fn pending_deadlines(&self) -> usize {
        self.inner.scheduler.len()
    }

    pub async fn create(&self, new: NewChoice) -> Result<Arc<Choice>, EngineError> {
        let now = now_ms();
        let choice = Choice::new(crate::ids::new_choice_id(now)?, new, now);
        choice_of(self.submit_job(Op::Create(Box::new(choice))).await?)
    }

    /// Appends a program's activity note to the log.
    pub async fn note(&self, note: Note) -> Result<LogEvent, EngineError> {
        Ok(self.submit_job(Op::Note(note)).await?.event.clone())
    }

    pub async fn command(
        &self,
        id: &str,
        command: Command,
        actor: Actor,
    ) -> Result<Arc<Choice>, EngineError> {
        // Known to memory before the writer sees it, so the writer never reads it from the
        // store (and an unknown id never reaches the writer).
        self.entry(id).await?;
        choice_of(
            self.submit_job(Op::Command {
                id: id.to_string(),
                command,
                actor,
            })
            .await?,
        )
    }

    async fn submit_job(&self, op: Op) -> Result<Arc<Change>, EngineError> {
        let (reply, answer) = oneshot::channel();
        let gone = || EngineError::Internal(anyhow::anyhow!("the writer has stopped"));
        self.inner
            .jobs
            .try_send(Job { op, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => EngineError::Busy,
                mpsc::error::TrySendError::Closed(_) => gone(),
            })?;
        answer.await.map_err(|_| gone())?
    }

    /// The choice as it stands, from memory (read once from the store on a miss).
    pub async fn get(&self, id: &str) -> Result<Arc<Choice>, EngineError> {
        Ok(self.entry(id).await?.choice)
    }

    /// The choice with the parts of its page rendered once.
    pub async fn entry(&self, id: &str) -> Result<Entry, EngineError> {
        self.inner
            .live
            .entry(id)
            .await?
            .ok_or(EngineError::NotFound)
    }

    /// Answers as soon as the choice is final, or after `timeout` with its current state.
    /// Waits on the choice's own channel: other choices' changes do not wake it.
    pub async fn wait_final(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Arc<Choice>, EngineError> {
        let mut changes = match self.inner.live.wait(id).await? {
            None => return Err(EngineError::NotFound),
            Some(Waiting::Final(choice)) => return Ok(choice),
            Some(Waiting::Open(changes)) => changes,
        };
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let current = changes.borrow_and_update().clone();
            if current.status.is_final() {
                return Ok(current);
            }
            match tokio::time::timeout_at(until, changes.changed()).await {
                Ok(Ok(())) => {}
                // The time is up (or the choice was forgotten): as it stands.
                Err(_) | Ok(Err(_)) => return Ok(changes.borrow().clone()),
            }
        }
    }

    /// Retention: deletes final choices and notes older than `cutoff`, from the store and
    /// from memory together. Returns (choices, notes) deleted.
    pub async fn purge_before(&self, cutoff: crate::clock::Millis) -> anyhow::Result<(u64, u64)> {
        let (ids, notes) = self.inner.store.purge_before(cutoff).await?;
        self.inner.live.forget(&ids);
        Ok((ids.len() as u64, notes))
    }

    /// Publishes a change committed elsewhere (another node), exactly as if made here: it
    /// re-arms the deadline and reaches waiters and subscribers. The engine's own follower
    /// calls this for every event another node commits; `change.choice` should be the row as
    /// read after the event, so that a choice's published version never goes backwards.
    pub fn publish_remote(&self, change: Change) {
        self.inner.publish(Arc::new(change));
    }
}

impl Inner {
    /// Memory first, then everyone else: whoever is told of a change finds it in the live
    /// state already.
    fn publish(&self, change: Arc<Change>) {
        match &change.choice {
            Some(c) => {
                self.live.apply(c, change.event.seq);
                self.scheduler.arm(&c.id, c.deadline);
            }
            None => self.live.saw(change.event.seq),
        }
        for subscriber in self
            .subscribers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            subscriber.changed(&change);
        }
        // No receivers is fine: nobody is waiting.
        let _ = self.changes.send(change);
    }
}

impl Expire for Inner {
    fn expire(self: Arc<Self>, id: String) {
        let engine = Engine { inner: self };
        tokio::spawn(async move {
            let actor = Actor {
                via: Via::Timeout,
                by: None,
            };
            match engine.command(&id, Command::Expire, actor).await {
                Ok(_) | Err(EngineError::NotFound) => {}
                Err(EngineError::Rejected(_)) => {
                    // Another node expired, answered or moved it first (the version check let
                    // exactly one of us change it). Arm whatever deadline it has now, in case
                    // ours was stale; a final choice has none.
                    if let Ok(current) = engine.get(&id).await {
                        engine.inner.scheduler.arm(&id, current.deadline);
                    }
                }
                Err(EngineError::Busy) | Err(EngineError::Internal(_)) => {
                    // The deadline stays ours: try again shortly rather than leave it pending.
                    tracing::error!(choice = %id, "expiring failed; retrying in 1 s");
                    engine.inner.scheduler.arm(&id, Some(now_ms() + 1_000));
                }
            }
        });
    }
}

/// The choice a create or command changed.
fn choice_of(change: Arc<Change>) -> Result<Arc<Choice>, EngineError> {
    change
        .choice
        .clone()
        .ok_or_else(|| EngineError::Internal(anyhow::anyhow!("a choice change without its choice")))
}
