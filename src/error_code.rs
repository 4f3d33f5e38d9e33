//! The error codes of API.md, each with its HTTP status: one enum from the handler to the view,
//! the metrics label and the client, which parses the codes it is answered back into it.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// The error codes, with their statuses: 400 malformed, 401 unauthorized, 403
/// forbidden_origin and not_an_approver, 404 not_found, 408 request_timeout, 409 already_final
/// and conflict, 413 too_large, 422 invalid, 429 rate_limited, 500 internal, 503 unavailable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Malformed,
    Unauthorized,
    ForbiddenOrigin,
    NotAnApprover,
    NotFound,
    RequestTimeout,
    AlreadyFinal,
    Conflict,
    TooLarge,
    Invalid,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::ForbiddenOrigin => "forbidden_origin",
            ErrorCode::NotAnApprover => "not_an_approver",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::AlreadyFinal => "already_final",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Invalid => "invalid",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The status every error with this code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::Malformed => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::ForbiddenOrigin | ErrorCode::NotAnApprover => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::AlreadyFinal | ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn a_code_is_its_api_string_both_ways() {
        for code in [
            ErrorCode::Malformed,
            ErrorCode::Unauthorized,
            ErrorCode::ForbiddenOrigin,
            ErrorCode::NotAnApprover,
            ErrorCode::NotFound,
            ErrorCode::RequestTimeout,
            ErrorCode::AlreadyFinal,
            ErrorCode::Conflict,
            ErrorCode::TooLarge,
            ErrorCode::Invalid,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_value(code).expect("a string");
            assert_eq!(json, code.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(json).ok(), Some(code));
        }
        assert!(serde_json::from_value::<ErrorCode>("exploded".into()).is_err());
    }
}
