//! The HTTP face: one route table, the shared state, and the small pieces every handler uses
//! (body and query parsing, content negotiation). Handlers live in files by feature.

pub mod access;
pub mod api;
pub mod commands;
pub mod error;
pub mod limits;
pub mod listen;
pub mod log;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod push;
pub mod sse;
pub mod ws;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Query, Request};
use axum::handler::Handler as _;
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::de::DeserializeOwned;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::engine::Engine;
use crate::hub::Hub;
use crate::live::Viewer;
pub use error::AppError;

/// Only our own scripts and styles: no inline script, no eval, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Does this request change state (anything but GET, HEAD and OPTIONS)? Such requests take a
/// token from the rate limit and must come from one of our own pages.
pub fn changes_state(method: &axum::http::Method) -> bool {
    use axum::http::Method;
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Bodies larger than this get 413 `too_large`.
pub const BODY_LIMIT: usize = 1 << 20;

/// What every handler and middleware is given. axum clones it for each layer a request passes
/// through, so it is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub engine: Engine,
    pub hub: Hub,
    pub settings: Arc<Settings>,
    /// Rate limits and stream caps, with their live counts.
    pub guards: Arc<limits::Guards>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The Web Push devices and the VAPID key.
    pub web_push: Arc<crate::webpush::WebPush>,
}

/// What handlers need to know about how the server was started.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Scheme, host and port used in links (`url` in the choice JSON), without a trailing slash.
    pub public_url: String,
    /// With a token, the API and the dashboard need it (see [`access`]).
    pub token: Option<access::Token>,
    /// The server listens on a loopback address only: it then answers only to loopback host
    /// names (and the public URL's), so a web page cannot reach it by DNS rebinding.
    pub loopback: bool,
}

impl Settings {
    pub fn new(public_url: String) -> Settings {
        Settings {
            public_url,
            token: None,
            loopback: false,
        }
    }

    /// Is this browser request from one of our own pages? A browser sends `Origin` on POSTs and
    /// upgrades, and `Sec-Fetch-Site` on every request; a request with neither (curl, a script,
    /// a native client) passes. Under `Referrer-Policy: no-referrer` a browser sends
    /// `Origin: null` even for our own form posts; `Sec-Fetch-Site` then decides.
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        let origin = headers.get(header::ORIGIN);
        let origin = match origin.map(|v| v.to_str()) {
            Some(Ok(origin)) if origin != "null" => origin,
            Some(Err(_)) => return false,
            opaque_or_none => {
                return match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
                    // No Origin and no Sec-Fetch-Site: not a browser. `Origin: null` alone
                    // (a sandboxed frame, an old browser) is not trusted.
                    None => opaque_or_none.is_none(),
                    // `none`: the person typed the address or used a bookmark.
                    Some(site) => site == b"same-origin" || site == b"none",
                };
            }
        };
        if origin.eq_ignore_ascii_case(&self.public_url) {
            return true;
        }
        // Reached under another name than the public URL (127.0.0.1 vs localhost): the Host the
        // browser used is ours too.
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        !host.is_empty()
            && (origin.eq_ignore_ascii_case(&format!("http://{host}"))
                || origin.eq_ignore_ascii_case(&format!("https://{host}")))
    }

    /// Is this request exempt from the per-client rate limit? The limit protects a public
    /// server from anonymous visitors; it does not apply to a program holding the token, nor
    /// to a local program talking to a loopback server without one (a script creating 300
    /// choices back to back). Browsers (they send `Origin` or `Sec-Fetch-*`) stay limited.
    pub fn unmetered(&self, headers: &HeaderMap) -> bool {
        match &self.token {
            Some(token) => token.bearer_in(headers),
            None => {
                self.loopback
                    && !headers.contains_key(header::ORIGIN)
                    && !headers.contains_key("sec-fetch-site")
                    && !headers.contains_key("sec-fetch-mode")
            }
        }
    }

    /// May this request name this host? Always, unless the server listens on loopback only:
    /// then only loopback names and the public URL's host (DNS rebinding defence). A request
    /// without `Host` (HTTP/1.0) passes.
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        if !self.loopback {
            return true;
        }
        let Some(host) = headers.get(header::HOST) else {
            return true;
        };
        let Ok(host) = host.to_str() else {
            return false;
        };
        let name = host_name(host);
        let public = self
            .public_url
            .split_once("://")
            .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
        name.eq_ignore_ascii_case("localhost")
            || name.to_ascii_lowercase().ends_with(".localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback())
            || (!public.is_empty() && name.eq_ignore_ascii_case(host_name(public)))
    }
}

