//! Pushes to phones: when a choice is created, and when one has less than a minute left
//! unanswered, POST a short message to every `--notify-url`, and send it by Web Push to every
//! device that asked for it ([`crate::webpush`]). For `--notify-url` the body and headers follow
//! ntfy's publishing format (plain text, `Title`, `Click`, `Priority`, `Tags`, `Actions`), so
//! an ntfy topic pushes it to a phone and any webhook receives it too. For Web Push it is the
//! JSON that `static/sw.js` shows as a notification: `title`, `body`, `url`, `tag` (the choice
//! id), `actions` (`{action: option id, title}`), `answer` (the submit route) and `final`.
//!
//! A notification follows its choice: every push about a choice carries the choice's id as
//! ntfy's sequence id (`X-Sequence-ID`, ntfy 2.16+), so a later push updates the notification
//! instead of adding one. Its action buttons answer from the lock screen (a `single` choice with
//! up to three options: one button each, POSTing to the choice's own submit route, `via=push`);
//! otherwise a button opens the page. Once the choice is decided, by anyone, the notification
//! is updated to the result and cleared (`PUT <topic>/<sequence id>/clear`).
//!
//! Delivery never delays a command: the engine hands each change over synchronously, pushes
//! wait in a bounded queue, and one task delivers them with retries and backoff.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::choice::{Choice, EventKind, Mode, Status};
use crate::clock::{Millis, now_ms};
use crate::engine::{Change, Subscriber};
use crate::scheduler::{Expire, Scheduler};
use crate::webpush::{Delivery, Message, WebPush};

/// Warn when this much time is left.
const WARN_BEFORE_MS: Millis = 60_000;
const QUEUE: usize = 1024;
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(10);
/// ntfy shows at most three action buttons.
const MAX_ANSWER_BUTTONS: usize = 3;

/// A decided choice's notification lingers this long at a push service that cannot deliver it.
const DECIDED_TTL_S: u64 = 3600;

/// One push, ready to send.
#[derive(Clone, Debug)]
struct Push {
    /// The choice's id, as ntfy's sequence id: every push about a choice is one notification.
    sequence: String,
    title: String,
    body: String,
    click: String,
    priority: &'static str,
    tags: &'static str,
    buttons: Buttons,
    /// Clear the notification once this (final) update is delivered.
    then_clear: bool,
    /// Past this, the push is old news (the deadline, or an hour for a result).
    ttl_s: u64,
}

#[derive(Clone, Debug)]
enum Buttons {
    None,
    /// Opens the page.
    Open,
    /// One per option (id, label), answering at once.
    Answer(Vec<(String, String)>),
}

pub struct Notifier {
    queue: mpsc::Sender<Push>,
    /// When each pending choice should be warned about: a second scheduler, firing at
    /// deadline − 1 min instead of at the deadline.
    warnings: Scheduler,
    /// The choices as last seen, for the warning's text and to check it still applies.
    seen: Mutex<HashMap<String, Arc<Choice>>>,
    /// Choices whose notification shows the minute warning: a new deadline updates it.
    warned: Mutex<HashSet<String>>,
    base_url: String,
}

