//! The JSON forms of choices and events, exactly as API.md defines them. Every transport that
//! speaks JSON (the API, long polls, the event streams, the WebSocket) encodes through here.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::choice::{Choice, EventKind, Mode, OnTimeout, Outcome, Status, Via, Vote};
use crate::clock::{Millis, rfc3339};
use crate::store::LogEvent;

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

/// The display name of a viewer who gave none.
pub const GUEST: &str = "guest";

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

/// A choice as the API shows it: the type the handlers serialise and the OpenAPI document
/// describes (one definition for both).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Choice)]
pub struct ChoiceBody {
    /// Opaque and unguessable: whoever has it may answer.
    pub id: String,
    pub url: String,
    pub title: String,
    pub prompt: String,
    pub mode: Mode,
    pub options: Vec<OptionBody>,
    pub min_selections: usize,
    pub max_selections: usize,
    #[schema(required = true)]
    pub placeholder: Option<String>,
    pub default_selection: Vec<String>,
    pub on_timeout: OnTimeout,
    #[serde(serialize_with = "seconds_of")]
    #[schema(value_type = f64)]
    pub timeout_seconds: Millis,
    pub status: Status,
    /// RFC 3339 UTC; null while paused or final.
    #[schema(required = true)]
    pub deadline: Option<String>,
    pub remaining_seconds: f64,
    pub created_at: String,
    #[schema(required = true)]
    pub resolved_at: Option<String>,
    #[schema(required = true)]
    pub result: Option<OutcomeBody>,
    #[schema(required = true)]
    pub source: Option<String>,
    pub round: u32,
    pub viewers: usize,
    pub watchers: Vec<Watcher>,
    pub version: i64,
    /// The names whose votes decide; empty when the first answer decides.
    pub approvers: Vec<String>,
    /// How many approvers must vote the same; null without approvers.
    #[schema(required = true)]
    pub quorum: Option<usize>,
    /// Each approver's latest vote so far.
    pub votes: Vec<VoteBody>,
}

/// The answer to a create request: the choice, and for each approver the link that votes as
/// them (the only place their keys are ever shown).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreatedChoice)]
pub struct CreatedBody {
    #[serde(flatten)]
    pub choice: ChoiceBody,
    /// Approver name → `PUBLIC_URL/choice/ID?as=KEY`; only when the choice has approvers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub approver_links: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Vote)]
pub struct VoteBody {
    pub approver: String,
    pub selection: Vec<String>,
    #[schema(required = true)]
    pub annotation: Option<String>,
    /// RFC 3339 UTC.
    pub at: String,
}

impl From<&Vote> for VoteBody {
    fn from(v: &Vote) -> VoteBody {
        VoteBody {
            approver: v.approver.clone(),
            selection: v.selection.clone(),
            annotation: v.annotation.clone(),
            at: rfc3339(v.at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ChoiceOption)]
pub struct OptionBody {
    pub id: String,
    pub label: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub recommended: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ChoiceResult)]
pub struct OutcomeBody {
    pub selection: Vec<String>,
    #[schema(required = true)]
    pub text: Option<String>,
    #[schema(required = true)]
    pub annotation: Option<String>,
    pub option_annotations: BTreeMap<String, String>,
    #[schema(required = true)]
    pub via: Option<Via>,
    #[schema(required = true)]
    pub by: Option<String>,
    /// When approvers decide: every approver's latest vote.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<VoteBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Watcher {
    pub name: String,
}

fn seconds_of<S: serde::Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
    if ms % 1000 == 0 {
        s.serialize_i64(ms / 1000)
    } else {
        s.serialize_f64(*ms as f64 / 1000.0)
    }
}

/// `GET /api/choices`.
#[derive(Serialize, ToSchema)]
pub struct ChoiceList {
    pub choices: Vec<ChoiceBody>,
}

/// The polling answer (`GET /api/status`): pass `cursor` as the next `since`.
#[derive(Serialize, ToSchema)]
pub struct StatusPage {
    pub cursor: i64,
    pub events: Vec<LogEvent>,
    pub active: Vec<ChoiceBody>,
}

/// `GET /api/notes`: pass `cursor` as the next `since`.
#[derive(Serialize, ToSchema)]
pub struct NoteList {
    pub cursor: i64,
    pub notes: Vec<LogEvent>,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` while a PostgreSQL node re-establishes its LISTEN connection.
    pub status: &'static str,
    /// PostgreSQL only: `connected` or `reconnecting`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<&'static str>,
}

/// A choice's page, where a person answers it: the `url` of its JSON.
pub fn choice_url(base_url: &str, id: &str) -> String {
    format!("{base_url}/choice/{id}")
}

pub fn choice(c: &Choice, now: Millis, base_url: &str, presence: &Presence) -> ChoiceBody {
    let spec = &c.spec;
    ChoiceBody {
        id: c.id.clone(),
        url: choice_url(base_url, &c.id),
        title: spec.title.clone(),
        prompt: spec.prompt.clone(),
        mode: spec.mode,
        options: spec
            .options
            .iter()
            .map(|o| OptionBody {
                id: o.id.clone(),
                label: o.label.clone(),
                description: o.description.clone(),
                recommended: o.recommended,
            })
            .collect(),
        min_selections: spec.min_selections,
        max_selections: spec.max_selections,
        placeholder: spec.placeholder.clone(),
        default_selection: spec.default_selection.clone(),
        on_timeout: spec.on_timeout,
        timeout_seconds: c.timeout_ms,
        status: c.status,
        deadline: c.deadline.map(rfc3339),
        remaining_seconds: c.remaining_ms(now) as f64 / 1000.0,
        created_at: rfc3339(c.created_at),
        resolved_at: c.resolved_at.map(rfc3339),
        result: c.result.as_ref().map(OutcomeBody::from),
        source: spec.source.clone(),
        round: c.round,
        viewers: presence.viewers,
        watchers: presence
            .watchers
            .iter()
            .map(|name| Watcher { name: name.clone() })
            .collect(),
        version: c.version,
        approvers: spec
            .approval
            .iter()
            .flat_map(|a| &a.approvers)
            .map(|a| a.name.clone())
            .collect(),
        quorum: spec.approval.as_ref().map(|a| a.quorum),
        votes: c.votes.iter().map(VoteBody::from).collect(),
    }
}

impl From<&Outcome> for OutcomeBody {
    fn from(o: &Outcome) -> OutcomeBody {
        OutcomeBody {
            selection: o.selection.clone(),
            text: o.text.clone(),
            annotation: o.annotation.clone(),
            option_annotations: o.option_annotations.clone(),
            via: o.via,
            by: o.by.clone(),
            votes: o.votes.iter().map(VoteBody::from).collect(),
        }
    }
}

pub fn outcome(o: &Outcome) -> Value {
    serde_json::to_value(OutcomeBody::from(o)).unwrap_or(Value::Null)
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
        EventKind::Voted => match c.votes.last() {
            Some(vote) => json!({
                "approver": vote.approver,
                "selection": vote.selection,
                "annotation": vote.annotation,
            }),
            None => json!({}),
        },
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
