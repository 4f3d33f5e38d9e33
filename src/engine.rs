//! The engine: the only path that changes a choice. Load, transition, store, publish.
//!
//! Every create and command becomes a job for one writer task, which takes all the jobs waiting
//! at that moment, applies them in one transaction, commits once (group commit: one fsync for
//! many commands) and only then answers each job and publishes its change. Races between
//! nodes are settled by the store's version check; within a node the writer serialises them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::choice::{Actor, Choice, Command, EventKind, NewChoice, Rejection, Via};
use crate::clock::now_ms;
use crate::scheduler::{Expire, Scheduler};
use crate::store::{LogEvent, NewEvent, Store};

/// One committed change: the event as logged and the choice right after it.
#[derive(Debug)]
pub struct Change {
    pub event: LogEvent,
    pub choice: Arc<Choice>,
}

#[derive(Debug)]
pub enum EngineError {
    NotFound,
    Rejected(Rejection),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for EngineError {
    fn from(e: anyhow::Error) -> Self {
        EngineError::Internal(e)
    }
}

/// Receives every committed change, in seq order, synchronously after the commit. The hub
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
    jobs: mpsc::Sender<Job>,
    changes: broadcast::Sender<Arc<Change>>,
    scheduler: Scheduler,
    subscribers: std::sync::RwLock<Vec<Arc<dyn Subscriber>>>,
    last_seq: AtomicI64,
}

enum Op {
    Create(Choice),
    Command {
        id: String,
        command: Command,
        actor: Actor,
    },
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Arc<Choice>, EngineError>>,
}

/// How many jobs one transaction takes at most.
const MAX_BATCH: usize = 512;
/// How often a command retries when another node changed the choice between read and write.
const MAX_VERSION_RETRIES: usize = 5;

impl Engine {
    /// Starts the writer and the deadline scheduler, arming every pending deadline in the
    /// store (overdue ones expire at once).
    pub async fn start(store: Store) -> anyhow::Result<Engine> {
        let (jobs, rx) = mpsc::channel(4096);
        let (changes, _) = broadcast::channel(4096);
        let scheduler = Scheduler::default();
        for (id, deadline) in store.pending_deadlines().await? {
            scheduler.arm(&id, Some(deadline));
        }
        let last_seq = AtomicI64::new(store.last_seq().await?);
        let inner = Arc::new(Inner {
            store,
            jobs,
            changes,
            scheduler: scheduler.clone(),
            subscribers: Default::default(),
            last_seq,
        });
        tokio::spawn(write_loop(Arc::downgrade(&inner), rx));
        tokio::spawn(scheduler.run(Arc::downgrade(&inner)));
        Ok(Engine { inner })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The newest seq this node has published.
    pub fn last_seq(&self) -> i64 {
        self.inner.last_seq.load(Ordering::Acquire)
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
        let choice = Choice::new(new_id()?, new, now_ms());
        self.submit_job(Op::Create(choice)).await
    }

    pub async fn command(
        &self,
        id: &str,
        command: Command,
        actor: Actor,
    ) -> Result<Arc<Choice>, EngineError> {
        self.submit_job(Op::Command {
            id: id.to_string(),
            command,
            actor,
        })
        .await
    }

    async fn submit_job(&self, op: Op) -> Result<Arc<Choice>, EngineError> {
        let (reply, answer) = oneshot::channel();
        let gone = || EngineError::Internal(anyhow::anyhow!("the writer has stopped"));
        self.inner
            .jobs
            .send(Job { op, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    pub async fn get(&self, id: &str) -> Result<Choice, EngineError> {
        self.inner.store.get(id).await?.ok_or(EngineError::NotFound)
    }

    /// Answers as soon as the choice is final, or after `timeout` with its current state.
    pub async fn wait_final(&self, id: &str, timeout: Duration) -> Result<Choice, EngineError> {
        let mut changes = self.subscribe();
        let current = self.get(id).await?;
        if current.status.is_final() {
            return Ok(current);
        }
        let until = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(until, changes.recv()).await {
                Err(_) => return self.get(id).await,
                Ok(Ok(change)) => {
                    if change.choice.id == id && change.choice.status.is_final() {
                        return Ok((*change.choice).clone());
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    let current = self.get(id).await?;
                    if current.status.is_final() {
                        return Ok(current);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return self.get(id).await,
            }
        }
    }

    /// Publishes a change committed elsewhere (another node), exactly as if made here.
    pub fn publish_remote(&self, change: Change) {
        self.inner.publish(Arc::new(change));
    }
}

impl Inner {
    fn publish(&self, change: Arc<Change>) {
        self.last_seq.fetch_max(change.event.seq, Ordering::AcqRel);
        let c = &change.choice;
        self.scheduler.arm(&c.id, c.deadline);
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
            if let Err(EngineError::Internal(e)) = engine.command(&id, Command::Expire, actor).await
            {
                // The deadline stays ours: try again shortly rather than leave it pending.
                tracing::error!(choice = %id, error = %format!("{e:#}"), "expiring failed; retrying in 1 s");
                engine.inner.scheduler.arm(&id, Some(now_ms() + 1_000));
            }
        });
    }
}

/// The batch cap: `MAX_BATCH`, or less through the undocumented `CHOICEBOARD_MAX_BATCH`, which
/// the benchmark sets to 1 to measure one commit per command (group commit off).
fn max_batch() -> usize {
    std::env::var("CHOICEBOARD_MAX_BATCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(MAX_BATCH, |n| n.clamp(1, MAX_BATCH))
}

async fn write_loop(inner: Weak<Inner>, mut jobs: mpsc::Receiver<Job>) {
    let max_batch = max_batch();
    let mut batch = Vec::with_capacity(max_batch);
    while jobs.recv_many(&mut batch, max_batch).await > 0 {
        let Some(inner) = inner.upgrade() else { return };
        let ops: Vec<&Op> = batch.iter().map(|job| &job.op).collect();
        match write_batch(&inner.store, &ops).await {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let answer = result.map(|change| {
                        let choice = change.choice.clone();
                        inner.publish(change);
                        choice
                    });
                    let _ = job.reply.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), jobs = batch.len(), "a write batch failed; nothing in it was stored");
                for job in batch.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(EngineError::Internal(anyhow::anyhow!("{e:#}"))));
                }
            }
        }
    }
}

