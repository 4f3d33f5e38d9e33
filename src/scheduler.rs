//! The deadline scheduler: one task holding every pending deadline in order, sleeping until the
//! first is due or until a deadline changes (the shape of mini-redis's expiry task). A due
//! choice is expired through the engine like any other command, so a submit racing the
//! deadline is settled by the store's version check.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::{Millis, now_ms};

#[derive(Clone, Default)]
pub struct Scheduler {
    armed: Arc<Armed>,
}

/// The deadlines armed, and the bell the task sleeps on until the first one changes.
#[derive(Default)]
struct Armed {
    state: Mutex<Deadlines>,
    changed: Notify,
}

#[derive(Default)]
struct Deadlines {
    by_time: BTreeSet<(Millis, String)>,
    by_id: HashMap<String, Millis>,
}

/// What the scheduler does with a due choice; the engine implements it.
pub trait Expire: Send + Sync + 'static {
    fn expire(self: Arc<Self>, id: String);
}

/// The longest single sleep: wakes now and then so a wall-clock jump is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);

impl Scheduler {
    /// Sets (or with `None` clears) the deadline of one choice.
    pub fn arm(&self, id: &str, deadline: Option<Millis>) {
        let mut state = self.armed.state.lock().unwrap_or_else(|e| e.into_inner());
        let previous = match deadline {
            Some(d) => state.by_id.insert(id.to_string(), d),
            None => state.by_id.remove(id),
        };
        if previous == deadline {
            return;
        }
        if let Some(p) = previous {
            state.by_time.remove(&(p, id.to_string()));
        }
        let now_first =
            deadline.is_some_and(|d| state.by_time.first().is_none_or(|(first, _)| d < *first));
        if let Some(d) = deadline {
            state.by_time.insert((d, id.to_string()));
        }
        drop(state);
        if now_first {
            self.armed.changed.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        self.armed
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every deadline that is due at `now`.
    fn take_due(&self, now: Millis) -> (Vec<String>, Option<Millis>) {
        let mut state = self.armed.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        while let Some((deadline, _)) = state.by_time.first() {
            if *deadline > now {
                break;
            }
            if let Some((_, id)) = state.by_time.pop_first() {
                state.by_id.remove(&id);
                due.push(id);
            }
        }
        (due, state.by_time.first().map(|(d, _)| *d))
    }

    /// The expiry loop. Holds its target weakly, so it ends once the engine is gone.
    pub async fn run<E: Expire>(self, target: Weak<E>) {
        loop {
            let (due, next) = self.take_due(now_ms());
            let Some(target) = target.upgrade() else {
                return;
            };
            for id in due {
                target.clone().expire(id);
            }
            drop(target);
            let sleep = next.map_or(MAX_SLEEP, |d| {
                Duration::from_millis((d - now_ms()).max(0) as u64).min(MAX_SLEEP)
            });
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.armed.changed.notified() => {}
            }
        }
    }
}
