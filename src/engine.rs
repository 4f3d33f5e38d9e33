//! The engine: the only path that changes a choice. Transition, store, update the live state,
//! publish. It owns the [live state](crate::live), from which every read is served.
//!
//! Every create and command becomes a job for one writer (on a thread of its own), which takes
//! all the jobs waiting at that moment, applies them in one transaction, commits once (group
//! commit: one fsync for many commands) and only then answers each job and publishes its change.
//! Races between nodes are settled by the store's version check; within a node the writer
//! serialises them.
//!
//! On a shared database (PostgreSQL, several nodes) the writer also *follows* the log other
//! nodes write: see [`follow`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::choice::{Actor, Choice, Command, EventKind, NewChoice, Rejection, Via};
use crate::clock::now_ms;
use crate::live::{Entry, Live, Waiting};
use crate::note::Note;
use crate::scheduler::{Expire, Scheduler};
use crate::store::{LogEvent, NewEvent, Store, Writer};

pub mod error;
mod follow;
pub use error::EngineError;
use follow::{Follow, follow_log, listen_loop};

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
/// How often a command retries when another node changed the choice between read and write.
const MAX_VERSION_RETRIES: usize = 5;
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

/// The writer gets a thread and a runtime of its own. A commit is several round trips to the
/// database (on SQLite, to sqlx's worker thread), and after each one the writer is woken. On
/// the shared runtime that wake-up waits in the queue behind every request task, so under load
/// each round trip took several times its own length, and every command waits for the commit
/// before it. Here a wake-up runs the writer at once; requests keep the shared runtime.
///
/// For the same reason the thread asks the kernel for a higher priority, where it may: with
/// every core busy serving requests, each wake-up otherwise waits for a time slice too.
/// Everything waits for the writer, and it needs little CPU.
fn spawn_writer(writer: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the writer's runtime")?;
    std::thread::Builder::new()
        .name("choiceboard-writer".into())
        .spawn(move || {
            raise_priority();
            runtime.block_on(writer)
        })
        .context("cannot start the writer's thread")?;
    Ok(())
}

/// Raises the calling thread's priority (on Linux, nice applies per thread, and threads it
/// starts inherit it). Without the privilege to, it stays as it is.
fn raise_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; `0` names the calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WRITER_NICE) } != 0 {
        tracing::debug!("the writer runs at normal priority (no privilege to raise it)");
    }
}

#[cfg(target_os = "linux")]
const WRITER_NICE: libc::c_int = -5;

async fn write_loop(
    inner: Weak<Inner>,
    mut writer: Writer,
    mut jobs: mpsc::Receiver<Job>,
    mut follow: Option<Follow>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        // Both branches are cancel-safe; `select!` picks fairly, so neither starves.
        let follow_due = match follow.as_mut() {
            Some(f) => tokio::select! {
                n = jobs.recv_many(&mut batch, max_batch) => {
                    if n == 0 {
                        return;
                    }
                    false
                }
                Some(()) = f.woken.recv() => true,
            },
            None => {
                if jobs.recv_many(&mut batch, max_batch).await == 0 {
                    return;
                }
                false
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        if !batch.is_empty() {
            write_jobs(&inner, &mut writer, &mut batch, follow.as_mut()).await;
        }
        if let (true, Some(f)) = (follow_due, follow.as_mut()) {
            if let Err(e) = follow_log(&inner, f).await {
                tracing::error!(error = %format!("{e:#}"), "reading other nodes' changes failed; retrying in 1 s");
                let wake = f.wake.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = wake.try_send(());
                });
            }
        }
    }
}

