//! What a request carries, as handlers read it: the body, the path's ids, query parameters,
//! JSON parsed strictly, what the client wants back, and who the viewer is.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{HeaderMap, header, request::Parts};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::de::DeserializeOwned;

use super::AppError;
use crate::choice::names::DisplayName;
use crate::live::Viewer;

/// Does this request change state (anything but GET, HEAD and OPTIONS)? Such requests take a
/// token from the rate limit and must come from one of our own pages.
pub fn changes_state(method: &axum::http::Method) -> bool {
    use axum::http::Method;
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The raw request body, with limit and read errors mapped to our codes.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        Ok(Body(Bytes::from_request(req, state).await?))
    }
}

/// The path's `{id}` (and `{action}`), as sent. Ids are URL-safe, so one that would need
/// decoding (or cannot be decoded at all) names no choice: the store answers 404 for it,
/// through our error type, rather than axum's plain-text 400.
pub struct PathIds {
    pub id: String,
    pub action: String,
}

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        Ok(PathIds {
            id: get("id"),
            action: get("action"),
        })
    }
}

/// Query parameters by name, converted one by one so an error can name its parameter.
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        Ok(Params(map))
    }
}

impl Params {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An integer parameter within `min..=max`, or `default` when absent (`?limit=` with no
    /// value is not a number, and is refused).
    pub fn int(&self, name: &str, min: i64, max: i64, default: i64) -> Result<i64, AppError> {
        let Some(raw) = self.0.get(name) else {
            return Ok(default);
        };
        match raw.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(AppError::invalid(
                name,
                format!("{name} must be a whole number from {min} to {max}"),
            )),
        }
    }

    /// `since` (the last seq seen, default 0) and `limit` (1 to `max`, default 100): where a
    /// page of the log starts, and how long it is.
    pub fn page(&self, max: i64) -> Result<(i64, i64), AppError> {
        Ok((
            self.int("since", 0, i64::MAX, 0)?,
            self.int("limit", 1, max, 100)?,
        ))
    }

    /// Where a follower of the log starts: `since`, or `now` (the newest seq) when absent.
    pub fn since_or(&self, now: impl FnOnce() -> i64) -> Result<i64, AppError> {
        match self.int("since", 0, i64::MAX, -1)? {
            -1 => Ok(now()),
            since => Ok(since),
        }
    }

    /// A number of seconds within `min..=max` (fractions allowed), or `default` when absent.
    pub fn seconds(&self, name: &str, min: f64, max: f64, default: f64) -> Result<f64, AppError> {
        let Some(raw) = self.0.get(name) else {
            return Ok(default);
        };
        match raw.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= min && v <= max => Ok(v),
            _ => Err(AppError::invalid(
                name,
                format!("{name} must be a number of seconds from {min} to {max}"),
            )),
        }
    }
}

/// Parses a JSON object body into `T`; a type error names the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| AppError::Malformed(format!("the body is not valid JSON: {e}")))?;
    from_json(value)
}

/// A parsed JSON object into `T`. An error names the field at fault: the one of the wrong type,
/// or the one `T` does not have (a typo is refused, never silently ignored).
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, AppError> {
    if !value.is_object() {
        return Err(AppError::Invalid {
            field: None,
            message: "the body must be a JSON object".into(),
        });
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let message = e.inner().to_string();
        AppError::Invalid {
            field: (field != ".").then_some(field),
            message,
        }
    })
}

/// How the client wants to be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wants {
    /// A program: JSON.
    Json,
    /// HTMX on a page: an HTML fragment to swap in.
    Fragment,
    /// A person's browser: a page (for a form post, a 303 back to one).
    Page,
}

/// Extractor: what the client's headers ask for, decided here and nowhere else. `None` when
/// they do not say (curl's `*/*`); each route then picks its own default with [`Asks::or`].
#[derive(Clone, Copy, Debug)]
pub struct Asks(Option<Wants>);

impl Asks {
    pub fn of(headers: &HeaderMap) -> Asks {
        let has = |name: header::HeaderName, needle: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains(needle))
        };
        Asks(if headers.get("hx-request").is_some_and(|v| v == "true") {
            Some(Wants::Fragment)
        } else if has(header::ACCEPT, "text/html") {
            Some(Wants::Page)
        } else if has(header::ACCEPT, "application/json")
            || has(header::CONTENT_TYPE, "application/json")
        {
            Some(Wants::Json)
        } else {
            None
        })
    }

    pub fn or(self, default: Wants) -> Wants {
        self.0.unwrap_or(default)
    }

    /// How a middleware, which does not know the route, answers: JSON unless the headers ask
    /// for HTML.
    pub fn or_json(headers: &HeaderMap) -> Wants {
        Asks::of(headers).or(Wants::Json)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Asks {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Asks::of(&parts.headers))
    }
}

/// The browser's stable viewer id (set by the choice page) and its display name.
pub const VIEWER_COOKIE: &str = "cb_viewer";
pub const NAME_COOKIE: &str = "cb_name";

pub fn viewer_of(headers: &HeaderMap) -> Viewer {
    let jar = CookieJar::from_headers(headers);
    let key = jar
        .get(VIEWER_COOKIE)
        .map(Cookie::value)
        .filter(|k| {
            (16..=64).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string);
    // The name is form-encoded in the cookie's value (the jar writes and reads values as
    // they are).
    let name = jar
        .get(NAME_COOKIE)
        .and_then(|raw| {
            form_urlencoded::parse(format!("n={}", raw.value()).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        })
        .and_then(|n| DisplayName::fitted(&n))
        .map(String::from);
    Viewer { key, name }
}
