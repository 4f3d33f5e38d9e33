//! The pure state machine of a choice: what a choice is, what may be done to it, and the event
//! each command causes. No clock, no I/O: every command is given `now`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

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

    fn has_options(self) -> bool {
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

/// A submitted answer before it is checked against the choice.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    pub selection: Vec<String>,
    pub text: Option<String>,
    pub annotation: Option<String>,
    pub option_annotations: BTreeMap<String, String>,
    /// An approver's key (`as`), on a choice that approvers decide.
    pub approver_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Submit(Answer),
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

impl Choice {
    /// A new choice at version 1, counting down (or paused) from `now`.
    pub fn new(id: String, new: NewChoice, now: Millis) -> Choice {
        let (status, deadline, paused_remaining) = if new.start_paused {
            (Status::Paused, None, Some(new.timeout_ms))
        } else {
            (Status::Pending, Some(now + new.timeout_ms), None)
        };
        Choice {
            id,
            spec: new.spec,
            status,
            deadline,
            paused_remaining,
            timeout_ms: new.timeout_ms,
            created_at: now,
            resolved_at: None,
            result: None,
            round: 1,
            version: 1,
            votes: Vec::new(),
        }
    }

    /// Remaining time at `now`: counting while pending, frozen while paused, zero once final.
    pub fn remaining_ms(&self, now: Millis) -> Millis {
        match self.status {
            Status::Pending => self.deadline.map_or(0, |d| (d - now).max(0)),
            Status::Paused => self.paused_remaining.unwrap_or(0).max(0),
            _ => 0,
        }
    }

    /// Apply one command at `now`. On success the choice has changed (version + 1) and the
    /// event kind says how; on rejection nothing has changed.
    pub fn apply(
        &mut self,
        command: Command,
        actor: &Actor,
        now: Millis,
    ) -> Result<EventKind, Rejection> {
        if self.status.is_final() && !(command == Command::Reset && self.can_start_next_round()) {
            return Err(Rejection::AlreadyFinal);
        }
        let kind = match command {
            Command::Submit(answer) => match self.spec.approval.clone() {
                Some(approval) => self.vote(&approval, answer, actor, now)?,
                None if answer.approver_key.is_some() => {
                    return Err(invalid(
                        "as",
                        "this choice has no approvers; answer without a key",
                    ));
                }
                None => {
                    let outcome = self.check_answer(answer, actor)?;
                    self.finish(Status::Submitted, outcome, now);
                    EventKind::Submitted
                }
            },
            Command::Cancel { annotation } => {
                let annotation = bounded_note(annotation, "annotation")?;
                let outcome = Outcome {
                    annotation,
                    via: Some(actor.via),
                    by: actor.by.clone(),
                    ..Outcome::default()
                };
                self.finish(Status::Cancelled, outcome, now);
                EventKind::Cancelled
            }
            Command::SetTimeout { ms } => {
                check_timeout("seconds", ms)?;
                self.set_remaining(ms, now);
                self.timeout_ms = ms;
                EventKind::TimeoutChanged
            }
            Command::AddTimeout { ms } => {
                if ms.abs() > MAX_TIMEOUT_MS {
                    return Err(invalid("add", "add must be within ±604800 seconds"));
                }
                let remaining = (self.remaining_ms(now) + ms).max(MIN_TIMEOUT_MS);
                if remaining > MAX_TIMEOUT_MS {
                    return Err(invalid(
                        "add",
                        "remaining time may not exceed 604800 seconds",
                    ));
                }
                self.set_remaining(remaining, now);
                self.timeout_ms = (self.timeout_ms + ms).clamp(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS);
                EventKind::TimeoutChanged
            }
            Command::Pause => {
                if self.status == Status::Paused {
                    return Err(Rejection::Conflict("the choice is already paused".into()));
                }
                self.paused_remaining = Some(self.remaining_ms(now));
                self.deadline = None;
                self.status = Status::Paused;
                EventKind::Paused
            }
            Command::Resume => {
                if self.status != Status::Paused {
                    return Err(Rejection::Conflict(
                        "only a paused choice can be resumed".into(),
                    ));
                }
                self.deadline = Some(now + self.paused_remaining.take().unwrap_or(0));
                self.status = Status::Pending;
                EventKind::Resumed
            }
            Command::Reset => {
                if self.status.is_final() {
                    self.round += 1;
                    self.result = None;
                    self.resolved_at = None;
                }
                self.status = Status::Pending;
                self.paused_remaining = None;
                self.deadline = Some(now + self.timeout_ms);
                EventKind::Reset
            }
            Command::Expire => {
                let due = self.status == Status::Pending && self.deadline.is_some_and(|d| now >= d);
                if !due {
                    return Err(Rejection::Conflict("the deadline has not passed".into()));
                }
                let (status, selection) = match (self.spec.on_timeout, self.spec.mode) {
                    (_, Mode::Timer) | (OnTimeout::Cancel, _) => (Status::TimedOut, Vec::new()),
                    (OnTimeout::SubmitDefault, _) => {
                        (Status::TimedOut, self.spec.default_selection.clone())
                    }
                };
                let outcome = Outcome {
                    selection,
                    via: Some(Via::Timeout),
                    ..Outcome::default()
                };
                self.finish(status, outcome, now);
                EventKind::TimedOut
            }
        };
        self.version += 1;
        Ok(kind)
    }

    /// Final for good: nothing changes it any more. A rung timer is final but not settled: it
    /// may start its next round.
    pub fn is_settled(&self) -> bool {
        self.status.is_final() && !self.can_start_next_round()
    }

    /// A rung timer may start its next round; every other final status is absorbing.
    fn can_start_next_round(&self) -> bool {
        self.spec.mode == Mode::Timer && self.status == Status::TimedOut
    }

    fn set_remaining(&mut self, ms: Millis, now: Millis) {
        match self.status {
            Status::Paused => self.paused_remaining = Some(ms),
            _ => self.deadline = Some(now + ms),
        }
    }

    fn finish(&mut self, status: Status, mut outcome: Outcome, now: Millis) {
        outcome.votes = self.votes.clone();
        self.status = status;
        self.deadline = None;
        self.paused_remaining = None;
        self.resolved_at = Some(now);
        self.result = Some(outcome);
    }

    /// An approver's vote: recorded as their latest, then counted. It decides the choice when
    /// `quorum` latest votes agree, and cancels it once no selection can reach the quorum with
    /// the votes still to come; otherwise the choice stays open.
    fn vote(
        &mut self,
        approval: &Approval,
        mut answer: Answer,
        actor: &Actor,
        now: Millis,
    ) -> Result<EventKind, Rejection> {
        let key = answer.approver_key.take().ok_or_else(|| {
            Rejection::NotAnApprover(
                "only this choice's approvers may answer it: use your approver link".into(),
            )
        })?;
        let name = approver_of(approval, &key)
            .map(str::to_string)
            .ok_or_else(|| {
                Rejection::NotAnApprover("this key is not one of this choice's approvers".into())
            })?;
        let voter = Actor {
            via: actor.via,
            by: Some(name.clone()),
        };
        let outcome = self.check_answer(answer, &voter)?;
        self.votes.retain(|v| v.approver != name);
        self.votes.push(Vote {
            approver: name,
            selection: outcome.selection.clone(),
            annotation: outcome.annotation.clone(),
            at: now,
        });
        let agreeing = self.agreeing_with(&outcome.selection);
        let still_to_vote = approval.approvers.len().saturating_sub(self.votes.len());
        if agreeing >= approval.quorum {
            self.finish(Status::Submitted, outcome, now);
            Ok(EventKind::Submitted)
        } else if self.leading_votes() + still_to_vote < approval.quorum {
            let no_quorum = Outcome {
                annotation: Some("no quorum".into()),
                via: Some(actor.via),
                ..Outcome::default()
            };
            self.finish(Status::Cancelled, no_quorum, now);
            Ok(EventKind::Cancelled)
        } else {
            Ok(EventKind::Voted)
        }
    }

    /// The label people see for an option id (the id itself if there is no such option).
    pub fn option_label<'a>(&'a self, id: &'a str) -> &'a str {
        self.spec
            .options
            .iter()
            .find(|o| o.id == id)
            .map_or(id, |o| o.label.as_str())
    }

    /// How many more agreeing votes the leading selection needs; `None` without approvers.
    pub fn votes_needed(&self) -> Option<usize> {
        let approval = self.spec.approval.as_ref()?;
        Some(approval.quorum.saturating_sub(self.leading_votes()))
    }

    fn agreeing_with(&self, selection: &[String]) -> usize {
        self.votes
            .iter()
            .filter(|v| same_selection(&v.selection, selection))
            .count()
    }

    /// The most latest votes any one selection has.
    fn leading_votes(&self) -> usize {
        self.votes
            .iter()
            .map(|v| self.agreeing_with(&v.selection))
            .max()
            .unwrap_or(0)
    }

    fn check_answer(&self, answer: Answer, actor: &Actor) -> Result<Outcome, Rejection> {
        let spec = &self.spec;
        for (i, id) in answer.selection.iter().enumerate() {
            if !spec.options.iter().any(|o| &o.id == id) {
                return Err(invalid(
                    format!("selection[{i}]"),
                    format!("unknown option {id:?}"),
                ));
            }
            if answer.selection[..i].contains(id) {
                return Err(invalid(
                    format!("selection[{i}]"),
                    format!("option {id:?} is selected twice"),
                ));
            }
        }
        let text = match answer.text {
            Some(t) if t.trim().is_empty() => None,
            Some(t) if t.chars().count() > MAX_TEXT => {
                return Err(invalid(
                    "text",
                    format!("text is longer than {MAX_TEXT} characters"),
                ));
            }
            other => other,
        };
        let n = answer.selection.len();
        match spec.mode {
            Mode::Single | Mode::Multi => {
                if n < spec.min_selections || n > spec.max_selections {
                    return Err(invalid("selection", selection_bounds(spec)));
                }
            }
            Mode::Hybrid => {
                if n > spec.max_selections || (text.is_none() && n < spec.min_selections.max(1)) {
                    return Err(invalid(
                        "selection",
                        format!("{}, or write an answer", selection_bounds(spec)),
                    ));
                }
            }
            Mode::Text => {
                if text.is_none() {
                    return Err(invalid("text", "write an answer"));
                }
            }
            Mode::Timer => {
                if n > 0 || text.is_some() {
                    return Err(invalid("selection", "a timer takes no answer"));
                }
            }
        }
        let mut option_annotations = BTreeMap::new();
        for (id, note) in answer.option_annotations {
            if !spec.options.iter().any(|o| o.id == id) {
                return Err(invalid(
                    format!("option_annotations.{id}"),
                    format!("unknown option {id:?}"),
                ));
            }
            if let Some(note) = bounded_note(Some(note), &format!("option_annotations.{id}"))? {
                option_annotations.insert(id, note);
            }
        }
        Ok(Outcome {
            selection: answer.selection,
            text,
            annotation: bounded_note(answer.annotation, "annotation")?,
            option_annotations,
            via: Some(actor.via),
            by: actor.by.clone(),
            votes: Vec::new(),
        })
    }
}

/// The name of the approver whose key this is.
pub fn approver_of<'a>(approval: &'a Approval, key: &str) -> Option<&'a str> {
    let hash = key_hash(key);
    approval
        .approvers
        .iter()
        .find(|a| a.key_hash == hash)
        .map(|a| a.name.as_str())
}

