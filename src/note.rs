//! Activity notes: what a program reports about itself (started, failed, heartbeat). A note is
//! an event in the same log as the choices' (type `note`, no choice), so pollers and streams
//! see both in one order.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::choice::names::Source;
use crate::choice::{Rejection, invalid};

pub const MAX_MESSAGE: usize = 2_000;
pub const MAX_KIND: usize = 64;
pub const KIND: &str = "note";
/// The kind that marks a heartbeat; a source sending them can go stale.
pub const HEARTBEAT: &str = "heartbeat";

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    #[default]
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The note as programs send it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(example = json!({"source": "nightly-build", "kind": "started", "message": "build 1234 started"}))]
pub struct NoteRequest {
    /// The program, 1 to 64 characters.
    #[schema(required = true)]
    pub source: String,
    /// Free, at most 64 characters; default `note`. `heartbeat` lets a source go stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// 1 to 2,000 characters.
    #[schema(required = true)]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
}

/// A validated note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub source: String,
    pub kind: String,
    pub message: String,
    pub level: Level,
}

impl TryFrom<NoteRequest> for Note {
    type Error = Rejection;

    fn try_from(req: NoteRequest) -> Result<Note, Rejection> {
        let source = String::from(Source::required(&req.source)?);
        let kind = req
            .kind
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| KIND.into());
        if kind.chars().count() > MAX_KIND || kind.chars().any(char::is_control) {
            return Err(invalid(
                "kind",
                format!("kind is at most {MAX_KIND} characters, without control characters"),
            ));
        }
        if req.message.trim().is_empty() || req.message.chars().count() > MAX_MESSAGE {
            return Err(invalid(
                "message",
                format!("message is 1 to {MAX_MESSAGE} characters"),
            ));
        }
        Ok(Note {
            source,
            kind,
            message: req.message,
            level: req.level.unwrap_or_default(),
        })
    }
}

impl Note {
    /// The event's `data`.
    pub fn data(&self) -> Value {
        json!({"source": self.source, "kind": self.kind, "message": self.message, "level": self.level})
    }

    /// Reads a note back from an event's data (None if it is not one).
    pub fn from_data(data: &Value) -> Option<Note> {
        Some(Note {
            source: data["source"].as_str()?.to_string(),
            kind: data["kind"].as_str().unwrap_or(KIND).to_string(),
            message: data["message"].as_str()?.to_string(),
            level: serde_json::from_value(data["level"].clone()).unwrap_or_default(),
        })
    }
}
