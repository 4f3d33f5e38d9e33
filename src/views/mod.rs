//! Pages and fragments, in Maud. One function per swap target, used by the page *and* by the
//! streams, so the first render and every update are the same markup. Every swap target carries
//! `hx-swap-oob="true"` and its element id: wherever a fragment arrives (a stream message, a
//! command's answer), htmx puts it in its place, and on a full page the attribute is inert.

pub mod choice;
pub mod dashboard;
pub mod login;
pub mod markdown;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::error_code::ErrorCode;

/// Static files, embedded in the binary. htmx and its SSE extension are one classic script;
/// ours are ES modules (static/js), served under the build's version so that they import each
/// other by relative URL and may still be cached for good.
pub mod assets {
    pub const CSS: &str = include_str!("../../static/app.css");
    /// The installable app: its manifest, icons and service worker (static/sw.js).
    pub const MANIFEST: &str = include_str!("../../static/manifest.webmanifest");
    pub const SERVICE_WORKER: &str = include_str!("../../static/sw.js");
    pub const ICON_192: &[u8] = include_bytes!("../../static/icon-192.png");
    pub const ICON_512: &[u8] = include_bytes!("../../static/icon-512.png");
    pub const HTMX: &str = concat!(
        include_str!("../../static/htmx.min.js"),
        "\n;\n",
        include_str!("../../static/hx-sse.min.js"),
    );
    /// Ours, by file name: `live.js` on every page, and each page's own.
    pub const MODULES: &[(&str, &str)] = &[
        ("live.js", include_str!("../../static/js/live.js")),
        ("choice.js", include_str!("../../static/js/choice.js")),
        ("dashboard.js", include_str!("../../static/js/dashboard.js")),
        ("push.js", include_str!("../../static/js/push.js")),
    ];

    pub fn module(name: &str) -> Option<&'static str> {
        MODULES.iter().find(|(n, _)| *n == name).map(|(_, js)| *js)
    }

    /// A short content hash, so the URLs can be cached forever and still change with a build.
    pub fn version() -> &'static str {
        static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        VERSION.get_or_init(|| {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            let modules = MODULES.iter().flat_map(|(_, js)| js.bytes());
            for byte in CSS.bytes().chain(HTMX.bytes()).chain(modules) {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
            format!("{:08x}", hash as u32)
        })
    }
}

/// The page shell: head, styles, the script bundle, and a refresh for browsers without JS.
pub fn page(title: &str, refresh_without_js: Option<u32>, body: Markup) -> Markup {
    shell(title, refresh_without_js, false, body)
}

/// The modules each kind of page loads (`live.js` comes first on every page).
const CHOICE_MODULES: &[&str] = &["live.js", "choice.js"];
const DASHBOARD_MODULES: &[&str] = &["live.js", "dashboard.js", "push.js"];

/// The dashboard's shell: the same, with the web app manifest, so a phone can add it to its
/// home screen. (Other pages stay at three requests.)
pub fn installable_page(title: &str, refresh_without_js: Option<u32>, body: Markup) -> Markup {
    shell(title, refresh_without_js, true, body)
}

/// What every page says it is, for search engines and link previews. The same on every page:
/// a choice's own words stay on its page.
const DESCRIPTION: &str =
    "choiceboard: programs ask people to decide, with a countdown the server owns.";

