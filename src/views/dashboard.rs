//! The dashboard and its swap targets: `#board` (counts, the active choices, the recently
//! finished) and one `#left-ID` countdown per active choice.

use maud::{Markup, html};

use super::{badge, clock, installable_page};
use crate::choice::{Choice, Status};
use crate::clock::{Millis, rfc3339};
use crate::note::{Level, Note};
use crate::paths;

/// What the board shows; the dashboard reads it once per change.
pub struct Board {
    pub active: Vec<(std::sync::Arc<Choice>, usize)>,
    pub finished: Vec<Choice>,
    pub submitted_today: i64,
    pub cancelled_today: i64,
    pub timed_out_today: i64,
    /// The newest activity notes, newest first.
    pub notes: Vec<FeedNote>,
    /// Every source seen lately, by name.
    pub sources: Vec<SourceLine>,
    /// When this board was read from the store.
    pub rendered_at: Millis,
}

pub struct FeedNote {
    pub seq: i64,
    pub at: Millis,
    pub note: Note,
}

/// One program or project on the board: when it was last heard of, and whether its
/// heartbeats have stopped.
pub struct SourceLine {
    pub name: String,
    pub last_seen: Millis,
    /// The time between its last two heartbeats, if it sends them.
    pub heartbeat_every: Option<Millis>,
    pub stale: bool,
}

/// What one person asked to see (`?source=&level=`); the live board is unfiltered and
/// static/js/dashboard.js hides what the filter leaves out.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub source: Option<String>,
    pub level: Option<Level>,
}

impl Filter {
    fn shows_source(&self, source: Option<&str>) -> bool {
        self.source
            .as_deref()
            .is_none_or(|wanted| source == Some(wanted))
    }

    fn shows_note(&self, note: &Note) -> bool {
        self.shows_source(Some(&note.source)) && self.level.is_none_or(|l| l == note.level)
    }
}

/// A headed list of rows (`#NAME` in `section` labelled by `#NAME-heading`), or a line saying
/// why it is empty.
fn rows_section(name: &str, heading: &str, empty: bool, why_empty: &str, rows: Markup) -> Markup {
    html! {
        section aria-labelledby={ (name) "-heading" } {
            h2 id={ (name) "-heading" } { (heading) }
            @if empty {
                p .empty { (why_empty) }
            } @else {
                ul id=(name) .rows { (rows) }
            }
        }
    }
}

