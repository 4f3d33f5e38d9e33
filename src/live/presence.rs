//! Who watches one choice, as plain data: the people behind its streams, their names and
//! connections, and the [`Presence`] shown of them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::json::{GUEST, Presence};

/// JSON `watchers` lists at most this many names (`viewers` still counts everyone).
const WATCHERS_LISTED: usize = 100;

/// The people watching one choice, by key (a browser's viewer cookie, or one connection).
/// Every method that changes who is shown answers true, so the caller can note that someone
/// joined or left somewhere.
#[derive(Default)]
pub struct People {
    people: HashMap<String, Person>,
    /// Computed when asked, dropped when someone joins, leaves or is renamed.
    presence: Option<Arc<Presence>>,
    /// Someone joined, left or was renamed since the last tick's presence frame.
    presence_due: bool,
}

struct Person {
    name: String,
    connections: u32,
    /// Bumped on every join, so a delayed leave knows whether the person came back.
    generation: u64,
    /// Its page said a tab is closing: the next stream of it to end leaves after the short
    /// closing grace, not after the whole grace period.
    closing: bool,
}

/// What one stream's end did.
pub enum Leave {
    /// Nobody of that key is here (forgotten already).
    Absent,
    /// The person has other streams open.
    Stays,
    /// That was the person's last stream: forget them after a grace period, unless they are
    /// back by then (`generation` still theirs). `closing`: their page said it was closing,
    /// so the short grace.
    Gone { generation: u64, closing: bool },
}

impl People {
    /// One more stream of `key`, now called `name`.
    pub fn join(&mut self, key: &str, name: String) -> bool {
        let person = self.people.entry(key.to_string()).or_insert(Person {
            name: name.clone(),
            connections: 0,
            generation: 0,
            closing: false,
        });
        person.connections += 1;
        person.generation += 1;
        person.name = name;
        self.changed()
    }

    /// One stream of `key` fewer. Changes who is shown unless [`Leave::Absent`].
    pub fn leave(&mut self, key: &str) -> Leave {
        let Some(person) = self.people.get_mut(key) else {
            return Leave::Absent;
        };
        person.connections = person.connections.saturating_sub(1);
        let closing = std::mem::take(&mut person.closing);
        let (left, generation) = (person.connections, person.generation);
        // One stream fewer: the count changes even while the person stays.
        self.changed();
        if left > 0 {
            return Leave::Stays;
        }
        Leave::Gone {
            generation,
            closing,
        }
    }

    /// `key`'s page says its tab is closing. Answers the generation to forget early when its
    /// streams have ended already; otherwise the next one to end leaves early.
    pub fn closing(&mut self, key: &str) -> Option<u64> {
        let person = self.people.get_mut(key)?;
        if person.connections > 0 {
            // The beacon came first: the stream's end is still on its way.
            person.closing = true;
            return None;
        }
        Some(person.generation)
    }

    /// Removes a person who has not come back since `generation`.
    pub fn forget(&mut self, key: &str, generation: u64) -> bool {
        if self
            .people
            .get(key)
            .is_some_and(|p| p.connections == 0 && p.generation == generation)
        {
            self.people.remove(key);
            return self.changed();
        }
        false
    }

    /// A browser changed its display name.
    pub fn rename(&mut self, key: &str, name: &str) -> bool {
        let Some(person) = self.people.get_mut(key) else {
            return false;
        };
        if person.name == name {
            return false;
        }
        person.name = name.to_string();
        self.changed()
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// Whether the presence frame is due.
    pub fn due(&self) -> bool {
        self.presence_due
    }

    /// The presence for a frame about to be rendered: nothing is due any more.
    pub fn settle(&mut self) -> Arc<Presence> {
        self.presence_due = false;
        self.presence()
    }

    /// Someone joined, left or was renamed: the next tick sends the presence frame. Coalesced
    /// to one a second, and on the wall-clock second, so it rides in the same write as that
    /// second's countdown (in a wave of joins, one wake-up per viewer a second, not two).
    fn changed(&mut self) -> bool {
        self.presence = None;
        self.presence_due = true;
        true
    }

    pub fn presence(&mut self) -> Arc<Presence> {
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