fn shell(title: &str, refresh_without_js: Option<u32>, installable: bool, body: Markup) -> Markup {
    let v = assets::version();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta name="description" content=(DESCRIPTION);
                title { (title) " · choiceboard" }
                @if installable {
                    link rel="icon" type="image/png" href="/static/icon-192.png";
                    link rel="apple-touch-icon" href="/static/icon-192.png";
                    link rel="manifest" href="/manifest.webmanifest";
                    meta name="theme-color" content="#2f5bd8";
                } @else {
                    link rel="icon" href="data:,";
                }
                link rel="stylesheet" href={ "/static/app.css?v=" (v) };
                // No inline styles (strict CSP), no eval, and swaps replace the target element.
                meta name="htmx-config" content=r#"{"includeIndicatorCSS":false,"defaultSwap":"outerHTML","history":false,"sse":{"reconnectDelay":200}}"#;
                script src={ "/static/htmx.js?v=" (v) } defer {}
                @for module in (if installable { DASHBOARD_MODULES } else { CHOICE_MODULES }) {
                    script type="module" src={ "/static/" (v) "/" (module) } {}
                }
                @if let Some(seconds) = refresh_without_js {
                    noscript { meta http-equiv="refresh" content=(seconds); }
                }
            }
            body { (body) }
        }
    }
}

/// What the service worker shows for a page it cannot fetch: no countdown, since any it had
/// would be stale.
pub fn offline_page() -> Markup {
    page(
        "Offline",
        None,
        html! {
            main .narrow {
                h1 { "You are offline." }
                p { "choiceboard cannot be reached from here right now, so this page shows no "
                    "choices and no countdown: any it showed would be out of date." }
                p { a href="/" { "Try again" } }
            }
        },
    )
}

/// The connection badge of a page with a stream; static/js/live.js keeps it current
/// (Connecting… / Live / Reconnecting / Delayed / Offline).
pub fn badge() -> Markup {
    html! {
        span #badge .badge data-state="static" aria-live="polite" {
            span .badge-state { "Static page" }
            " " span .badge-age {}
        }
    }
}

/// The badge of a page with nothing left to stream: it says so, and live.js leaves it as it is
/// (`closed` is also the state a stream ends in once its choice is final).
pub fn final_badge() -> Markup {
    html! {
        span #badge .badge data-state="closed" {
            span .badge-state { "Final" }
            " " span .badge-age {}
        }
    }
}

pub use crate::clock::countdown as clock;

/// A readable error, as a whole page (plain form posts) or as a fragment for `#errors` (HTMX).
pub fn error_fragment(code: ErrorCode, message: &str, field: Option<&str>) -> Markup {
    html! {
        div .error data-code=(code.as_str()) {
            strong { (error_title(code)) }
            " " (message)
            @if let Some(field) = field { " (" code { (field) } ")" }
        }
    }
}

pub fn error_page(
    code: ErrorCode,
    message: &str,
    field: Option<&str>,
    back: Option<&str>,
) -> Markup {
    page(
        error_title(code),
        None,
        html! {
            main .narrow {
                h1 { (error_title(code)) }
                (error_fragment(code, message, field))
                p {
                    @if let Some(back) = back { a href=(back) { "Back to the choice" } " · " }
                    a href="/" { "The dashboard" }
                }
            }
        },
    )
}

fn error_title(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotFound => "Not found.",
        ErrorCode::AlreadyFinal => "Already decided.",
        ErrorCode::Conflict => "Not now.",
        ErrorCode::Invalid => "Please check your answer.",
        ErrorCode::Malformed | ErrorCode::TooLarge => "That request could not be read.",
        ErrorCode::Unauthorized => "A token is needed.",
        ErrorCode::ForbiddenOrigin => "Refused.",
        ErrorCode::NotAnApprover => "Only the approvers can answer.",
        ErrorCode::RateLimited => "Slow down.",
        ErrorCode::RequestTimeout | ErrorCode::Unavailable | ErrorCode::Internal => {
            "Something went wrong."
        }
    }
}

/// Raw HTML that is already safe (sanitised Markdown). Never user text.
pub(crate) fn trusted(html: String) -> PreEscaped<String> {
    PreEscaped(html)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_rounds_up_to_whole_seconds() {
        assert_eq!(super::clock(0), "0:00");
        assert_eq!(super::clock(1), "0:01");
        assert_eq!(super::clock(59_001), "1:00");
        assert_eq!(super::clock(3_600_000), "1:00:00");
        assert_eq!(super::clock(90_061_000), "1d 1:01:01");
    }
}
