//! Who may do what. With a token configured, the API (`/api/*`, `/ws`, `/metrics`) needs
//! `Authorization: Bearer TOKEN` and the dashboard needs the token once, after which an
//! HttpOnly, SameSite=Strict cookie keeps the browser signed in. A choice's page, stream,
//! commands and socket need only its unguessable id. Independently of any token, everything a
//! browser can be made to send from another site (a POST, a WebSocket upgrade) must come from
//! one of our own pages, and a server listening on loopback answers only to loopback names.

use axum::extract::{Query, State};
use axum::extract::{Request, rejection::QueryRejection};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use super::{AppError, AppState, Asks, Body, Wants, changes_state};
use crate::views;

/// The dashboard's sign-in cookie.
pub const SESSION_COOKIE: &str = "cb_session";
const SESSION_MAX_AGE: cookie::time::Duration = cookie::time::Duration::days(30);

/// The configured token, and the cookie value derived from it. The cookie holds an HMAC of the
/// token rather than the token, and is the same on every node sharing the token.
#[derive(Clone)]
pub struct Token {
    secret: String,
    session: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// `None` for an absent or empty token: no token means no access control.
    pub fn new(secret: Option<&str>) -> Option<Token> {
        let secret = secret?.trim();
        if secret.is_empty() {
            return None;
        }
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).ok()?;
        mac.update(b"choiceboard dashboard session v1");
        use base64::Engine as _;
        let session =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Some(Token {
            secret: secret.to_string(),
            session,
        })
    }

    /// Is `given` the token? Takes the same time whatever `given` is.
    pub fn matches(&self, given: &str) -> bool {
        same_secret(given.as_bytes(), self.secret.as_bytes())
    }

    pub fn session_matches(&self, given: &str) -> bool {
        same_secret(given.as_bytes(), self.session.as_bytes())
    }

    /// May this request use what the token protects? A bearer token or the sign-in cookie.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        self.bearer_in(headers)
            || CookieJar::from_headers(headers)
                .get(SESSION_COOKIE)
                .is_some_and(|c| self.session_matches(c.value()))
    }

    /// Does the request carry the token itself (`Authorization: Bearer TOKEN`)?
    pub fn bearer_in(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            })
            .is_some_and(|(_, token)| self.matches(token.trim()))
    }
}

/// Constant-time equality: both sides are hashed first, so neither the position of the first
/// difference nor the length of the secret shows in the time taken.
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(secret));
    let difference = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Middleware: the host check and the cross-site check, before anything runs.
pub async fn same_site(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let settings = &state.settings;
    if !settings.host_allowed(headers) {
        tracing::warn!(host = ?headers.get(header::HOST), "refused a request for a foreign host name");
        return AppError::ForbiddenOrigin.render_for(headers);
    }
    // The one origin check of `/ws` and `/ws/{id}`: the header is compared as axum's
    // `WebSocketUpgrade` compares it, so no upgrade the handlers accept passes unchecked.
    let upgrade = headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if (changes_state(request.method()) || upgrade) && !settings.same_origin(headers) {
        return AppError::ForbiddenOrigin.render_for(headers);
    }
    next.run(request).await
}

/// Route layer of the guarded routes: with a token configured, the request carries it (or
/// the sign-in cookie). A person's browser is shown the sign-in page instead of an error.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if let Some(token) = &state.settings.token
        && !token.admits(headers)
    {
        if is_navigation(request.method(), headers) {
            let next = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let bounce = headers
                .get("sec-fetch-site")
                .is_some_and(|v| v == "cross-site");
            return login_page(StatusCode::UNAUTHORIZED, &next, None, bounce);
        }
        return AppError::Unauthorized.render_for(headers);
    }
    next.run(request).await
}

/// Route layer: every request from the same site, whatever its method. For `/mcp`, whose GET
/// opens a stream of the session's messages: the protocol has servers check `Origin` on every
/// connection, so a page on another site can neither drive nor read it.
pub async fn same_origin_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !state.settings.same_origin(request.headers()) {
        return AppError::ForbiddenOrigin.render_for(request.headers());
    }
    next.run(request).await
}

/// A person's browser opening a page (not a script, not a fragment request).
fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::GET && Asks::or_json(headers) == Wants::Page
}

fn login_page(status: StatusCode, next: &str, error: Option<&str>, bounce: bool) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        views::login::page(next, error, bounce).into_string(),
    )
        .into_response()
}