async fn write_jobs(
    inner: &Inner,
    writer: &mut Writer,
    batch: &mut Vec<Job>,
    mut follow: Option<&mut Follow>,
) {
    let ops: Vec<&Op> = batch.iter().map(|job| &job.op).collect();
    match write_batch(writer, &inner.live, &ops).await {
        Ok(results) => {
            for (job, result) in batch.drain(..).zip(results) {
                let answer = result.inspect(|change| {
                    if let Some(f) = follow.as_deref_mut() {
                        f.own.insert(change.event.seq);
                    }
                    inner.publish(change.clone());
                });
                let _ = job.reply.send(answer);
            }
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), jobs = batch.len(), "a write batch failed; nothing in it was stored");
            writer.reset();
            for job in batch.drain(..) {
                let _ = job
                    .reply
                    .send(Err(EngineError::Internal(anyhow::anyhow!("{e:#}"))));
            }
        }
    }
}

/// One op applied in the transaction, its event still to be appended; or why not.
type Applied = Result<Applying, EngineError>;

struct Applying {
    /// `None` for a note.
    kind: Option<EventKind>,
    source: Option<String>,
    /// The choice after the change; none for a note.
    choice: Option<Choice>,
    at: i64,
    data: serde_json::Value,
}

impl Applying {
    fn choice(kind: EventKind, choice: Choice, at: i64) -> Applying {
        let data = crate::json::event_data(kind, &choice, at);
        Applying {
            kind: Some(kind),
            source: choice.spec.source.clone(),
            choice: Some(choice),
            at,
            data,
        }
    }
}

/// Applies every op in one transaction. The outer error means nothing was stored; inner ones
/// are the ops' own refusals. Results come in the order of `ops`.
///
/// Commands apply to the rows as memory holds them (read from the store only when memory does
/// not hold one), several commands on one choice one after the other, and every changed row
/// is written once, with the version check against the version it was read at. A row that
/// another node changed in between is read again and its commands applied again. Rows are
/// touched in the order of their choice ids, so two nodes' batches lock shared rows in the
/// same order and never deadlock each other on PostgreSQL.
async fn write_batch(
    writer: &mut Writer,
    live: &Live,
    ops: &[&Op],
) -> anyhow::Result<Vec<Result<Arc<Change>, EngineError>>> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| match ops[i] {
        Op::Create(choice) => choice.id.as_str(),
        Op::Command { id, .. } => id.as_str(),
        Op::Note(_) => "",
    });
    let mut tx = writer.begin().await?;
    let now = now_ms();
    let mut applied: Vec<Option<Applied>> = (0..ops.len()).map(|_| None).collect();
    let mut creates = Vec::new();
    // Each choice's commands, in order; a BTreeMap keeps the rows in id order.
    let mut commands: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in &order {
        match ops[i] {
            Op::Create(choice) => {
                creates.push(&**choice);
                applied[i] = Some(Ok(Applying::choice(
                    EventKind::Created,
                    (**choice).clone(),
                    choice.created_at,
                )));
            }
            Op::Note(note) => {
                applied[i] = Some(Ok(Applying {
                    kind: None,
                    source: Some(note.source.clone()),
                    choice: None,
                    at: now,
                    data: note.data(),
                }))
            }
            Op::Command { id, .. } => commands.entry(id.as_str()).or_default().push(i),
        }
    }
    tx.insert_all(&creates).await?;
    // First against memory, every changed row in one write.
    let mut written = Vec::new();
    let mut again = Vec::new();
    for (&id, indices) in &commands {
        let held = live.current(id).map(|c| (*c).clone());
        let from_memory = held.is_some();
        let current = match held {
            Some(choice) => Some(choice),
            None => tx.load(id).await?,
        };
        let (results, changed) = apply_commands(current, indices, ops, now);
        // On a shared database memory may lag another node's commit by moments: a refusal
        // is checked against the stored row before it is answered.
        if from_memory && tx.is_shared() && results.iter().any(|(_, r)| r.is_err()) {
            again.push(id);
            continue;
        }
        for (i, result) in results {
            applied[i] = Some(result);
        }
        written.extend(changed);
    }
    let rows: Vec<(&Choice, i64)> = written.iter().map(|(c, v)| (c, *v)).collect();
    let stale = tx.update_all(&rows).await?;
    again.extend(stale.iter().map(String::as_str));
    again.sort_unstable();
    // Then what another node changed first: read again, apply again, one row at a time.
    for id in again {
        let indices = &commands[id];
        let mut settled = false;
        for _ in 0..MAX_VERSION_RETRIES {
            let stored = tx.load(id).await?;
            if let Some(row) = &stored {
                // Another node's commit, read before this node has followed it: memory takes
                // it now, so whoever is told "already final" here reads it as final here too.
                live.apply(&Arc::new(row.clone()), live.last_seq());
            }
            let (results, changed) = apply_commands(stored, indices, ops, now);
            if let Some((choice, read_version)) = &changed {
                if !tx.update(choice, *read_version).await? {
                    continue;
                }
            }
            for (i, result) in results {
                applied[i] = Some(result);
            }
            settled = true;
            break;
        }
        if !settled {
            for &i in indices {
                applied[i] = Some(Err(EngineError::Rejected(Rejection::Conflict(
                    "the choice is changing too fast; try again".into(),
                ))));
            }
        }
    }
    // Events last, all in one statement: on PostgreSQL the seq lock is then held only for
    // their insert and the commit.
    let mut appending = Vec::new();
    let mut results: Vec<Option<Result<Arc<Change>, EngineError>>> =
        (0..ops.len()).map(|_| None).collect();
    for &i in &order {
        match applied[i].take() {
            Some(Ok(applying)) => appending.push((i, applying)),
            Some(Err(e)) => results[i] = Some(Err(e)),
            None => anyhow::bail!("internal: op {i} of the batch was not applied"),
        }
    }
    let events = appending
        .iter()
        .map(|(_, applying)| NewEvent {
            at: applying.at,
            choice_id: applying.choice.as_ref().map(|c| c.id.as_str()),
            source: applying.source.as_deref(),
            kind: applying.kind.map_or(crate::note::KIND, EventKind::as_str),
            data: applying.data.clone(),
        })
        .collect();
    let events = tx.commit(events).await?;
    for ((i, applying), event) in appending.into_iter().zip(events) {
        results[i] = Some(Ok(Arc::new(Change {
            event,
            kind: applying.kind,
            choice: applying.choice.map(Arc::new),
        })));
    }
    Ok(results.into_iter().flatten().collect())
}

