//! What a choice is: what its asker fixed, where it stands, the commands it takes, the events
//! they cause and why one is refused, with the limits of every part. The rules live below:
//!
//! - `machine` — the pure state machine: each command, given `now`, changes a choice and
//!   names the event it caused, or is refused and changes nothing. No clock, no I/O.
//! - [`create`] — the rules a new choice is checked against, one function per part.
//! - [`approval`] — approvers: their keys, kept only as hashes, and how their votes decide.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

pub mod approval;
pub mod create;
mod machine;
pub mod names;
#[cfg(test)]
mod testing;

// The limits of a choice's parts: characters, counts, and milliseconds for the countdown.
pub const MAX_TITLE: usize = 200;
pub const MAX_PROMPT: usize = 20_000;
pub const MAX_OPTIONS: usize = 100;
pub const MAX_OPTION_ID: usize = 64;
pub const MAX_LABEL: usize = 200;
pub const MAX_DESCRIPTION: usize = 2_000;
pub const MAX_PLACEHOLDER: usize = 200;
pub const MAX_SOURCE: usize = 64;
pub const MAX_TEXT: usize = 20_000;
pub const MAX_ANNOTATION: usize = 2_000;
pub const MAX_NAME: usize = 40;
pub const MAX_APPROVERS: usize = 50;
pub const MIN_TIMEOUT_MS: Millis = 1_000;
pub const MAX_TIMEOUT_MS: Millis = 604_800_000;
pub const DEFAULT_TIMEOUT_MS: Millis = 300_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Single,
    Multi,
    Text,
    Hybrid,
    Timer,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Multi => "multi",
            Mode::Text => "text",
            Mode::Hybrid => "hybrid",
            Mode::Timer => "timer",
        }
    }

    /// Whether the person picks among options (single, multi, hybrid).
    pub fn has_options(self) -> bool {
        matches!(self, Mode::Single | Mode::Multi | Mode::Hybrid)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Paused,
    Submitted,
    Cancelled,
    TimedOut,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Paused => "paused",
            Status::Submitted => "submitted",
            Status::Cancelled => "cancelled",
            Status::TimedOut => "timed_out",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Submitted | Status::Cancelled | Status::TimedOut
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    SubmitDefault,
    Cancel,
}

/// Which transport a final answer came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Web,
    Api,
    Ws,
    Timeout,
    /// In the asking agent's own client, through MCP elicitation.
    #[serde(rename = "mcp-elicitation")]
    McpElicitation,
    /// An action button of a phone notification.
    Push,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChoiceOption {
    pub id: String,
    pub label: String,
    pub description: Option<String>,
    pub recommended: bool,
}

/// What the asker fixed at creation; never changes afterwards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub title: String,
    pub prompt: String,
    pub mode: Mode,
    pub options: Vec<ChoiceOption>,
    pub min_selections: usize,
    pub max_selections: usize,
    pub placeholder: Option<String>,
    pub default_selection: Vec<String>,
    pub on_timeout: OnTimeout,
    pub source: Option<String>,
    /// Set when named people decide by vote instead of the first answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// The people whose votes decide a choice, and how many of them must agree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub approvers: Vec<Approver>,
    pub quorum: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approver {
    pub name: String,
    /// The SHA-256 of the approver's key. The key itself is given out once, in the answer to
    /// the create request, and kept nowhere: a leaked database or log holds no vote.
    pub key_hash: String,
}

/// An approver's latest vote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    pub approver: String,
    pub selection: Vec<String>,
    pub annotation: Option<String>,
    pub at: Millis,
}

/// A person's (or the deadline's) answer, as recorded once final.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub selection: Vec<String>,
    pub text: Option<String>,
    pub annotation: Option<String>,
    pub option_annotations: BTreeMap<String, String>,
    pub via: Option<Via>,
    pub by: Option<String>,
    /// Every approver's latest vote, when approvers decide.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<Vote>,
}

/// A choice's whole state. Stored as one JSON document beside the columns the store queries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub spec: Spec,
    pub status: Status,
    /// Set while pending: when the countdown reaches zero.
    pub deadline: Option<Millis>,
    /// Set while paused: the frozen remaining time.
    pub paused_remaining: Option<Millis>,
    /// The countdown's current full length; `reset` starts it again.
    pub timeout_ms: Millis,
    pub created_at: Millis,
    pub resolved_at: Option<Millis>,
    pub result: Option<Outcome>,
    pub round: u32,
    pub version: i64,
    /// The approvers' latest votes so far, in the order they were cast.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<Vote>,
}

/// A checked create request: everything `Choice::new` needs besides the id and the time.
#[derive(Clone, Debug, PartialEq)]
pub struct NewChoice {
    pub spec: Spec,
    pub timeout_ms: Millis,
    pub start_paused: bool,
}

/// A submitted answer, before it is checked against the choice (once accepted, the choice
/// records it as its [`Outcome`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Submission {
    pub selection: Vec<String>,
    pub text: Option<String>,
    pub annotation: Option<String>,
    pub option_annotations: BTreeMap<String, String>,
    /// An approver's key (`as`), on a choice that approvers decide.
    pub approver_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Submit(Submission),
    Cancel {
        annotation: Option<String>,
    },
    /// Remaining becomes this long from now; it is also the new full length.
    SetTimeout {
        ms: Millis,
    },
    /// Remaining grows (or shrinks) by this much, never below one second.
    AddTimeout {
        ms: Millis,
    },
    Pause,
    Resume,
    Reset,
    Expire,
}

/// The kind of change an event records; its data is read off the choice after the change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Created,
    TimeoutChanged,
    Paused,
    Resumed,
    Reset,
    /// An approver voted and the choice is still open.
    Voted,
    Submitted,
    Cancelled,
    TimedOut,
}

impl EventKind {
    const ALL: [EventKind; 9] = [
        EventKind::Created,
        EventKind::TimeoutChanged,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::Reset,
        EventKind::Voted,
        EventKind::Submitted,
        EventKind::Cancelled,
        EventKind::TimedOut,
    ];

    /// The kind of a stored event's `type`; `None` for a note.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::TimeoutChanged => "timeout_changed",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
            EventKind::Reset => "reset",
            EventKind::Voted => "voted",
            EventKind::Submitted => "submitted",
            EventKind::Cancelled => "cancelled",
            EventKind::TimedOut => "timed_out",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            EventKind::Submitted | EventKind::Cancelled | EventKind::TimedOut
        )
    }
}

/// Why a command was refused. Each maps to one code of the HTTP contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    AlreadyFinal,
    Conflict(String),
    Invalid {
        field: String,
        message: String,
    },
    /// A vote without a key of one of the choice's approvers.
    NotAnApprover(String),
}

pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Who made a change, for the record.
#[derive(Clone, Debug, PartialEq)]
pub struct Actor {
    pub via: Via,
    pub by: Option<String>,
}

/// A countdown's full length within its limits, or a rejection naming the field.
fn check_timeout(field: &str, ms: Millis) -> Result<(), Rejection> {
    if (MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&ms) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{field} must be between 1 and 604800 seconds"),
        ))
    }
}

/// Seconds (possibly fractional) as whole milliseconds, or a rejection naming the field.
pub fn seconds_to_ms(field: &str, seconds: f64) -> Result<Millis, Rejection> {
    if !seconds.is_finite() || seconds.abs() > 1e12 {
        return Err(invalid(
            field,
            format!("{field} must be a number of seconds"),
        ));
    }
    Ok((seconds * 1000.0).round() as Millis)
}