/// Two selections agree when they hold the same options, in whatever order.
fn same_selection(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|id| b.contains(id))
}

/// What is stored of an approver's key: its SHA-256, URL-safe base64.
pub fn key_hash(key: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(key.as_bytes()))
}

fn selection_bounds(spec: &Spec) -> String {
    match (spec.min_selections, spec.max_selections) {
        (1, 1) => "choose exactly one option".into(),
        (min, max) if min == max => format!("choose exactly {min} options"),
        (min, max) => format!("choose between {min} and {max} options"),
    }
}

/// An optional note: blank means none, and it has a length limit.
fn bounded_note(note: Option<String>, field: &str) -> Result<Option<String>, Rejection> {
    match note {
        Some(n) if n.trim().is_empty() => Ok(None),
        Some(n) if n.chars().count() > MAX_ANNOTATION => Err(invalid(
            field,
            format!("{field} is longer than {MAX_ANNOTATION} characters"),
        )),
        other => Ok(other),
    }
}

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

/// The create request as programs send it. Everything but `title` is optional. (The schema
/// attributes document it in `/api/openapi.json`; `TryFrom` below is what checks it.)
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(example = json!({"title": "Deploy build 1234?", "prompt": "All checks passed.",
    "options": [{"id": "yes", "label": "Ship it"}, {"id": "no"}],
    "default_selection": ["no"], "timeout_seconds": 300, "source": "nightly-build"}))]