/// A redirect target from a request (`next`, `back`), if it stays on this site: a path of
/// ours. Browsers read `\\` as `/` and drop tabs and newlines, so `/\\evil.example` and
/// `/\t/evil.example` would leave for another host as surely as `//evil.example`; anything
/// with a scheme or a host is refused outright. The one check for every redirect target.
pub fn local_path(target: &str) -> Option<&str> {
    let mut after_slash = target.strip_prefix('/')?.chars();
    let local = !matches!(after_slash.next(), Some('/' | '\\'))
        && !target.contains('\\')
        && !target.chars().any(char::is_control)
        && target.len() <= 2000;
    local.then_some(target)
}

/// Where to go after signing in: a path on this server (not the sign-in form again).
fn safe_next(next: &str) -> &str {
    local_path(next)
        .filter(|path| !path.starts_with("/login"))
        .unwrap_or("/")
}

#[derive(serde::Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

/// `GET /login`: the token form (or straight on, when no token is configured).
pub async fn login_form(
    State(state): State<AppState>,
    query: Result<Query<NextParam>, QueryRejection>,
) -> Response {
    let next = query.ok().and_then(|Query(q)| q.next).unwrap_or_default();
    let next = safe_next(&next);
    if state.settings.token.is_none() {
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, next.to_string())],
        )
            .into_response();
    }
    login_page(StatusCode::OK, next, None, false)
}

/// `POST /login`: checks the token and sets the cookie.
pub async fn login(State(state): State<AppState>, Body(body): Body) -> Response {
    let (mut given, mut next) = (String::new(), String::from("/"));
    for (key, value) in form_urlencoded::parse(&body) {
        match &*key {
            "token" => given = value.into_owned(),
            "next" => next = value.into_owned(),
            _ => {}
        }
    }
    let next = safe_next(&next).to_string();
    let Some(token) = &state.settings.token else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    };
    if !token.matches(given.trim()) {
        tracing::warn!("a dashboard sign-in with a wrong token");
        return login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That is not the token this server was started with."),
            false,
        );
    }
    let session = session_cookie(token.session.clone())
        .max_age(SESSION_MAX_AGE)
        .secure(state.settings.public_url.starts_with("https://"));
    (
        StatusCode::SEE_OTHER,
        CookieJar::new().add(session),
        [(header::LOCATION, next)],
    )
        .into_response()
}

fn session_cookie(value: String) -> cookie::CookieBuilder<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
}

/// `POST /logout`: forgets the cookie.
pub async fn logout() -> Response {
    let forget = session_cookie(String::new()).max_age(cookie::time::Duration::ZERO);
    (
        StatusCode::SEE_OTHER,
        CookieJar::new().add(forget),
        [(header::LOCATION, "/login")],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_token_matches_only_itself() {
        let token = Token::new(Some("s3cret-token")).expect("a token");
        assert!(token.matches("s3cret-token"));
        assert!(!token.matches("s3cret-toke"));
        assert!(!token.matches("s3cret-token "));
        assert!(!token.matches(""));
        assert!(Token::new(Some("  ")).is_none());
        assert!(Token::new(None).is_none());
        assert_eq!(format!("{token:?}"), "Token(***)");
    }

    #[test]
    fn the_session_cookie_is_derived_from_the_token_and_is_not_the_token() {
        let a = Token::new(Some("one")).expect("a token");
        let b = Token::new(Some("two")).expect("a token");
        assert_ne!(a.session, b.session);
        assert!(!a.session.contains("one"));
        assert_eq!(a.session, Token::new(Some("one")).expect("a token").session);
        assert!(a.session_matches(&a.session.clone()));
        assert!(!a.session_matches(&b.session));
    }

    #[test]
    fn bearer_or_cookie_admits() {
        let token = Token::new(Some("t0k")).expect("a token");
        let mut h = HeaderMap::new();
        assert!(!token.admits(&h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t0k"),
        );
        assert!(token.admits(&h));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic t0k"));
        assert!(!token.admits(&h));
        let cookie = format!("a=b; {SESSION_COOKIE}={}", token.session);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&cookie).expect("value"),
        );
        assert!(token.admits(&h));
    }

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next("/board?x=1"), "/board?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "",
            "/login",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }

    #[test]
    fn a_redirect_target_is_a_path_of_ours_or_nothing() {
        for good in [
            "/",
            "/choice/abc",
            "/board?source=ci&level=error",
            "/%2F%2Fevil.example",
        ] {
            assert_eq!(local_path(good), Some(good), "{good}");
        }
        for bad in [
            "",
            "choice/abc",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "\\\\evil.example",
            "/x\\..\\..\\evil",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            " /choice/abc",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }
}
