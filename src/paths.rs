//! Every route path, named once: the router declares them from here, and every link that
//! points back at the server (a page, a redirect, the choice JSON's `url`, a push, a webhook)
//! is built by the functions below. A path changed here changes everywhere.

/// The dashboard.
pub const DASHBOARD: &str = "/";
/// The dashboard's board as a fragment (polling and manual refresh).
pub const BOARD: &str = "/board";
/// The dashboard's SSE stream.
pub const DASHBOARD_EVENTS: &str = "/events";
pub const LOGIN: &str = "/login";
pub const LOGOUT: &str = "/logout";
/// A browser's display name.
pub const NAME: &str = "/name";
/// A new shared timer from the dashboard's form.
pub const TIMERS: &str = "/timers";

/// One choice's page.
pub const CHOICE: &str = "/choice/{id}";
/// Its SSE stream of fragments.
pub const CHOICE_EVENTS: &str = "/choice/{id}/events";
/// A page's beacon as its tab goes away.
pub const CHOICE_LEAVE: &str = "/choice/{id}/events/leave";
/// Its commands: submit, cancel, timeout, pause, resume, reset.
pub const CHOICE_ACTION: &str = "/choice/{id}/{action}";
/// Its WebSocket.
pub const CHOICE_SOCKET: &str = "/ws/{id}";

pub const API_CHOICES: &str = "/api/choices";
pub const API_CHOICE: &str = "/api/choices/{id}";
pub const API_CHOICE_WAIT: &str = "/api/choices/{id}/wait";
pub const API_NOTES: &str = "/api/notes";

/// `/choice/ID`.
pub fn choice(id: &str) -> String {
    CHOICE.replace("{id}", id)
}

/// The page as a link that leaves the server: `public_url` (no trailing slash) and its path.
pub fn choice_url(public_url: &str, id: &str) -> String {
    format!("{public_url}{}", choice(id))
}

pub fn choice_events(id: &str) -> String {
    CHOICE_EVENTS.replace("{id}", id)
}

pub fn choice_leave(id: &str) -> String {
    CHOICE_LEAVE.replace("{id}", id)
}

/// `/choice/ID/ACTION`.
pub fn choice_action(id: &str, action: &str) -> String {
    CHOICE_ACTION
        .replace("{id}", id)
        .replace("{action}", action)
}

/// `/api/choices/ID`.
pub fn api_choice(id: &str) -> String {
    API_CHOICE.replace("{id}", id)
}

/// `/api/choices/ID/wait`.
pub fn api_choice_wait(id: &str) -> String {
    API_CHOICE_WAIT.replace("{id}", id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fill_in_their_ids() {
        assert_eq!(choice("01ab"), "/choice/01ab");
        assert_eq!(choice_url("http://h:1", "01ab"), "http://h:1/choice/01ab");
        assert_eq!(choice_events("01ab"), "/choice/01ab/events");
        assert_eq!(choice_leave("01ab"), "/choice/01ab/events/leave");
        assert_eq!(choice_action("01ab", "submit"), "/choice/01ab/submit");
        assert_eq!(api_choice("01ab"), "/api/choices/01ab");
        assert_eq!(api_choice_wait("01ab"), "/api/choices/01ab/wait");
    }
}
