//! Pushes to phones: when a choice is created, and when one has less than a minute left
//! unanswered, POST a short message to every `--notify-url`. The body and headers follow ntfy's
//! publishing format (plain text, `Title`, `Click`, `Priority`, `Tags`), so an ntfy topic pushes
//! it to a phone and any webhook receives it too.
//!
//! Delivery never delays a command: the engine hands each change over synchronously, pushes
//! wait in a bounded queue, and one task delivers them with retries and backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::choice::{Choice, EventKind, Status};
use crate::clock::{Millis, now_ms};
use crate::engine::{Change, Subscriber};
use crate::scheduler::{Expire, Scheduler};

/// Warn when this much time is left.
const WARN_BEFORE_MS: Millis = 60_000;
const QUEUE: usize = 1024;
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(10);

/// One push, ready to send.
#[derive(Clone, Debug)]
struct Push {
    title: String,
    body: String,
    click: String,
    priority: &'static str,
    tags: &'static str,
}

pub struct Notifier {
    queue: mpsc::Sender<Push>,
    /// When each pending choice should be warned about: a second scheduler, firing at
    /// deadline − 1 min instead of at the deadline.
    warnings: Scheduler,
    /// The choices as last seen, for the warning's text and to check it still applies.
    seen: std::sync::Mutex<std::collections::HashMap<String, Arc<Choice>>>,
    base_url: String,
}

impl Notifier {
    /// Starts the delivery task; returns `None` when there is nowhere to push.
    pub fn start(urls: Vec<String>, base_url: String) -> Option<Arc<Notifier>> {
        if urls.is_empty() {
            return None;
        }
        let (queue, pushes) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(urls, pushes));
        let notifier = Arc::new(Notifier {
            queue,
            warnings: Scheduler::default(),
            seen: Default::default(),
            base_url,
        });
        tokio::spawn(notifier.warnings.clone().run(Arc::downgrade(&notifier)));
        Some(notifier)
    }

    fn enqueue(&self, push: Push) {
        if self.queue.try_send(push).is_err() {
            tracing::warn!("push queue full; a push was dropped");
        }
    }

    fn link(&self, c: &Choice) -> String {
        format!("{}/choice/{}", self.base_url, c.id)
    }
}

impl Subscriber for Notifier {
    fn changed(&self, change: &Arc<Change>) {
        let Some(c) = &change.choice else { return };
        if change.kind == Some(EventKind::Created) {
            let what = if c.spec.mode == crate::choice::Mode::Timer {
                "A timer started"
            } else {
                "A question is waiting"
            };
            let source = c
                .spec
                .source
                .as_deref()
                .map(|s| format!(" from {s}"))
                .unwrap_or_default();
            self.enqueue(Push {
                title: c.spec.title.clone(),
                body: format!("{what}{source}: {}", self.link(c)),
                click: self.link(c),
                priority: "default",
                tags: "question",
            });
        }
        // Re-arm the warning for the new deadline (or drop it once paused or final).
        let warn_at = match (c.status, c.deadline) {
            (Status::Pending, Some(deadline)) => Some(deadline - WARN_BEFORE_MS),
            _ => None,
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match warn_at {
            Some(_) => seen.insert(c.id.clone(), c.clone()),
            None => seen.remove(&c.id),
        };
        drop(seen);
        self.warnings.arm(&c.id, warn_at);
    }
}

impl Expire for Notifier {
    /// Less than a minute is left: warn, if the choice is still waiting.
    fn expire(self: Arc<Self>, id: String) {
        let Some(c) = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
        else {
            return;
        };
        let left = c.remaining_ms(now_ms());
        if c.status != Status::Pending || left <= 0 {
            return;
        }
        self.enqueue(Push {
            title: c.spec.title.clone(),
            body: format!(
                "Less than a minute left ({} s) to answer: {}",
                (left + 999) / 1000,
                self.link(&c)
            ),
            click: self.link(&c),
            priority: "high",
            tags: "hourglass_flowing_sand",
        });
    }
}

async fn deliver(urls: Vec<String>, mut pushes: mpsc::Receiver<Push>) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for pushes; pushes are off");
            return;
        }
    };
    while let Some(push) = pushes.recv().await {
        for url in &urls {
            // Each delivery retries on its own, so a dead receiver never holds up the others.
            let (client, url, push) = (client.clone(), url.clone(), push.clone());
            tokio::spawn(async move {
                let mut wait = FIRST_RETRY;
                for attempt in 1..=ATTEMPTS {
                    match send(&client, &url, &push).await {
                        Ok(()) => return,
                        Err(e) if attempt == ATTEMPTS => {
                            tracing::warn!(%url, error = %e, attempts = ATTEMPTS, "a push could not be delivered");
                        }
                        Err(_) => {
                            tokio::time::sleep(wait).await;
                            wait *= 2;
                        }
                    }
                }
            });
        }
    }
}

async fn send(client: &reqwest::Client, url: &str, push: &Push) -> Result<(), String> {
    let response = client
        .post(url)
        .header("Title", header_safe(&push.title))
        .header("Click", &push.click)
        .header("Priority", push.priority)
        .header("Tags", push.tags)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(push.body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("status {}", response.status()))
    }
}

/// A header value can't carry newlines or most non-ASCII; titles are shortened to what can.
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .take(200)
        .collect()
}