pub struct CreateRequest {
    /// 1 to 200 characters, surrounding spaces aside.
    #[schema(required = true)]
    pub title: String,
    /// Markdown, up to 20,000 characters; raw HTML is shown as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 20000)]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// 1 to 100 for single, multi and hybrid; none for text and timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 100)]
    pub options: Option<Vec<OptionRequest>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_selection: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
    /// The countdown, 1 to 604,800 seconds (7 days); default 300.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_selections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_selections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub start_paused: bool,
    /// single and multi: 1 to 50 unique names (1 to 40 characters) whose votes decide. Each
    /// gets a link of its own in the answer (`approver_links`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 50)]
    pub approvers: Option<Vec<String>>,
    /// How many approvers must vote the same: 1 to the number of approvers; default all.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 50)]
    pub quorum: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct OptionRequest {
    /// 1 to 64 characters, no spaces or control characters, unique in the choice.
    #[schema(required = true, min_length = 1, max_length = 64)]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recommended: bool,
}

/// A validated create request: everything `Choice::new` needs besides the id and the time.
#[derive(Clone, Debug, PartialEq)]
pub struct NewChoice {
    pub spec: Spec,
    pub timeout_ms: Millis,
    pub start_paused: bool,
}

impl TryFrom<CreateRequest> for NewChoice {
    type Error = Rejection;

