//! One choice held live: its channels of frames and of changes, and its state (the choice,
//! who watches it) from which every frame is rendered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::watch;

use super::cache::Entry;
use super::frames::{self, Due, Frames};
use super::presence::{Leave, People};
use crate::choice::Choice;
use crate::clock::{Millis, now_ms};
use crate::json::Presence;
use crate::views;

/// A live choice: viewers subscribe to `frames`, waiters to `changes`; `page` is the part of
/// its page that never changes.
pub struct Topic {
    frames: watch::Sender<Frames>,
    changes: watch::Sender<Arc<Choice>>,
    page: Arc<OnceLock<views::choice::Fixed>>,
    state: Mutex<TopicState>,
}

struct TopicState {
    choice: Arc<Choice>,
    seq: i64,
    people: People,
    /// Taken out of the live set: changes go to its successor, not here.
    retired: bool,
    /// Nobody watches: frames are rendered when the first viewer joins, not on every change.
    frames_stale: bool,
}

impl Topic {
    /// A topic whose frames are rendered when its first viewer joins.
    pub fn new(choice: Arc<Choice>, seq: i64, page: Arc<OnceLock<views::choice::Fixed>>) -> Topic {
        let frames = Frames::unrendered(&choice, seq);
        let state = TopicState {
            choice: choice.clone(),
            seq,
            people: People::default(),
            retired: false,
            frames_stale: true,
        };
        Topic {
            frames: watch::channel(frames).0,
            changes: watch::channel(choice).0,
            page,
            state: Mutex::new(state),
        }
    }

    pub fn entry(&self) -> Entry {
        Entry {
            choice: lock(&self.state).choice.clone(),
            page: self.page.clone(),
        }
    }

    pub fn choice(&self) -> Arc<Choice> {
        lock(&self.state).choice.clone()
    }

    /// Who is watching.
    pub fn presence(&self) -> Arc<Presence> {
        lock(&self.state).people.presence()
    }

    pub fn subscribe(&self) -> watch::Receiver<Frames> {
        self.frames.subscribe()
    }

    pub fn changes(&self) -> watch::Receiver<Arc<Choice>> {
        self.changes.subscribe()
    }

    /// Open streams and sockets.
    pub fn streams(&self) -> usize {
        self.frames.receiver_count()
    }

    /// Takes it out of the live set (the store deleted the choice).
    pub fn retire(&self) {
        lock(&self.state).retired = true;
    }

    /// Retires it if it is idle, answering what the cache keeps of it.
    pub fn retire_if_idle(&self) -> Option<Entry> {
        let mut state = lock(&self.state);
        if !self.is_idle(&state) {
            return None;
        }
        state.retired = true;
        Some(Entry {
            choice: state.choice.clone(),
            page: self.page.clone(),
        })
    }

    /// Takes a newer state of the choice and pushes its frames and its change at once. False
    /// if this topic is retired (the caller finds the one that holds the choice now).
    pub fn offer(&self, choice: &Arc<Choice>, seq: i64) -> bool {
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
        self.send(&state, None, now_ms(), Due::change(&before, choice));
        true
    }

    /// Every part from the state as it is (the first viewer joins, or one came back).
    fn render_all(&self, state: &mut TopicState) {
        state.frames_stale = false;
        let presence = state.people.settle();
        self.send(state, Some(&presence), now_ms(), Due::all());
    }

    /// Renders the parts due and sends them as one change: a viewer wakes once and writes them
    /// together. Rendered before the frames' lock is taken (every viewer reads through it),
    /// and sent under the state lock, so frames of two changes never cross.
    fn send(&self, state: &TopicState, presence: Option<&Presence>, now: Millis, due: Due) {
        let rendered = frames::render(&state.choice, state.seq, presence, now, due);
        if !rendered.is_empty() {
            self.frames.send_modify(|f| rendered.write(f));
        }
    }

    /// One more stream of `key`; `moved` notes that someone joined somewhere.
    pub fn join(&self, key: &str, name: String, moved: &AtomicBool) {
        let mut state = lock(&self.state);
        let changed = state.people.join(key, name);
        note(moved, changed);
        if state.frames_stale {
            // The joiner subscribed already, so from here on every change renders too. The
            // viewers frame among them counts the joiner.
            self.render_all(&mut state);
        }
    }

    /// One stream of `key` ended.
    pub fn leave(&self, key: &str, moved: &AtomicBool) -> Leave {
        let leave = lock(&self.state).people.leave(key);
        note(moved, !matches!(leave, Leave::Absent));
        leave
    }

    /// `key`'s page says its tab is closing: the generation to forget early, if its streams
    /// have ended already.
    pub fn closing(&self, key: &str) -> Option<u64> {
        lock(&self.state).people.closing(key)
    }

    /// Removes a person who has not come back.
    pub fn forget(&self, key: &str, generation: u64, moved: &AtomicBool) {
        let changed = lock(&self.state).people.forget(key, generation);
        note(moved, changed);
    }

    pub fn rename(&self, key: &str, name: &str, moved: &AtomicBool) {
        let changed = lock(&self.state).people.rename(key, name);
        note(moved, changed);
    }

    /// One second's work; true if this topic may be retired.
    pub fn tick(&self, now: Millis) -> bool {
        let mut state = lock(&self.state);
        if self.frames.receiver_count() == 0 {
            // Nobody saw this second's countdown: the next viewer's first frames are rendered
            // when it joins, not left over from the last time anyone watched.
            state.frames_stale = true;
            return self.is_idle(&state);
        }
        let presence = state.people.due().then(|| state.people.settle());
        let due = Due::second(&state.choice, now);
        self.send(&state, presence.as_deref(), now, due);
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

/// Someone joined, left or was renamed somewhere since the last tick (the dashboard shows
/// counts).
fn note(moved: &AtomicBool, changed: bool) {
    if changed {
        moved.store(true, Ordering::Release);
    }
}

/// Locks, going on past a panic elsewhere.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
