//! One error type for every handler. Each variant has a stable code from API.md, which gives
//! its status ([`ErrorCode`]); it renders as JSON (`ErrorBody`) for programs and as a readable
//! page or fragment for people, as the client's [`Asks`] says. Internal causes are logged with
//! their chain and answered as an opaque 500. The error responses the OpenAPI document lists
//! are declared here too ([`errors`]), once each.

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{Asks, Wants};
use crate::choice::Rejection;
use crate::engine::error::{ALREADY_FINAL, EngineError, FAULT, NO_SUCH_CHOICE, OVERLOADED};
use crate::error_code::ErrorCode;

/// Every error as JSON: a stable code, a message for people, and the field at fault where one is.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    code: ErrorCode,
    message: String,
    /// The field at fault, as a path (`options[1].id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// The error responses many routes share, each declared once: a route lists the ones it gives.
pub mod errors {
    use super::ErrorBody;

    #[derive(utoipa::IntoResponses)]
    #[response(status = 400, description = "The query string is malformed.")]
    pub struct BadQuery(pub ErrorBody);

    #[derive(utoipa::IntoResponses)]
    #[response(status = 400, description = "The body is not valid JSON.")]
    pub struct BadJson(pub ErrorBody);

    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 401,
        description = "A token is configured and missing or wrong.",
        headers(("www-authenticate" = String))
    )]
    pub struct Unauthorized(pub ErrorBody);

    #[derive(utoipa::IntoResponses)]
    #[response(status = 403, description = "A browser request from another origin.")]
    pub struct ForeignOrigin(pub ErrorBody);

    #[derive(utoipa::IntoResponses)]
    #[response(status = 404, description = "No such choice.")]
    pub struct NoSuchChoice(pub ErrorBody);

    #[derive(utoipa::IntoResponses)]
    #[response(status = 408, description = "The request body did not arrive in time.")]
    pub struct SlowBody(pub ErrorBody);

    #[derive(utoipa::IntoResponses)]
    #[response(status = 413, description = "The body is over 1 MiB.")]
    pub struct TooLarge(pub ErrorBody);

    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 422,
        description = "Well-formed but not acceptable; `field` names the culprit."
    )]
    pub struct Invalid(pub ErrorBody);

    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 429,
        description = "Too many requests from this client.",
        headers(("retry-after" = u64, description = "Seconds to wait"))
    )]
    pub struct RateLimited(pub ErrorBody);

    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 503,
        description = "The server could not answer in time, or its database does not answer.",
        headers(("retry-after" = u64, description = "Seconds to wait"))
    )]
    pub struct Unavailable(pub ErrorBody);
}