/// Applies every op in one transaction. The outer error means nothing was stored; inner ones
/// are the ops' own refusals.
async fn write_batch(
    store: &Store,
    ops: &[&Op],
) -> anyhow::Result<Vec<Result<Arc<Change>, EngineError>>> {
    let mut tx = store.begin().await?;
    let mut applied: Vec<Result<(EventKind, Choice, i64), EngineError>> =
        Vec::with_capacity(ops.len());
    for op in ops {
        let now = now_ms();
        applied.push(match op {
            Op::Create(choice) => {
                tx.insert(choice).await?;
                Ok((EventKind::Created, choice.clone(), choice.created_at))
            }
            Op::Command { id, command, actor } => {
                apply_command(&mut tx, id, command, actor, now).await?
            }
        });
    }
    // Events are appended after every row is written, so on PostgreSQL the seq lock is held
    // only for the inserts and the commit.
    let mut results = Vec::with_capacity(ops.len());
    let mut last_seq = None;
    for item in applied {
        results.push(match item {
            Ok((kind, choice, at)) => {
                let data = crate::json::event_data(kind, &choice, at);
                let event = NewEvent {
                    at,
                    choice_id: Some(&choice.id),
                    kind: kind.as_str(),
                    data,
                };
                let event = tx.append(event).await?;
                last_seq = Some(event.seq);
                Ok(Arc::new(Change {
                    event,
                    choice: Arc::new(choice),
                }))
            }
            Err(e) => Err(e),
        });
    }
    tx.commit(last_seq).await?;
    Ok(results)
}

async fn apply_command(
    tx: &mut crate::store::Batch,
    id: &str,
    command: &Command,
    actor: &Actor,
    now: i64,
) -> anyhow::Result<Result<(EventKind, Choice, i64), EngineError>> {
    for _ in 0..MAX_VERSION_RETRIES {
        let Some(mut choice) = tx.load(id).await? else {
            return Ok(Err(EngineError::NotFound));
        };
        let read_version = choice.version;
        let kind = match choice.apply(command.clone(), actor, now) {
            Ok(kind) => kind,
            Err(rejection) => return Ok(Err(EngineError::Rejected(rejection))),
        };
        if tx.update(&choice, read_version).await? {
            return Ok(Ok((kind, choice, now)));
        }
    }
    Ok(Err(EngineError::Rejected(Rejection::Conflict(
        "the choice is changing too fast; try again".into(),
    ))))
}

/// A new choice id: 128 random bits, URL-safe base64 (22 characters).
pub fn new_id() -> anyhow::Result<String> {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for an id: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
