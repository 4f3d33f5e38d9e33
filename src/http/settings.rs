//! How the server was started, as handlers need to know it, and the checks that follow from
//! it: is a request from one of our own pages, may it name this host, is it rate limited.

use axum::http::{HeaderMap, header};

use super::access;

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