impl Notifier {
    /// Starts the delivery task. It runs even with no `--notify-url`: a browser may ask for
    /// Web Push at any time.
    pub fn start(urls: Vec<String>, web_push: Arc<WebPush>, base_url: String) -> Arc<Notifier> {
        let (queue, pushes) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(urls, web_push, pushes));
        let notifier = Arc::new(Notifier {
            queue,
            warnings: Scheduler::default(),
            seen: Default::default(),
            warned: Default::default(),
            base_url,
        });
        tokio::spawn(notifier.warnings.clone().run(Arc::downgrade(&notifier)));
        notifier
    }

    fn enqueue(&self, push: Push) {
        if self.queue.try_send(push).is_err() {
            tracing::warn!("push queue full; a push was dropped");
        }
    }

    fn link(&self, c: &Choice) -> String {
        crate::paths::choice_url(&self.base_url, &c.id)
    }

    /// A push about `c` that keeps its buttons (the choice is still open).
    fn open_push(
        &self,
        c: &Choice,
        body: String,
        priority: &'static str,
        tags: &'static str,
    ) -> Push {
        Push {
            sequence: c.id.clone(),
            title: c.spec.title.clone(),
            body,
            click: self.link(c),
            priority,
            tags,
            buttons: buttons(c),
            then_clear: false,
            ttl_s: u64::try_from(c.remaining_ms(now_ms()) / 1000)
                .unwrap_or(0)
                .max(1),
        }
    }

    /// The notification of a decided choice: the result, no buttons, then cleared.
    fn decided(&self, c: &Choice) -> Push {
        let outcome = c.result.as_ref();
        let chosen: Vec<&str> = outcome
            .map(|r| r.selection.iter().map(|id| c.option_label(id)).collect())
            .unwrap_or_default();
        let by = outcome
            .and_then(|r| r.by.as_deref())
            .map(|b| format!(" by {b}"))
            .unwrap_or_default();
        let body = match c.status {
            Status::Submitted if chosen.is_empty() => format!("Answered{by}."),
            Status::Submitted => format!("Decided{by}: {}.", chosen.join(", ")),
            Status::Cancelled => format!("Cancelled{by}."),
            _ if chosen.is_empty() => "Nobody answered in time.".to_string(),
            _ => format!(
                "Nobody answered in time; the default: {}.",
                chosen.join(", ")
            ),
        };
        Push {
            sequence: c.id.clone(),
            title: c.spec.title.clone(),
            body,
            click: self.link(c),
            priority: "low",
            tags: "white_check_mark",
            buttons: Buttons::None,
            then_clear: true,
            ttl_s: DECIDED_TTL_S,
        }
    }
}

/// One button per option, answering at once, where that is the whole answer (a `single`
/// choice with few options and no approvers); else one that opens the page.
fn buttons(c: &Choice) -> Buttons {
    let spec = &c.spec;
    let answerable = spec.mode == Mode::Single
        && spec.approval.is_none()
        && spec.options.len() <= MAX_ANSWER_BUTTONS;
    if !answerable {
        return Buttons::Open;
    }
    Buttons::Answer(
        spec.options
            .iter()
            .map(|o| (o.id.clone(), o.label.clone()))
            .collect(),
    )
}

/// The form body a button POSTs to the choice's submit route.
fn answer_body(option: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("selection", option)
        .append_pair("via", "push")
        .finish()
}

