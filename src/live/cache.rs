//! The cold side of the live state: choices not in the live set (final ones, unknown ids), as
//! last read or left, in a bounded first-in, first-out cache.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use crate::choice::Choice;
use crate::views;

/// Final choices (and unknown ids) kept in memory after a read, at most.
const CACHE_SIZE: usize = 10_000;

/// A choice as this node knows it, with the parts of its page that never change (the choice's
/// spec is fixed at creation), rendered at its first page view and kept with it.
#[derive(Clone)]
pub struct Entry {
    pub choice: Arc<Choice>,
    pub page: Arc<OnceLock<views::choice::Fixed>>,
}

/// Choices not in the live set, as last read or left: `None` for an id the store does not
/// have. First in, first out.
#[derive(Default)]
pub struct Cache {
    entries: HashMap<String, Option<Entry>>,
    order: VecDeque<String>,
}

impl Cache {
    /// `Some(None)`: known not to exist; `None`: not cached.
    pub fn get(&self, id: &str) -> Option<&Option<Entry>> {
        self.entries.get(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<Option<Entry>> {
        self.entries.remove(id)
    }

    /// Forgets choices the store has deleted.
    pub fn forget(&mut self, ids: &[String]) {
        for id in ids {
            self.entries.remove(id);
        }
        let Cache { entries, order } = self;
        order.retain(|id| entries.contains_key(id));
    }

    pub fn put(&mut self, entry: Entry) {
        let id = entry.choice.id.clone();
        self.insert(id, Some(entry));
    }

    pub fn put_missing(&mut self, id: &str) {
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
