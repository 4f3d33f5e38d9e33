//! The dashboard and its swap targets: `#board` (counts, the active choices, the recently
//! finished) and one `#left-ID` countdown per active choice.

use maud::{Markup, html};

use super::{badge, clock, page as shell};
use crate::choice::{Choice, Status};
use crate::clock::{Millis, rfc3339};

/// What the board shows; the hub assembles it once per change.
pub struct Board {
    pub active: Vec<(std::sync::Arc<Choice>, usize)>,
    pub finished: Vec<Choice>,
    pub submitted_today: i64,
    pub cancelled_today: i64,
    pub timed_out_today: i64,
}

/// The countdown of one row.
pub fn left(c: &Choice, now: Millis) -> Markup {
    let ms = c.remaining_ms(now);
    html! {
        span id={ "left-" (c.id) } .remaining hx-swap-oob="true" data-status=(c.status.as_str())
            data-remaining=(format!("{:.3}", ms as f64 / 1000.0))
            data-deadline=(c.deadline.map(|d| d.to_string()).unwrap_or_default()) {
            (clock(ms))
        }
    }
}

/// Every pending row's countdown, as one message.
pub fn all_left(board: &Board, now: Millis) -> Markup {
    html! {
        @for (c, _) in &board.active {
            @if c.status == Status::Pending { (left(c, now)) }
        }
    }
}

pub fn board(board: &Board, now: Millis) -> Markup {
    html! {
        div #board hx-swap-oob="true" {
            p #counts .counts {
                span { strong { (board.active.len()) } " active" } " · "
                span { strong { (board.submitted_today) } " submitted" } " · "
                span { strong { (board.cancelled_today) } " cancelled" } " · "
                span { strong { (board.timed_out_today) } " timed out" } " today"
            }
            section aria-labelledby="active-heading" {
                h2 #active-heading { "Waiting for an answer" }
                @if board.active.is_empty() {
                    p .empty { "Nothing is waiting. Choices that programs ask appear here at once." }
                } @else {
                    ul #active .rows {
                        @for (c, viewers) in &board.active {
                            li #{ "row-" (c.id) } .row data-status=(c.status.as_str()) {
                                a .title href={ "/choice/" (c.id) } { (c.spec.title) }
                                span .mode { (c.spec.mode.as_str()) }
                                span .pill data-status=(c.status.as_str()) { (c.status.as_str()) }
                                (left(c, now))
                                span .viewers { (viewers) " watching" }
                                @if let Some(source) = &c.spec.source { span .source { (source) } }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="finished-heading" {
                h2 #finished-heading { "Recently finished" }
                @if board.finished.is_empty() {
                    p .empty { "Nothing yet." }
                } @else {
                    ul #finished .rows {
                        @for c in &board.finished {
                            li #{ "done-" (c.id) } .row data-status=(c.status.as_str()) {
                                a .title href={ "/choice/" (c.id) } { (c.spec.title) }
                                span .pill data-status=(c.status.as_str()) { (c.status.as_str()) }
                                span .result { (summary(c)) }
                                @if let Some(at) = c.resolved_at { time datetime=(rfc3339(at)) { (rfc3339(at).get(11..19).unwrap_or("")) " UTC" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn summary(c: &Choice) -> String {
    let Some(result) = &c.result else {
        return String::new();
    };
    let labels: Vec<&str> = result
        .selection
        .iter()
        .map(|id| {
            c.spec
                .options
                .iter()
                .find(|o| &o.id == id)
                .map_or(id.as_str(), |o| o.label.as_str())
        })
        .collect();
    let mut out = labels.join(", ");
    if let Some(text) = &result.text {
        if !out.is_empty() {
            out.push_str(" · ");
        }
        out.extend(text.chars().take(80));
    }
    out
}

pub fn page(board_now: &Board, now: Millis) -> Markup {
    shell(
        "Dashboard",
        Some(10),
        html! {
            main .dashboard {
                nav .top {
                    strong .brand { "choiceboard" }
                    (badge())
                    div #modes .modes role="group" aria-label="Updates" hidden {
                        button type="button" data-mode="live" { "Live" }
                        button type="button" data-mode="poll" { "Polling" }
                        label { "every " input #poll-seconds type="number" min="5" max="60" value="10"; " s" }
                        button type="button" data-mode="manual" { "Manual" }
                        a #refresh .button href="/" hx-get="/board" hx-swap="none" { "Refresh" }
                    }
                }
                details .new-timer {
                    summary { "New timer" }
                    form method="post" action="/timers" {
                        label { "Name " input type="text" name="title" required maxlength="200" placeholder="Focus block"; }
                        label { "Minutes " input type="number" name="minutes" min="0.1" max="10080" step="any" value="25" required; }
                        fieldset {
                            label { input type="radio" name="start" value="now" checked; " start now" }
                            label { input type="radio" name="start" value="paused"; " start paused" }
                        }
                        button .primary type="submit" { "Create timer" }
                    }
                }
                (board(board_now, now))
                div #stream hx-sse:connect="/events" {}
            }
        },
    )
}