/// `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    }
}

pub fn router(state: AppState) -> Router {
    let mcp_stopping = tokio_util::sync::CancellationToken::new();
    let mut shutdown = state.hub.shutdown_signal();
    let stop = mcp_stopping.clone();
    tokio::spawn(async move {
        let _ = shutdown.wait_for(|down| *down).await;
        stop.cancel();
    });
    let mcp = Router::new()
        .route_service(
            "/mcp",
            crate::mcp::http_service(
                state.engine.clone(),
                state.settings.public_url.clone(),
                mcp_stopping,
            ),
        )
        .route_layer(from_fn_with_state(state.clone(), access::same_origin_only));
    let deadline = || from_fn_with_state(state.clone(), limits::deadline);
    let rate_limit = || from_fn_with_state(state.clone(), limits::rate_limit);
    let token = || from_fn_with_state(state.clone(), access::require_token);

    // Anyone may use these: nothing is at stake, or the choice id in the path is the capability.
    let open = Router::new()
        .route("/healthz", get(api::healthz))
        .route("/login", get(access::login_form).post(access::login))
        .route("/logout", post(access::logout))
        .route("/name", post(pages::set_name))
        .route("/choice/{id}", get(pages::choice))
        .route("/choice/{id}/events", get(sse::choice_events))
        .route("/choice/{id}/events/leave", post(pages::leave))
        .route("/choice/{id}/{action}", post(commands::command))
        .route("/ws/{id}", get(ws::choice_socket))
        .route("/static/app.css", get(pages::stylesheet))
        .route("/static/htmx.js", get(pages::htmx))
        .route("/static/{version}/{file}", get(pages::module))
        .route("/static/icon-192.png", get(pages::icon_192))
        .route("/static/icon-512.png", get(pages::icon_512))
        .route("/manifest.webmanifest", get(pages::manifest))
        .route("/sw.js", get(pages::service_worker))
        .route("/offline", get(pages::offline))
        .route_layer(deadline())
        .route_layer(rate_limit());

    // These need the token, when one is set: the API, the log, metrics, the dashboard and MCP.
    let guarded = Router::new()
        .merge(mcp)
        .route("/api/choices", post(api::create).get(api::list))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/choices/{id}", get(api::one))
        .route("/api/status", get(api::status))
        .route("/api/notes", post(api::create_note).get(api::notes))
        .route("/api/events", get(log::events))
        .route("/api/push/key", get(push::key))
        .route(
            "/api/push/subscriptions",
            get(push::list).post(push::subscribe),
        )
        .route("/api/push/subscriptions/{id}", delete(push::unsubscribe))
        .route("/ws", get(ws::log_socket))
        .route("/metrics", get(ops::metrics))
        .route("/", get(pages::dashboard))
        .route("/board", get(pages::board))
        .route("/events", get(sse::dashboard_events))
        .route("/timers", post(pages::new_timer))
        .route_layer(deadline())
        // A long poll holds its answer up to its own `timeout`, so the request time limit
        // does not apply.
        .route("/api/choices/{id}/wait", get(api::wait))
        .route_layer(rate_limit())
        .route_layer(token());

    // An unknown path says 404 only to those who may ask about the guarded ones.
    let not_found = tower::Layer::layer(&token(), api::not_found.with_state(state.clone()));

    Router::new()
        .merge(open)
        .merge(guarded)
        .fallback_service(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Before any route: the host name and the cross-site check.
        .layer(from_fn_with_state(state.clone(), access::same_site))
        // Compresses pages, fragments, JSON and static files; never SSE (tower-http skips it).
        .layer(CompressionLayer::new())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // A choice URL is a capability: it must not leak to other sites in Referer.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        // Outermost: every request has an id, on every log line and on the response.
        .layer(from_fn_with_state(state.clone(), ops::access_log))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(ops::NewRequestId))
        .layer(axum::middleware::map_request(ops::drop_odd_request_id))
        .with_state(state)
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
        .map(|n| {
            n.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(crate::choice::MAX_NAME)
                .collect::<String>()
        })
        .filter(|n| !n.is_empty());
    Viewer { key, name }
}