/// A row's status, as a coloured word.
fn pill(c: &Choice) -> Markup {
    html! { span .pill data-status=(c.status.as_str()) { (c.status.as_str()) } }
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

pub fn board(board: &Board, now: Millis, filter: &Filter) -> Markup {
    html! {
        div #board hx-swap-oob="true" {
            p #counts .counts {
                span { strong { (board.active.len()) } " active" } " · "
                span { strong { (board.submitted_today) } " submitted" } " · "
                span { strong { (board.cancelled_today) } " cancelled" } " · "
                span { strong { (board.timed_out_today) } " timed out" } " today"
            }
            (rows_section("active", "Waiting for an answer", board.active.is_empty(),
                "Nothing is waiting. Choices that programs ask appear here at once.", html! {
                @for (i, (c, viewers)) in board.active.iter().enumerate() {
                    @let source = c.spec.source.as_deref();
                    @if i == 0 || board.active[i - 1].0.spec.source.as_deref() != source {
                        li .group data-source=(source.unwrap_or("")) hidden[!filter.shows_source(source)] {
                            (source.unwrap_or("no source"))
                        }
                    }
                    li #{ "row-" (c.id) } .row data-status=(c.status.as_str()) data-source=(source.unwrap_or(""))
                        hidden[!filter.shows_source(source)] {
                        a .title href=(paths::choice(&c.id)) { (c.spec.title) }
                        span .mode { (c.spec.mode.as_str()) }
                        (pill(c))
                        (left(c, now))
                        span .viewers { (viewers) " watching" }
                    }
                }
            }))
            (rows_section("finished", "Recently finished", board.finished.is_empty(), "Nothing yet.", html! {
                @for c in &board.finished {
                    li #{ "done-" (c.id) } .row data-status=(c.status.as_str())
                        data-source=(c.spec.source.as_deref().unwrap_or("")) hidden[!filter.shows_source(c.spec.source.as_deref())] {
                        a .title href=(paths::choice(&c.id)) { (c.spec.title) }
                        (pill(c))
                        span .result { (summary(c)) }
                        @if let Some(at) = c.resolved_at { time datetime=(rfc3339(at)) { (rfc3339(at).get(11..19).unwrap_or("")) " UTC" } }
                    }
                }
            }))
            (activity(board, now, filter))
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

pub fn page(board_now: &Board, now: Millis, filter: &Filter) -> Markup {
    installable_page(
        "Dashboard",
        Some(10),
        html! {
            main .dashboard {
                nav .top {
                    strong .brand { "choiceboard" }
                    (badge())
                    // Shown by static/js/push.js where the browser has a push service (static/sw.js).
                    span #push .push hidden {
                        button #push-device .linkish type="button" aria-pressed="false" { "Notify this device" }
                        " "
                        span #push-status role="status" {}
                    }
                    div #modes .modes role="group" aria-label="Updates" hidden {
                        button type="button" data-mode="live" { "Live" }
                        button type="button" data-mode="poll" { "Polling" }
                        label { "every " input #poll-seconds type="number" min="5" max="60" value="10"; " s" }
                        button type="button" data-mode="manual" { "Manual" }
                        a #refresh .button href=(paths::DASHBOARD) hx-get=(paths::BOARD) hx-swap="none" { "Refresh" }
                    }
                }
                details .new-timer {
                    summary { "New timer" }
                    form method="post" action=(paths::TIMERS) {
                        label { "Name " input type="text" name="title" required maxlength="200" placeholder="Focus block"; }
                        label { "Minutes " input type="number" name="minutes" min="0.1" max="10080" step="any" value="25" required; }
                        fieldset {
                            label { input type="radio" name="start" value="now" checked; " start now" }
                            label { input type="radio" name="start" value="paused"; " start paused" }
                        }
                        button .primary type="submit" { "Create timer" }
                    }
                }
                form #filter .filter method="get" action=(paths::DASHBOARD) {
                    label { "Source "
                        select name="source" {
                            option value="" { "all" }
                            @for source in &board_now.sources {
                                option value=(source.name) selected[filter.source.as_deref() == Some(source.name.as_str())] { (source.name) }
                            }
                        }
                    }
                    label { "Level "
                        select name="level" {
                            option value="" { "all" }
                            @for level in [Level::Info, Level::Warn, Level::Error] {
                                option value=(level.as_str()) selected[filter.level == Some(level)] { (level.as_str()) }
                            }
                        }
                    }
                    button #filter-apply type="submit" { "Filter" }
                }
                (board(board_now, now, filter))
                div #stream hx-sse:connect=(paths::DASHBOARD_EVENTS) {}
            }
        },
    )
}

/// Programs' activity: who was heard of lately (stale ones marked) and the newest notes.
fn activity(board: &Board, now: Millis, filter: &Filter) -> Markup {
    html! {
        section #activity aria-labelledby="activity-heading" {
            h2 #activity-heading { "Activity" }
            @if !board.sources.is_empty() {
                ul #sources .sources {
                    @for source in &board.sources {
                        li .source data-source=(source.name) data-stale=[source.stale.then_some("true")]
                            hidden[!filter.shows_source(Some(&source.name))] {
                            strong { (source.name) }
                            " last seen "
                            span .ago data-ago=(format!("{:.1}", (now - source.last_seen).max(0) as f64 / 1000.0)) {
                                (ago(now - source.last_seen))
                            }
                            @if source.stale { " " span .stale { "stale" } }
                            @if let Some(every) = source.heartbeat_every { " " span .every { "(heartbeat every " (ago(every).trim_end_matches(" ago")) ")" } }
                        }
                    }
                }
            }
            @if board.notes.is_empty() {
                p .empty { "No notes yet. Programs post them with " code { "choiceboard note" } " or " code { "POST /api/notes" } "." }
            } @else {
                ol #feed .feed {
                    @for item in &board.notes {
                        li #{ "note-" (item.seq) } .note data-source=(item.note.source) data-level=(item.note.level.as_str())
                            hidden[!filter.shows_note(&item.note)] {
                            time datetime=(rfc3339(item.at)) { (rfc3339(item.at).get(11..19).unwrap_or("")) }
                            " " span .level data-level=(item.note.level.as_str()) { (item.note.level.as_str()) }
                            " " span .source { (item.note.source) }
                            " " span .kind { (item.note.kind) }
                            " " span .message { (item.note.message) }
                        }
                    }
                }
            }
        }
    }
}

/// `5 s ago`, `3 min ago`, `2 h ago`.
fn ago(ms: Millis) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}
