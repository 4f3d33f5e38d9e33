//! The engine's single writer: on a thread and runtime of its own, it takes every job waiting,
//! applies them all in one transaction and commits once (group commit), then answers each job
//! and publishes its change. Between nodes the store's version check settles races; within a
//! node the writer serialises them.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use super::follow::{Follow, follow_log};
use super::{Change, EngineError, Inner, Job, Op};
use crate::choice::{Choice, EventKind, Rejection};
use crate::clock::{Millis, now_ms};
use crate::live::Live;
use crate::store::{Batch, NewEvent, Writer};

/// How often a command retries when another node changed the choice between read and write.
const MAX_VERSION_RETRIES: usize = 5;
#[cfg(target_os = "linux")]
const WRITER_NICE: libc::c_int = -5;

/// The writer gets a thread and a runtime of its own. A commit is several round trips to the
/// database (on SQLite, to sqlx's worker thread), and after each one the writer is woken. On
/// the shared runtime that wake-up waits in the queue behind every request task, so under load
/// each round trip took several times its own length, and every command waits for the commit
/// before it. Here a wake-up runs the writer at once; requests keep the shared runtime.
///
/// For the same reason the thread asks the kernel for a higher priority, where it may: with
/// every core busy serving requests, each wake-up otherwise waits for a time slice too.
/// Everything waits for the writer, and it needs little CPU.
pub(super) fn spawn_writer(
    writer: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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

pub(super) async fn write_loop(
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
    let mut tx = writer.begin().await?;
    let mut plan = sort_ops(ops, now_ms());
    tx.insert_all(&plan.creates).await?;
    let (refused, stale) = apply_from_memory(&mut tx, live, &mut plan).await?;
    retry_from_store(&mut tx, live, &mut plan, refused, &stale).await?;
    append_and_commit(tx, plan).await
}

/// A batch on its way through the phases of [`write_batch`]: its ops in order, and each
/// one's outcome so far.
struct Plan<'a> {
    ops: &'a [&'a Op],
    /// Indices into `ops` in the order of their choice ids (notes first).
    order: Vec<usize>,
    now: Millis,
    /// Each op's outcome once applied, at its index in `ops`.
    applied: Vec<Option<Applied>>,
    /// New choices, to insert.
    creates: Vec<&'a Choice>,
    /// Each choice's commands, in order; a BTreeMap keeps the rows in id order.
    commands: BTreeMap<&'a str, Vec<usize>>,
}

/// Puts the ops in the order of their choice ids, applies what reads no row (creates and
/// notes), and groups the commands by choice, to apply to its row.
fn sort_ops<'a>(ops: &'a [&'a Op], now: Millis) -> Plan<'a> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| match ops[i] {
        Op::Create(choice) => choice.id.as_str(),
        Op::Command { id, .. } => id.as_str(),
        Op::Note(_) => "",
    });
    let mut applied: Vec<Option<Applied>> = (0..ops.len()).map(|_| None).collect();
    let mut creates = Vec::new();
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
    Plan {
        ops,
        order,
        now,
        applied,
        creates,
        commands,
    }
}

/// Applies each choice's commands to its row as memory holds it (read from the store on a
/// miss), and writes every changed row in one statement. Answers the choices to read again:
/// those whose refusals must be checked against the stored row, and the stale ones (another
/// node changed them first).
async fn apply_from_memory<'a>(
    tx: &mut Batch<'_>,
    live: &Live,
    plan: &mut Plan<'a>,
) -> anyhow::Result<(Vec<&'a str>, Vec<String>)> {
    let mut written = Vec::new();
    let mut again = Vec::new();
    for (&id, indices) in &plan.commands {
        let held = live.current(id).map(|c| (*c).clone());
        let from_memory = held.is_some();
        let current = match held {
            Some(choice) => Some(choice),
            None => tx.load(id).await?,
        };
        let (results, changed) = apply_commands(current, indices, plan.ops, plan.now);
        // On a shared database memory may lag another node's commit by moments: a refusal
        // is checked against the stored row before it is answered.
        if from_memory && tx.is_shared() && results.iter().any(|(_, r)| r.is_err()) {
            again.push(id);
            continue;
        }
        for (i, result) in results {
            plan.applied[i] = Some(result);
        }
        written.extend(changed);
    }
    let rows: Vec<(&Choice, i64)> = written.iter().map(|(c, v)| (c, *v)).collect();
    let stale = tx.update_all(&rows).await?;
    Ok((again, stale))
}

/// What another node changed first: reads each row again and applies its commands again, one
/// row at a time, up to `MAX_VERSION_RETRIES` times.
async fn retry_from_store<'a>(
    tx: &mut Batch<'_>,
    live: &Live,
    plan: &mut Plan<'a>,
    mut again: Vec<&'a str>,
    stale: &'a [String],
) -> anyhow::Result<()> {
    again.extend(stale.iter().map(String::as_str));
    again.sort_unstable();
    for id in again {
        let indices = &plan.commands[id];
        let mut settled = false;
        for _ in 0..MAX_VERSION_RETRIES {
            let stored = tx.load(id).await?;
            if let Some(row) = &stored {
                // Another node's commit, read before this node has followed it: memory takes
                // it now, so whoever is told "already final" here reads it as final here too.
                live.apply(&Arc::new(row.clone()), live.last_seq());
            }
            let (results, changed) = apply_commands(stored, indices, plan.ops, plan.now);
            if let Some((choice, read_version)) = &changed {
                if !tx.update(choice, *read_version).await? {
                    continue;
                }
            }
            for (i, result) in results {
                plan.applied[i] = Some(result);
            }
            settled = true;
            break;
        }
        if !settled {
            for &i in indices {
                plan.applied[i] = Some(Err(EngineError::Rejected(Rejection::Conflict(
                    "the choice is changing too fast; try again".into(),
                ))));
            }
        }
    }
    Ok(())
}

/// Appends the events of every op that applied, all in one statement, and commits: on
/// PostgreSQL the seq lock is then held only for their insert and the commit. Answers each
/// op's change or refusal, in the order of `ops`.
async fn append_and_commit(
    tx: Batch<'_>,
    mut plan: Plan<'_>,
) -> anyhow::Result<Vec<Result<Arc<Change>, EngineError>>> {
    let mut appending = Vec::new();
    let mut results: Vec<Option<Result<Arc<Change>, EngineError>>> =
        (0..plan.ops.len()).map(|_| None).collect();
    for &i in &plan.order {
        match plan.applied[i].take() {
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
