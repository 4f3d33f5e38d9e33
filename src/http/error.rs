//! One error type for every handler. Each variant has a status and a stable code from API.md;
//! it renders as JSON for programs and as a readable page or fragment for people. Internal
//! causes are logged with their chain and answered as an opaque 500.

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::choice::Rejection;
use crate::engine::EngineError;

#[derive(Debug)]
pub enum AppError {
    Malformed(String),
    Unauthorized,
    ForbiddenOrigin,
    /// A vote on a choice that approvers decide, without one of its approvers' keys.
    NotAnApprover(String),
    NotFound,
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
        match self {
            AppError::Malformed(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::ForbiddenOrigin | AppError::NotAnApprover(_) => StatusCode::FORBIDDEN,
            AppError::NotFound | AppError::NoSuchDevice => StatusCode::NOT_FOUND,
            AppError::AlreadyFinal | AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Malformed(_) => "malformed",
            AppError::Unauthorized => "unauthorized",
            AppError::ForbiddenOrigin => "forbidden_origin",
            AppError::NotAnApprover(_) => "not_an_approver",
            AppError::NotFound | AppError::NoSuchDevice => "not_found",
            AppError::AlreadyFinal => "already_final",
            AppError::Conflict(_) => "conflict",
            AppError::TooLarge => "too_large",
            AppError::Invalid { .. } => "invalid",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::RequestTimeout(_) => "request_timeout",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
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
            AppError::NotFound => "no such choice".into(),
            AppError::NoSuchDevice => "no such push subscription".into(),
            AppError::AlreadyFinal => {
                "the choice is already submitted, cancelled or timed out".into()
            }
            AppError::TooLarge => "the request body is too large".into(),
            AppError::RateLimited { retry_after_secs } => {
                format!("too many requests; try again in {retry_after_secs} s")
            }
            AppError::Internal(_) => "something went wrong on the server".into(),
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

    /// The error in the form the client reads, judged from its headers alone (middlewares do
    /// not know the route): a fragment for HTMX, a page for a browser, JSON for everyone else.
    pub fn render_for(self, headers: &HeaderMap) -> Response {
        if headers.get("hx-request").is_some_and(|v| v == "true") {
            return self.into_fragment();
        }
        let html = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if html {
            self.into_page(None)
        } else {
            self.into_response()
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let mut error = json!({"code": self.code(), "message": self.message()});
        if let Some(field) = self.field() {
            error["field"] = json!(field);
        }
        self.decorate((self.status(), axum::Json(json!({ "error": error }))).into_response())
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
            EngineError::Busy => AppError::Unavailable(
                "the server has more commands waiting than it takes; try again shortly".into(),
            ),
            EngineError::Internal(e) => e.into(),
        }
    }
}

impl From<anyhow::Error> for AppError {
    /// Overload is answered 503 with `Retry-After`; anything else is a fault.
    fn from(e: anyhow::Error) -> Self {
        if e.chain().any(|c| c.is::<crate::live::Busy>()) || crate::store::is_busy(&e) {
            return AppError::Unavailable("the server is busy; try again shortly".into());
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