/// A changed row, and the version it was read at (the version check).
type Written = (Choice, i64);

/// Applies a choice's commands one after the other to `current`; answers each one's outcome
/// and, if any changed it, the choice after the last with the version it was read at.
fn apply_commands(
    current: Option<Choice>,
    indices: &[usize],
    ops: &[&Op],
    now: i64,
) -> (Vec<(usize, Applied)>, Option<Written>) {
    let Some(mut choice) = current else {
        let missing = indices.iter().map(|&i| (i, Err(EngineError::NotFound)));
        return (missing.collect(), None);
    };
    let read_version = choice.version;
    let mut results = Vec::with_capacity(indices.len());
    for &i in indices {
        let Op::Command { command, actor, .. } = ops[i] else {
            continue;
        };
        let mut next = choice.clone();
        match next.apply(command.clone(), actor, now) {
            Ok(kind) => {
                choice = next;
                results.push((i, Ok(Applying::choice(kind, choice.clone(), now))));
            }
            Err(rejection) => results.push((i, Err(EngineError::Rejected(rejection)))),
        }
    }
    let changed = (choice.version != read_version).then_some((choice, read_version));
    (results, changed)
}

/// The choice a create or command changed.
fn choice_of(change: Arc<Change>) -> Result<Arc<Choice>, EngineError> {
    change
        .choice
        .clone()
        .ok_or_else(|| EngineError::Internal(anyhow::anyhow!("a choice change without its choice")))
}
