//! Why the engine refused, as API.md names it: the code, the message a person reads and the
//! field at fault, for every face that answers (the HTTP handlers, the in-process MCP tools).

use crate::choice::Rejection;
use crate::error_code::ErrorCode;

/// What a person is told when no choice has the id.
pub const NO_SUCH_CHOICE: &str = "no such choice";
/// What a person is told about a command on a choice that is final.
pub const ALREADY_FINAL: &str = "the choice is already submitted, cancelled or timed out";
/// What a person is told when the server is too busy to answer now.
pub const OVERLOADED: &str = "the server is busy; try again shortly";
/// What a person is told of a fault: its cause is logged, never shown.
pub const FAULT: &str = "something went wrong on the server";

#[derive(Debug)]
pub enum EngineError {
    NotFound,
    Rejected(Rejection),
    /// Too much is waiting already (the writer's queue is full): try again shortly.
    Busy,
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for EngineError {
    fn from(e: anyhow::Error) -> Self {
        EngineError::Internal(e)
    }
}

impl EngineError {
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::NotFound => ErrorCode::NotFound,
            EngineError::Rejected(Rejection::AlreadyFinal) => ErrorCode::AlreadyFinal,
            EngineError::Rejected(Rejection::Conflict(_)) => ErrorCode::Conflict,
            EngineError::Rejected(Rejection::NotAnApprover(_)) => ErrorCode::NotAnApprover,
            EngineError::Rejected(Rejection::Invalid { .. }) => ErrorCode::Invalid,
            EngineError::Busy => ErrorCode::Unavailable,
            EngineError::Internal(e) if overloaded(e) => ErrorCode::Unavailable,
            EngineError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The message for people; an internal cause is not theirs to read.
    pub fn message(&self) -> String {
        match self {
            EngineError::NotFound => NO_SUCH_CHOICE.into(),
            EngineError::Rejected(Rejection::AlreadyFinal) => ALREADY_FINAL.into(),
            EngineError::Rejected(
                Rejection::Conflict(message)
                | Rejection::NotAnApprover(message)
                | Rejection::Invalid { message, .. },
            ) => message.clone(),
            EngineError::Busy => {
                "the server has more commands waiting than it takes; try again shortly".into()
            }
            EngineError::Internal(e) if overloaded(e) => OVERLOADED.into(),
            EngineError::Internal(_) => FAULT.into(),
        }
    }

    /// The field at fault, as a path (`options[1].id`), where one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            EngineError::Rejected(Rejection::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }
}

/// Is this error the server having too much to do right now (reads waiting for the live state,
/// no pooled database connection free in time), rather than a fault? Such errors are answered
/// 503 with `Retry-After`.
pub fn overloaded(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<crate::live::Busy>()) || crate::store::is_busy(e)
}
