//! The dashboard's token form: asked once, then a cookie keeps the browser signed in.

use maud::{Markup, html};

use super::page as shell;
use crate::error_code::ErrorCode;
use crate::paths;

/// The form. `bounce` refreshes the page once at load: a link from another site arrives
/// without the SameSite=Strict cookie, and the same request made from our own page carries it.
pub fn page(next: &str, error: Option<&str>, bounce: bool) -> Markup {
    let body = html! {
        main .narrow {
            h1 { "choiceboard" }
            p { "This dashboard needs the server's token (" code { "--token" } " or "
                code { "CHOICEBOARD_TOKEN" } "). A choice's own page needs only its link." }
            @if let Some(error) = error {
                div .error data-code=(ErrorCode::Unauthorized.as_str()) role="alert" { (error) }
            }
            form #login method="post" action=(paths::LOGIN) {
                input type="hidden" name="next" value=(next);
                label { "Token " input type="password" name="token" required autocomplete="current-password" autofocus; }
                " "
                button .primary type="submit" { "Open the dashboard" }
            }
        }
    };
    if bounce {
        shell_with_refresh(body)
    } else {
        shell("Sign in", None, body)
    }
}

fn shell_with_refresh(body: Markup) -> Markup {
    // Not the no-JS refresh of `page`: this one must run with JavaScript too.
    html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="referrer" content="no-referrer";
                meta http-equiv="refresh" content="0";
                title { "Sign in · choiceboard" }
                link rel="stylesheet" href={ "/static/app.css?v=" (super::assets::version()) };
            }
            body { (body) }
        }
    }
}