impl Push {
    /// ntfy's `Actions` header; empty for none.
    fn ntfy_actions(&self) -> String {
        let page = &self.click;
        match &self.buttons {
            Buttons::None => String::new(),
            Buttons::Open => format!("view, Open, {page}, clear=true"),
            Buttons::Answer(options) => options
                .iter()
                .map(|(id, label)| {
                    format!(
                        "http, \"{}\", {page}/submit, method=POST, \
                         headers.content-type=application/x-www-form-urlencoded, \
                         headers.accept=application/json, body=\"{}\", clear=true",
                        header_safe(label).replace('"', "'"),
                        answer_body(id)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// The Web Push message: what the service worker shows (see the module's opening).
    fn web_message(&self) -> Message {
        let actions: Vec<serde_json::Value> = match &self.buttons {
            Buttons::Answer(options) => options
                .iter()
                .map(|(id, label)| serde_json::json!({ "action": id, "title": shorten(label, 60) }))
                .collect(),
            Buttons::None | Buttons::Open => Vec::new(),
        };
        let payload = serde_json::json!({
            "title": shorten(&self.title, 200),
            "body": shorten(&self.body, 1000),
            "url": self.click,
            "tag": self.sequence,
            "actions": actions,
            "answer": format!("{}/submit", self.click),
            "final": self.then_clear,
        });
        Message {
            topic: self.sequence.clone(),
            payload: payload.to_string().into_bytes(),
            ttl_s: self.ttl_s,
            urgency: match (self.then_clear, self.priority) {
                (true, _) => "low",
                (false, "high") => "high",
                _ => "normal",
            },
        }
    }
}

/// A push service takes about 4 KB: long texts are cut, at a character boundary.
fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
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
            let body = format!("{what}{source}: {}", self.link(c));
            self.enqueue(self.open_push(c, body, "default", "question"));
        }
        if change.kind.is_some_and(EventKind::is_final) {
            self.warned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&c.id);
            self.enqueue(self.decided(c));
        } else if change.kind == Some(EventKind::TimeoutChanged)
            && self
                .warned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&c.id)
        {
            // The warning on the phone is out of date: it shows the new time instead.
            let left = crate::views::clock(c.remaining_ms(now_ms()));
            let body = format!(
                "The deadline moved: {left} left to answer: {}",
                self.link(c)
            );
            self.enqueue(self.open_push(c, body, "default", "hourglass_flowing_sand"));
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
        let body = format!(
            "Less than a minute left ({} s) to answer: {}",
            (left + 999) / 1000,
            self.link(&c)
        );
        self.warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(c.id.clone());
        self.enqueue(self.open_push(&c, body, "high", "hourglass_flowing_sand"));
    }
}

async fn deliver(urls: Vec<String>, web_push: Arc<WebPush>, mut pushes: mpsc::Receiver<Push>) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for pushes; pushes are off");
            return;
        }
    };
    while let Some(push) = pushes.recv().await {
        for url in &urls {
            let (client, url, push) = (client.clone(), url.clone(), push.clone());
            tokio::spawn(async move {
                with_retries(&url, || send(&client, &url, &push)).await;
            });
        }
        let devices = match web_push.devices().await {
            Ok(devices) => devices,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the Web Push devices could not be read; a push was dropped");
                continue;
            }
        };
        if devices.is_empty() {
            continue;
        }
        let message = Arc::new(push.web_message());
        for device in devices.iter() {
            // Each send task owns what it uses.
            let (client, web_push, message) = (client.clone(), web_push.clone(), message.clone());
            let device = device.clone();
            tokio::spawn(async move {
                let to = device.push_service();
                with_retries(&to, || async {
                    match web_push.send(&client, &device, &message).await {
                        Delivery::Delivered | Delivery::Gone => Ok(()),
                        Delivery::Failed(e) => Err(e),
                    }
                })
                .await;
            });
        }
    }
}

/// Each delivery retries on its own, with backoff, so a dead receiver never holds up the others.
async fn with_retries<F, Fut>(to: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut wait = FIRST_RETRY;
    for n in 1..=ATTEMPTS {
        match attempt().await {
            Ok(()) => return,
            Err(e) if n == ATTEMPTS => {
                tracing::warn!(%to, error = %e, attempts = ATTEMPTS, "a push could not be delivered");
            }
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

/// Publishes the push (and, for a decided choice, then clears its notification).
async fn send(client: &reqwest::Client, url: &str, push: &Push) -> Result<(), String> {
    let mut publish = client
        .post(url)
        .header("X-Sequence-ID", &push.sequence)
        .header("Title", header_safe(&push.title))
        .header("Click", &push.click)
        .header("Priority", push.priority)
        .header("Tags", push.tags)
        .header("Content-Type", "text/plain; charset=utf-8");
    let actions = push.ntfy_actions();
    if !actions.is_empty() {
        publish = publish.header("Actions", actions);
    }
    succeeded(publish.body(push.body.clone())).await?;
    if push.then_clear {
        let clear = format!("{}/{}/clear", url.trim_end_matches('/'), push.sequence);
        succeeded(client.put(clear)).await?;
    }
    Ok(())
}

async fn succeeded(request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
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