    fn try_from(req: CreateRequest) -> Result<NewChoice, Rejection> {
        let title = req.title.trim().to_string();
        if title.is_empty() {
            return Err(invalid("title", "title is required"));
        }
        check_len("title", &title, MAX_TITLE)?;
        let prompt = req.prompt.unwrap_or_default();
        check_len("prompt", &prompt, MAX_PROMPT)?;
        let mode = req.mode.unwrap_or(Mode::Single);
        let options = parse_options(mode, req.options.unwrap_or_default())?;
        let n = options.len();
        let (default_min, default_max) = match mode {
            Mode::Single => (1, 1),
            Mode::Multi => (1, n),
            Mode::Hybrid => (0, 1),
            Mode::Text | Mode::Timer => (0, 0),
        };
        let min = req.min_selections.map_or(default_min, |v| v as usize);
        let max = req.max_selections.map_or(default_max, |v| v as usize);
        match mode {
            Mode::Single if min != 1 || max != 1 => {
                return Err(invalid(
                    if min != 1 {
                        "min_selections"
                    } else {
                        "max_selections"
                    },
                    "single mode takes exactly one option; use multi",
                ));
            }
            Mode::Multi | Mode::Hybrid => {
                if max == 0 || max > n {
                    return Err(invalid(
                        "max_selections",
                        format!("max_selections must be between 1 and {n}"),
                    ));
                }
                if min > max {
                    return Err(invalid(
                        "min_selections",
                        "min_selections may not exceed max_selections",
                    ));
                }
            }
            Mode::Text | Mode::Timer if min != 0 || max != 0 => {
                return Err(invalid(
                    if min != 0 {
                        "min_selections"
                    } else {
                        "max_selections"
                    },
                    format!("{} mode takes no selections", mode.as_str()),
                ));
            }
            _ => {}
        }
        let default_selection = req.default_selection.unwrap_or_default();
        for (i, id) in default_selection.iter().enumerate() {
            let field = format!("default_selection[{i}]");
            if !options.iter().any(|o| &o.id == id) {
                return Err(invalid(field, format!("unknown option {id:?}")));
            }
            if default_selection[..i].contains(id) {
                return Err(invalid(field, format!("option {id:?} is listed twice")));
            }
        }
        if default_selection.len() > max {
            return Err(invalid(
                "default_selection",
                format!("at most {max} options may be selected"),
            ));
        }
        let timeout_ms = match req.timeout_seconds {
            None => DEFAULT_TIMEOUT_MS,
            // Checked before rounding: 0.9996 s is not "at least 1 second".
            Some(s) if !(1.0..=604_800.0).contains(&s) => {
                return Err(invalid(
                    "timeout_seconds",
                    "timeout_seconds must be between 1 and 604800 seconds",
                ));
            }
            Some(s) => {
                let ms = seconds_to_ms("timeout_seconds", s)?;
                check_timeout("timeout_seconds", ms)?;
                ms
            }
        };
        let placeholder = req.placeholder.filter(|p| !p.is_empty());
        if let Some(p) = &placeholder {
            check_len("placeholder", p, MAX_PLACEHOLDER)?;
        }
        let source = req
            .source
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        if let Some(s) = &source {
            check_len("source", s, MAX_SOURCE)?;
        }
        let approval = parse_approval(mode, req.approvers, req.quorum)?;
        Ok(NewChoice {
            spec: Spec {
                title,
                prompt,
                mode,
                options,
                min_selections: min,
                max_selections: max,
                placeholder,
                default_selection,
                on_timeout: req.on_timeout.unwrap_or(OnTimeout::SubmitDefault),
                source,
                approval,
            },
            timeout_ms,
            start_paused: req.start_paused,
        })
    }
}

impl NewChoice {
    /// Gives each approver a fresh key, keeps only its hash, and answers `(name, key)` in the
    /// approvers' order: the one time the keys are seen.
    pub fn issue_approver_keys<E>(
        &mut self,
        mut fresh_key: impl FnMut() -> Result<String, E>,
    ) -> Result<Vec<(String, String)>, E> {
        let Some(approval) = &mut self.spec.approval else {
            return Ok(Vec::new());
        };
        let mut keys = Vec::with_capacity(approval.approvers.len());
        for approver in &mut approval.approvers {
            let key = fresh_key()?;
            approver.key_hash = key_hash(&key);
            keys.push((approver.name.clone(), key));
        }
        Ok(keys)
    }
}

/// The approvers and quorum of a create request; their keys are issued afterwards.
fn parse_approval(
    mode: Mode,
    names: Option<Vec<String>>,
    quorum: Option<u64>,
) -> Result<Option<Approval>, Rejection> {
    let Some(names) = names else {
        return match quorum {
            Some(_) => Err(invalid("quorum", "a quorum needs approvers")),
            None => Ok(None),
        };
    };
    if !matches!(mode, Mode::Single | Mode::Multi) {
        return Err(invalid(
            "approvers",
            format!(
                "{} mode takes no approvers; use single or multi",
                mode.as_str()
            ),
        ));
    }
    if names.is_empty() || names.len() > MAX_APPROVERS {
        return Err(invalid(
            "approvers",
            format!("approvers lists 1 to {MAX_APPROVERS} names"),
        ));
    }
    let mut approvers: Vec<Approver> = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let field = format!("approvers[{i}]");
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(invalid(
                field,
                format!("an approver's name is 1 to {MAX_NAME} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid(
                field,
                "an approver's name may not contain control characters",
            ));
        }
        if approvers.iter().any(|a| a.name == name) {
            return Err(invalid(field, format!("approver {name:?} is listed twice")));
        }
        approvers.push(Approver {
            name,
            key_hash: String::new(),
        });
    }
    let n = approvers.len();
    let quorum = match quorum {
        None => n,
        Some(q) if (1..=n as u64).contains(&q) => q as usize,
        Some(_) => {
            return Err(invalid(
                "quorum",
                format!("quorum must be between 1 and {n}, the number of approvers"),
            ));
        }
    };
    Ok(Some(Approval { approvers, quorum }))
}

