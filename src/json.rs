//! The JSON forms of choices and events, exactly as API.md defines them. Every transport that
//! speaks JSON (the API, long polls, the event streams, the WebSocket) encodes through here.

use serde_json::{Value, json};

use crate::choice::{Choice, EventKind, Outcome, Status};
use crate::clock::{Millis, rfc3339};

/// Seconds as a JSON number: whole seconds print as integers, the rest with milliseconds.
pub fn seconds(ms: Millis) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn instant(ms: Option<Millis>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(rfc3339(ms)))
}

/// Who is watching a choice, as the live state counts them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Presence {
    /// Open streams and sockets.
    pub viewers: usize,
    /// The people behind them (a browser with two tabs is one).
    pub people: usize,
    /// Their display names, named people first (alphabetically), then `guest` for each of the
    /// others; at most 100.
    pub watchers: Vec<String>,
}

pub fn choice(c: &Choice, now: Millis, base_url: &str, presence: &Presence) -> Value {
    let spec = &c.spec;
    json!({
        "id": c.id,
        "url": format!("{base_url}/choice/{}", c.id),
        "title": spec.title,
        "prompt": spec.prompt,
        "mode": spec.mode,
        "options": spec.options.iter().map(|o| json!({
            "id": o.id, "label": o.label, "description": o.description, "recommended": o.recommended,
        })).collect::<Vec<_>>(),
        "min_selections": spec.min_selections,
        "max_selections": spec.max_selections,
        "placeholder": spec.placeholder,
        "default_selection": spec.default_selection,
        "on_timeout": spec.on_timeout,
        "timeout_seconds": seconds(c.timeout_ms),
        "status": c.status,
        "deadline": instant(c.deadline),
        "remaining_seconds": c.remaining_ms(now) as f64 / 1000.0,
        "created_at": rfc3339(c.created_at),
        "resolved_at": instant(c.resolved_at),
        "result": c.result.as_ref().map(outcome),
        "source": spec.source,
        "round": c.round,
        "viewers": presence.viewers,
        "watchers": presence.watchers.iter().map(|name| json!({"name": name})).collect::<Vec<_>>(),
        "version": c.version,
    })
}

pub fn outcome(o: &Outcome) -> Value {
    json!({
        "selection": o.selection,
        "text": o.text,
        "annotation": o.annotation,
        "option_annotations": o.option_annotations,
        "via": o.via,
        "by": o.by,
    })
}

/// The `data` of an event, read off the choice right after the change, at the event's time.
pub fn event_data(kind: EventKind, c: &Choice, at: Millis) -> Value {
    match kind {
        EventKind::Created => json!({
            "title": c.spec.title,
            "mode": c.spec.mode,
            "status": c.status,
            "timeout_seconds": seconds(c.timeout_ms),
            "deadline": instant(c.deadline),
            "source": c.spec.source,
        }),
        EventKind::TimeoutChanged => json!({
            "timeout_seconds": seconds(c.timeout_ms),
            "deadline": instant(c.deadline),
            "remaining_seconds": c.remaining_ms(at) as f64 / 1000.0,
        }),
        EventKind::Paused => json!({ "remaining_seconds": c.remaining_ms(at) as f64 / 1000.0 }),
        EventKind::Resumed => json!({ "deadline": instant(c.deadline) }),
        EventKind::Reset => json!({
            "deadline": instant(c.deadline),
            "timeout_seconds": seconds(c.timeout_ms),
            "round": c.round,
        }),
        EventKind::Submitted | EventKind::Cancelled | EventKind::TimedOut => {
            json!({ "status": c.status, "result": c.result.as_ref().map(outcome) })
        }
    }
}

/// The WebSocket `sync` message: the countdown as a client needs it to tick locally.
pub fn sync(c: &Choice, now: Millis) -> Value {
    json!({
        "type": "sync",
        "remaining_seconds": c.remaining_ms(now) as f64 / 1000.0,
        "deadline": instant(c.deadline),
        "timeout_seconds": seconds(c.timeout_ms),
        "paused": c.status == Status::Paused,
    })
}

/// The WebSocket `status` message for a change of status, if it is one a client is told of.
pub fn ws_status(before: Status, after: Status) -> Option<String> {
    let name = match (before, after) {
        (b, a) if b == a => return None,
        (_, Status::Submitted) => "submitted",
        (_, Status::Cancelled) => "cancelled",
        (_, Status::TimedOut) => "timeout",
        (_, Status::Paused) => "paused",
        (_, Status::Pending) => "resumed",
    };
    Some(json!({"type": "status", "status": name}).to_string())
}