#[derive(Debug)]
pub enum AppError {
    Malformed(String),
    Unauthorized,
    ForbiddenOrigin,
    /// A vote on a choice that approvers decide, without one of its approvers' keys.
    NotAnApprover(String),
    NotFound,
    /// `POST /choice/{id}/{action}` with an action there is not: the message names it and
    /// lists those there are.
    NoSuchAction(String),
    /// No Web Push device with that id.
    NoSuchDevice,
    AlreadyFinal,
    Conflict(String),
    TooLarge,
    Invalid {
        field: Option<String>,
        message: String,
    },
    RateLimited {
        retry_after_secs: u64,
    },
    /// The client did not finish sending its request in time.
    RequestTimeout(String),
    Unavailable(String),
    Internal(anyhow::Error),
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Malformed(_) => ErrorCode::Malformed,
            AppError::Unauthorized => ErrorCode::Unauthorized,
            AppError::ForbiddenOrigin => ErrorCode::ForbiddenOrigin,
            AppError::NotAnApprover(_) => ErrorCode::NotAnApprover,
            AppError::NotFound | AppError::NoSuchAction(_) | AppError::NoSuchDevice => {
                ErrorCode::NotFound
            }
            AppError::AlreadyFinal => ErrorCode::AlreadyFinal,
            AppError::Conflict(_) => ErrorCode::Conflict,
            AppError::TooLarge => ErrorCode::TooLarge,
            AppError::Invalid { .. } => ErrorCode::Invalid,
            AppError::RateLimited { .. } => ErrorCode::RateLimited,
            AppError::RequestTimeout(_) => ErrorCode::RequestTimeout,
            AppError::Unavailable(_) => ErrorCode::Unavailable,
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn message(&self) -> String {
        match self {
            AppError::Malformed(m)
            | AppError::Conflict(m)
            | AppError::NotAnApprover(m)
            | AppError::RequestTimeout(m)
            | AppError::Unavailable(m) => m.clone(),
            AppError::Invalid { message, .. } => message.clone(),
            AppError::Unauthorized => {
                "a valid token is required (Authorization: Bearer TOKEN)".into()
            }
            AppError::ForbiddenOrigin => "this request came from another site".into(),
            AppError::NotFound => NO_SUCH_CHOICE.into(),
            AppError::NoSuchAction(m) => m.clone(),
            AppError::NoSuchDevice => "no such push subscription".into(),
            AppError::AlreadyFinal => ALREADY_FINAL.into(),
            AppError::TooLarge => "the request body is too large".into(),
            AppError::RateLimited { retry_after_secs } => {
                format!("too many requests; try again in {retry_after_secs} s")
            }
            AppError::Internal(_) => FAULT.into(),
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// Logs an internal cause once, whichever way the error is rendered.
    fn log(&self) {
        if let AppError::Internal(e) = self {
            tracing::error!(error = %format!("{e:#}"), "internal error");
        }
    }

    /// Headers every rendering of this error carries.
    fn decorate(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        match self {
            AppError::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            AppError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(5u64));
            }
            AppError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"choiceboard\""),
                );
            }
            // The rest of the request may still be on its way: do not wait for it.
            AppError::RequestTimeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }

    /// The error as an HTML body (a page or a fragment), for people.
    pub fn into_html(self, render: impl FnOnce(&AppError) -> maud::Markup) -> Response {
        self.log();
        let body = render(&self);
        self.decorate((self.status(), body).into_response())
    }

    /// The error as a page for a browser, with a link `back` to where the person was.
    pub fn into_page(self, back: Option<&str>) -> Response {
        self.into_html(|e| crate::views::error_page(e.code(), &e.message(), e.field(), back))
    }

    /// The error as a fragment for HTMX, sent into the page's error box: htmx 4 swaps error
    /// responses too, into the request's own target unless told otherwise.
    pub fn into_fragment(self) -> Response {
        let mut response =
            self.into_html(|e| crate::views::error_fragment(e.code(), &e.message(), e.field()));
        let headers = response.headers_mut();
        headers.insert("hx-retarget", HeaderValue::from_static("#errors"));
        headers.insert("hx-reswap", HeaderValue::from_static("innerHTML"));
        response
    }

    /// The error in the form the client wants; a page links `back` to where the person was.
    pub fn render(self, wants: Wants, back: Option<&str>) -> Response {
        match wants {
            Wants::Json => self.into_response(),
            Wants::Fragment => self.into_fragment(),
            Wants::Page => self.into_page(back),
        }
    }

    /// The error for a middleware, which does not know the route: JSON unless the headers
    /// ask for HTML.
    pub fn render_for(self, headers: &HeaderMap) -> Response {
        self.render(Asks::or_json(headers), None)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.message(),
                field: self.field().map(str::to_string),
            },
        };
        self.decorate((self.status(), axum::Json(body)).into_response())
    }
}

impl From<Rejection> for AppError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::AlreadyFinal => AppError::AlreadyFinal,
            Rejection::Conflict(m) => AppError::Conflict(m),
            Rejection::NotAnApprover(m) => AppError::NotAnApprover(m),
            Rejection::Invalid { field, message } => AppError::Invalid {
                field: Some(field),
                message,
            },
        }
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound => AppError::NotFound,
            EngineError::Rejected(r) => r.into(),
            EngineError::Busy => AppError::Unavailable(e.message()),
            EngineError::Internal(e) => e.into(),
        }
    }
}

impl From<anyhow::Error> for AppError {
    /// Overload is answered 503 with `Retry-After`; anything else is a fault.
    fn from(e: anyhow::Error) -> Self {
        if crate::engine::error::overloaded(&e) {
            return AppError::Unavailable(OVERLOADED.into());
        }
        AppError::Internal(e)
    }
}

impl From<BytesRejection> for AppError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge
        } else {
            AppError::Malformed(r.body_text())
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        AppError::Malformed(r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_error_answers_as_the_engine_names_it() {
        let cases = || {
            [
                EngineError::NotFound,
                EngineError::Rejected(Rejection::AlreadyFinal),
                EngineError::Rejected(Rejection::Conflict("not while paused".into())),
                EngineError::Rejected(Rejection::NotAnApprover("no key".into())),
                EngineError::Rejected(crate::choice::invalid("options[1].id", "taken")),
                EngineError::Busy,
                EngineError::Internal(anyhow::anyhow!("disk on fire")),
                EngineError::Internal(anyhow::Error::new(crate::live::Busy)),
            ]
        };
        for (engine, app) in cases().into_iter().zip(cases().map(AppError::from)) {
            assert_eq!(app.code(), engine.code(), "{engine:?}");
            assert_eq!(app.message(), engine.message(), "{engine:?}");
            assert_eq!(app.field(), engine.field(), "{engine:?}");
        }
    }
}