fn parse_options(
    mode: Mode,
    requested: Vec<OptionRequest>,
) -> Result<Vec<ChoiceOption>, Rejection> {
    if !mode.has_options() {
        if !requested.is_empty() {
            return Err(invalid(
                "options",
                format!("{} mode takes no options", mode.as_str()),
            ));
        }
        return Ok(Vec::new());
    }
    if requested.is_empty() || requested.len() > MAX_OPTIONS {
        return Err(invalid(
            "options",
            format!("{} mode needs 1 to {MAX_OPTIONS} options", mode.as_str()),
        ));
    }
    let mut options: Vec<ChoiceOption> = Vec::with_capacity(requested.len());
    for (i, o) in requested.into_iter().enumerate() {
        let field = |name: &str| format!("options[{i}].{name}");
        if o.id.is_empty() || o.id.chars().count() > MAX_OPTION_ID {
            return Err(invalid(
                field("id"),
                format!("option ids are 1 to {MAX_OPTION_ID} characters"),
            ));
        }
        if o.id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid(
                field("id"),
                "option ids may not contain spaces or control characters",
            ));
        }
        if options.iter().any(|p| p.id == o.id) {
            return Err(invalid(
                field("id"),
                format!("option id {:?} is used twice", o.id),
            ));
        }
        let label = o
            .label
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| o.id.clone());
        check_len(&field("label"), &label, MAX_LABEL)?;
        let description = o.description.filter(|d| !d.is_empty());
        if let Some(d) = &description {
            check_len(&field("description"), d, MAX_DESCRIPTION)?;
        }
        options.push(ChoiceOption {
            id: o.id,
            label,
            description,
            recommended: o.recommended,
        });
    }
    Ok(options)
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.chars().count() > max {
        return Err(invalid(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Millis = 1_800_000_000_000;

    fn web() -> Actor {
        Actor {
            via: Via::Web,
            by: None,
        }
    }

    fn choice(mode: Mode, timeout_s: f64, on_timeout: OnTimeout) -> Choice {
        let options = match mode {
            Mode::Text | Mode::Timer => None,
            _ => Some(
                ["yes", "no", "maybe"]
                    .map(|id| OptionRequest {
                        id: id.into(),
                        ..Default::default()
                    })
                    .to_vec(),
            ),
        };
        let req = CreateRequest {
            title: "Deploy?".into(),
            mode: Some(mode),
            options,
            default_selection: (mode != Mode::Text && mode != Mode::Timer)
                .then(|| vec!["no".into()]),
            on_timeout: Some(on_timeout),
            timeout_seconds: Some(timeout_s),
            ..Default::default()
        };
        Choice::new("c1".into(), NewChoice::try_from(req).expect("valid"), T0)
    }

    fn submit(ids: &[&str]) -> Command {
        Command::Submit(Answer {
            selection: ids.iter().map(|s| s.to_string()).collect(),
            ..Answer::default()
        })
    }

    #[test]
    fn pause_freezes_and_resume_restarts_from_the_frozen_value() {
        let mut c = choice(Mode::Single, 60.0, OnTimeout::SubmitDefault);
        assert_eq!(c.remaining_ms(T0 + 10_000), 50_000);
        assert_eq!(
            c.apply(Command::Pause, &web(), T0 + 10_000),
            Ok(EventKind::Paused)
        );
        assert_eq!(c.remaining_ms(T0 + 99_000), 50_000);
        assert!(matches!(
            c.apply(Command::Pause, &web(), T0 + 11_000),
            Err(Rejection::Conflict(_))
        ));
        assert_eq!(
            c.apply(Command::Resume, &web(), T0 + 100_000),
            Ok(EventKind::Resumed)
        );
        assert_eq!(c.deadline, Some(T0 + 150_000));
        assert!(matches!(
            c.apply(Command::Resume, &web(), T0 + 100_000),
            Err(Rejection::Conflict(_))
        ));
    }

    #[test]
    fn add_timeout_never_leaves_less_than_a_second() {
        let mut c = choice(Mode::Single, 60.0, OnTimeout::SubmitDefault);
        c.apply(Command::AddTimeout { ms: -3_600_000 }, &web(), T0)
            .expect("applies");
        assert_eq!(c.remaining_ms(T0), 1_000);
        c.apply(Command::AddTimeout { ms: 60_000 }, &web(), T0)
            .expect("applies");
        assert_eq!(c.remaining_ms(T0), 61_000);
    }

    #[test]
    fn set_timeout_rejects_out_of_range_values_and_names_the_field() {
        let mut c = choice(Mode::Single, 60.0, OnTimeout::SubmitDefault);
        let err = c
            .apply(Command::SetTimeout { ms: 0 }, &web(), T0)
            .unwrap_err();
        assert!(matches!(err, Rejection::Invalid { ref field, .. } if field == "seconds"));
        assert_eq!(c.version, 1);
    }

    #[test]
    fn expire_submits_the_default_or_cancels() {
        let mut c = choice(Mode::Single, 5.0, OnTimeout::SubmitDefault);
        assert!(matches!(
            c.apply(Command::Expire, &web(), T0 + 4_999),
            Err(Rejection::Conflict(_))
        ));
        assert_eq!(
            c.apply(Command::Expire, &web(), T0 + 5_000),
            Ok(EventKind::TimedOut)
        );
        let result = c.result.clone().expect("final");
        assert_eq!(result.selection, vec!["no".to_string()]);
        assert_eq!(result.via, Some(Via::Timeout));

        let mut c = choice(Mode::Single, 5.0, OnTimeout::Cancel);
        c.apply(Command::Expire, &web(), T0 + 6_000).expect("due");
        assert_eq!(c.status, Status::TimedOut);
        assert!(c.result.expect("final").selection.is_empty());
    }

    #[test]
    fn submit_checks_the_selection_against_the_options_and_bounds() {
        let mut c = choice(Mode::Single, 60.0, OnTimeout::SubmitDefault);
        assert!(
            matches!(c.apply(submit(&["nope"]), &web(), T0), Err(Rejection::Invalid { field, .. }) if field == "selection[0]")
        );
        assert!(
            matches!(c.apply(submit(&["yes", "no"]), &web(), T0), Err(Rejection::Invalid { field, .. }) if field == "selection")
        );
        assert!(matches!(
            c.apply(submit(&[]), &web(), T0),
            Err(Rejection::Invalid { .. })
        ));
        assert_eq!(
            c.apply(submit(&["yes"]), &web(), T0),
            Ok(EventKind::Submitted)
        );
        assert_eq!(
            c.apply(submit(&["yes"]), &web(), T0),
            Err(Rejection::AlreadyFinal)
        );
    }

    #[test]
    fn a_rung_timer_starts_its_next_round_on_reset() {
        let mut t = choice(Mode::Timer, 2.0, OnTimeout::SubmitDefault);
        t.apply(Command::Expire, &web(), T0 + 2_000).expect("due");
        assert!(t.status.is_final() && !t.is_settled());
        assert_eq!(
            t.apply(Command::Reset, &web(), T0 + 3_000),
            Ok(EventKind::Reset)
        );
        assert_eq!(
            (t.status, t.round, t.deadline),
            (Status::Pending, 2, Some(T0 + 5_000))
        );
        let mut c = choice(Mode::Single, 2.0, OnTimeout::SubmitDefault);
        c.apply(Command::Expire, &web(), T0 + 2_000).expect("due");
        assert!(c.is_settled());
        assert_eq!(
            c.apply(Command::Reset, &web(), T0 + 3_000),
            Err(Rejection::AlreadyFinal)
        );
        t.apply(Command::Cancel { annotation: None }, &web(), T0 + 4_000)
            .expect("stopped");
        assert!(t.is_settled(), "a stopped timer has no next round");
        assert_eq!(
            t.apply(Command::Reset, &web(), T0 + 5_000),
            Err(Rejection::AlreadyFinal)
        );
    }

    #[test]
    fn create_names_the_field_at_fault() {
        let field_of = |req: CreateRequest| match NewChoice::try_from(req) {
            Err(Rejection::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        let opt = |id: &str| OptionRequest {
            id: id.into(),
            ..Default::default()
        };
        assert_eq!(field_of(CreateRequest::default()), "title");
        assert_eq!(
            field_of(CreateRequest {
                title: "x".into(),
                ..Default::default()
            }),
            "options"
        );
        assert_eq!(
            field_of(CreateRequest {
                title: "x".into(),
                options: Some(vec![opt("a"), opt("a")]),
                ..Default::default()
            }),
            "options[1].id"
        );
        assert_eq!(
            field_of(CreateRequest {
                title: "x".into(),
                options: Some(vec![opt("a")]),
                timeout_seconds: Some(0.5),
                ..Default::default()
            }),
            "timeout_seconds"
        );
        assert_eq!(
            field_of(CreateRequest {
                title: "x".into(),
                options: Some(vec![opt("a")]),
                default_selection: Some(vec!["b".into()]),
                ..Default::default()
            }),
            "default_selection[0]"
        );
    }

    /// A single choice over yes/no/maybe that `names` decide, and each approver's key.
    fn approved(mode: Mode, names: &[&str], quorum: Option<u64>) -> (Choice, Vec<String>) {
        let req = CreateRequest {
            title: "Deploy?".into(),
            mode: Some(mode),
            options: Some(
                ["yes", "no", "maybe"]
                    .map(|id| OptionRequest {
                        id: id.into(),
                        ..Default::default()
                    })
                    .to_vec(),
            ),
            approvers: Some(names.iter().map(|n| n.to_string()).collect()),
            quorum,
            timeout_seconds: Some(60.0),
            ..Default::default()
        };
        let mut new = NewChoice::try_from(req).expect("valid");
        let mut n = 0;
        let keys = new
            .issue_approver_keys(|| {
                n += 1;
                Ok::<_, ()>(format!("key-{n}"))
            })
            .expect("keys");
        let choice = Choice::new("c1".into(), new, T0);
        (choice, keys.into_iter().map(|(_, key)| key).collect())
    }

    fn vote(key: &str, ids: &[&str]) -> Command {
        Command::Submit(Answer {
            selection: ids.iter().map(|s| s.to_string()).collect(),
            approver_key: Some(key.to_string()),
            ..Answer::default()
        })
    }

    #[test]
    fn two_of_three_matching_votes_decide_and_a_third_finds_it_final() {
        let (mut c, keys) = approved(Mode::Single, &["ana", "bo", "cy"], Some(2));
        assert!(matches!(
            c.apply(submit(&["yes"]), &web(), T0),
            Err(Rejection::NotAnApprover(_))
        ));
        assert!(matches!(
            c.apply(vote("key-of-another-choice", &["yes"]), &web(), T0),
            Err(Rejection::NotAnApprover(_))
        ));
        assert_eq!(c.version, 1, "refused votes change nothing");
        assert_eq!(
            c.apply(vote(&keys[0], &["yes"]), &web(), T0 + 1),
            Ok(EventKind::Voted)
        );
        assert_eq!(c.status, Status::Pending);
        assert_eq!(c.votes_needed(), Some(1));
        assert_eq!(
            c.apply(vote(&keys[2], &["yes"]), &web(), T0 + 2),
            Ok(EventKind::Submitted)
        );
        let result = c.result.clone().expect("final");
        assert_eq!(result.selection, vec!["yes".to_string()]);
        assert_eq!(result.by.as_deref(), Some("cy"));
        let voters: Vec<&str> = result.votes.iter().map(|v| v.approver.as_str()).collect();
        assert_eq!(voters, ["ana", "cy"]);
        assert_eq!(
            c.apply(vote(&keys[1], &["yes"]), &web(), T0 + 3),
            Err(Rejection::AlreadyFinal)
        );
    }

    #[test]
    fn a_split_vote_that_can_no_longer_reach_the_quorum_cancels() {
        let (mut c, keys) = approved(Mode::Single, &["ana", "bo", "cy"], None);
        assert_eq!(c.spec.approval.as_ref().map(|a| a.quorum), Some(3));
        c.apply(vote(&keys[0], &["yes"]), &web(), T0)
            .expect("votes");
        assert_eq!(
            c.apply(vote(&keys[1], &["no"]), &web(), T0),
            Ok(EventKind::Cancelled)
        );
        let result = c.result.expect("final");
        assert_eq!(result.annotation.as_deref(), Some("no quorum"));
        assert_eq!(result.votes.len(), 2);
    }

    #[test]
    fn a_changed_vote_counts_once_and_order_does_not_matter_in_multi() {
        let (mut c, keys) = approved(Mode::Single, &["ana", "bo", "cy"], Some(2));
        c.apply(vote(&keys[0], &["yes"]), &web(), T0)
            .expect("votes");
        assert_eq!(
            c.apply(vote(&keys[0], &["yes"]), &web(), T0 + 1),
            Ok(EventKind::Voted),
            "the same approver twice is still one vote"
        );
        c.apply(vote(&keys[0], &["no"]), &web(), T0 + 2)
            .expect("changes");
        assert_eq!(c.votes.len(), 1);
        assert_eq!(c.votes[0].selection, vec!["no".to_string()]);
        assert_eq!(
            c.apply(vote(&keys[1], &["yes"]), &web(), T0 + 3),
            Ok(EventKind::Voted),
            "ana's first vote no longer counts"
        );

        let (mut m, keys) = approved(Mode::Multi, &["ana", "bo"], None);
        m.apply(vote(&keys[0], &["yes", "maybe"]), &web(), T0)
            .expect("votes");
        assert_eq!(
            m.apply(vote(&keys[1], &["maybe", "yes"]), &web(), T0),
            Ok(EventKind::Submitted)
        );
    }

    #[test]
    fn the_deadline_keeps_the_votes_and_a_key_on_an_open_choice_is_refused() {
        let (mut c, keys) = approved(Mode::Single, &["ana", "bo"], None);
        c.apply(vote(&keys[0], &["yes"]), &web(), T0)
            .expect("votes");
        c.apply(Command::Expire, &web(), T0 + 60_000).expect("due");
        assert_eq!(c.status, Status::TimedOut);
        assert_eq!(c.result.expect("final").votes.len(), 1);

        let mut open = choice(Mode::Single, 60.0, OnTimeout::SubmitDefault);
        assert!(matches!(
            open.apply(vote("key-1", &["yes"]), &web(), T0),
            Err(Rejection::Invalid { field, .. }) if field == "as"
        ));
    }

    #[test]
    fn approvers_and_quorum_are_checked_at_creation() {
        let field_of = |mode: Mode, names: Vec<&str>, quorum: Option<u64>| {
            let req = CreateRequest {
                title: "x".into(),
                mode: Some(mode),
                options: (mode.has_options()).then(|| {
                    vec![OptionRequest {
                        id: "a".into(),
                        ..Default::default()
                    }]
                }),
                approvers: Some(names.into_iter().map(String::from).collect()),
                quorum,
                ..Default::default()
            };
            match NewChoice::try_from(req) {
                Err(Rejection::Invalid { field, .. }) => field,
                other => panic!("expected invalid, got {other:?}"),
            }
        };
        assert_eq!(field_of(Mode::Text, vec!["ana"], None), "approvers");
        assert_eq!(field_of(Mode::Hybrid, vec!["ana"], None), "approvers");
        assert_eq!(field_of(Mode::Timer, vec!["ana"], None), "approvers");
        assert_eq!(field_of(Mode::Single, vec![], None), "approvers");
        assert_eq!(
            field_of(Mode::Single, vec!["ana", "ana"], None),
            "approvers[1]"
        );
        assert_eq!(field_of(Mode::Single, vec![" "], None), "approvers[0]");
        assert_eq!(field_of(Mode::Single, vec!["ana", "bo"], Some(0)), "quorum");
        assert_eq!(field_of(Mode::Single, vec!["ana", "bo"], Some(3)), "quorum");
        let quorum_alone = CreateRequest {
            title: "x".into(),
            options: Some(vec![OptionRequest {
                id: "a".into(),
                ..Default::default()
            }]),
            quorum: Some(1),
            ..Default::default()
        };
        assert!(matches!(
            NewChoice::try_from(quorum_alone),
            Err(Rejection::Invalid { field, .. }) if field == "quorum"
        ));
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            proptest::sample::subsequence(vec!["yes", "no", "maybe", "other"], 0..=3)
                .prop_map(|ids| submit(&ids)),
            Just(Command::Cancel { annotation: None }),
            (-10_000i64..700_000_000).prop_map(|ms| Command::SetTimeout { ms }),
            (-700_000_000i64..700_000_000).prop_map(|ms| Command::AddTimeout { ms }),
            Just(Command::Pause),
            Just(Command::Resume),
            Just(Command::Reset),
            Just(Command::Expire),
        ]
    }

    fn any_mode() -> impl Strategy<Value = Mode> {
        prop_oneof![
            Just(Mode::Single),
            Just(Mode::Multi),
            Just(Mode::Hybrid),
            Just(Mode::Text),
            Just(Mode::Timer)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn votes_reach_the_quorum_exactly_once_and_never_by_one_approver_twice(
            approvers in 1usize..6,
            quorum_seed in 0usize..6,
            steps in proptest::collection::vec(
                (0usize..7, proptest::sample::subsequence(vec!["yes", "no", "maybe"], 0..=2), 0i64..20_000, 0u8..10),
                0..40,
            ),
        ) {
            let names: Vec<String> = (0..approvers).map(|i| format!("p{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let quorum = quorum_seed % approvers + 1;
            let (mut c, keys) = approved(Mode::Multi, &names, Some(quorum as u64));
            let mut now = T0;
            let mut decided = 0;
            for (who, ids, dt, other) in steps {
                now += dt;
                let before = c.clone();
                // Mostly votes (some with a key nobody holds), now and then another command.
                let command = match other {
                    0 => Command::Pause,
                    1 => Command::Resume,
                    2 => Command::Expire,
                    3 => Command::AddTimeout { ms: 30_000 },
                    _ => vote(keys.get(who).map_or("nobody's key", String::as_str), &ids),
                };
                let is_vote = matches!(command, Command::Submit(_));
                match c.apply(command, &web(), now) {
                    Ok(kind) => {
                        if kind == EventKind::Submitted {
                            prop_assert!(is_vote);
                            decided += 1;
                            let result = c.result.clone().expect("final");
                            let agreeing: Vec<&str> = result.votes.iter()
                                .filter(|v| same_selection(&v.selection, &result.selection))
                                .map(|v| v.approver.as_str())
                                .collect();
                            prop_assert_eq!(agreeing.len(), quorum, "decided by exactly the quorum's vote");
                            prop_assert_eq!(before.agreeing_with(&result.selection), quorum - 1);
                        }
                        if kind == EventKind::Voted {
                            prop_assert!(!c.status.is_final());
                        }
                    }
                    Err(_) => prop_assert_eq!(&c, &before, "a refused command changes nothing"),
                }
                let mut voters: Vec<&str> = c.votes.iter().map(|v| v.approver.as_str()).collect();
                voters.sort_unstable();
                voters.dedup();
                prop_assert_eq!(voters.len(), c.votes.len(), "one latest vote per approver");
                prop_assert!(c.votes.len() <= approvers);
                if !c.status.is_final() {
                    prop_assert!(c.leading_votes() < quorum, "an open choice has not reached its quorum");
                }
                prop_assert!(decided <= 1);
            }
        }

        #[test]
        fn any_sequence_of_commands_keeps_the_invariants(
            mode in any_mode(),
            timeout_s in 1u32..600,
            steps in proptest::collection::vec((any_command(), 0i64..400_000), 0..40),
        ) {
            let mut c = choice(mode, f64::from(timeout_s), OnTimeout::SubmitDefault);
            let mut now = T0;
            let mut final_events = 0;
            for (command, dt) in steps {
                now += dt;
                let before = c.clone();
                match c.apply(command.clone(), &web(), now) {
                    Ok(kind) => {
                        prop_assert_eq!(c.version, before.version + 1, "version strictly increases");
                        if before.status.is_final() {
                            // The one exception to "final never changes": a rung timer's next round.
                            prop_assert_eq!(mode, Mode::Timer);
                            prop_assert_eq!(before.status, Status::TimedOut);
                            prop_assert_eq!(kind, EventKind::Reset);
                            prop_assert_eq!(c.round, before.round + 1);
                            final_events = 0;
                        }
                        if kind.is_final() {
                            final_events += 1;
                            prop_assert!(c.status.is_final() && c.result.is_some() && c.deadline.is_none());
                        }
                    }
                    Err(_) => prop_assert_eq!(&c, &before, "a rejected command changes nothing"),
                }
                prop_assert!(final_events <= 1, "exactly one final event per round");
                prop_assert_eq!(final_events == 1, c.status.is_final());
                prop_assert!(c.remaining_ms(now) >= 0);
                prop_assert!(c.remaining_ms(now) <= MAX_TIMEOUT_MS);
                prop_assert_eq!(c.deadline.is_some(), c.status == Status::Pending);
                prop_assert_eq!(c.paused_remaining.is_some(), c.status == Status::Paused);
            }
        }
    }
}
