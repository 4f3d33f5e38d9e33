//! The choice page and its swap targets: `#remaining`, `#status`, `#viewers`.

use maud::{Markup, PreEscaped, html};

use super::{badge, clock, final_badge, markdown, page as shell, trusted};
use crate::choice::{Approval, Choice, Mode, OnTimeout, Status, Via};
use crate::clock::{Millis, readable, rfc3339};
use crate::json::Presence;
use crate::paths;

/// The countdown. `data-remaining` (seconds) and `data-deadline` (Unix ms, empty unless
/// counting) let static/js/live.js interpolate between pushes from the server's figures, never from the
/// browser's own clock.
pub fn remaining(c: &Choice, now: Millis) -> Markup {
    let ms = c.remaining_ms(now);
    html! {
        span #remaining .remaining role="timer" hx-swap-oob="true" data-status=(c.status.as_str())
            data-remaining=(format!("{:.3}", ms as f64 / 1000.0))
            data-deadline=(c.deadline.map(|d| d.to_string()).unwrap_or_default()) {
            (clock(ms))
        }
    }
}

/// The status, and once final the result and how it was reached.
pub fn status(c: &Choice) -> Markup {
    html! {
        div #status .status hx-swap-oob="true" data-status=(c.status.as_str()) data-round=(c.round)
            data-final=[c.status.is_final().then_some("true")] {
            span .pill data-status=(c.status.as_str()) { (status_label(c)) }
            @if c.spec.mode == Mode::Timer && c.round > 1 { " " span .round { "round " (c.round) } }
            @if let Some(approval) = &c.spec.approval { (votes(c, approval)) }
            @if let Some(result) = &c.result {
                div .result {
                    @if !result.selection.is_empty() {
                        p { "Chosen: "
                            @for (i, id) in result.selection.iter().enumerate() {
                                @if i > 0 { ", " }
                                strong { (c.option_label(id)) }
                                @if let Some(note) = result.option_annotations.get(id) { " (" (note) ")" }
                            }
                        }
                    }
                    @if let Some(text) = &result.text { blockquote .answer-text { (text) } }
                    @if let Some(note) = &result.annotation { p { "Note: " (note) } }
                    p .how { (how(c)) }
                }
            }
        }
    }
}

/// Who has voted what, and how many agreeing votes it takes. Part of the status fragment, so
/// every viewer sees each vote as it is cast.
fn votes(c: &Choice, approval: &Approval) -> Markup {
    let vote_of = |name: &str| c.votes.iter().find(|v| v.approver == name);
    html! {
        div #votes .votes {
            p .quorum { (approval.quorum) " of " (approval.approvers.len()) " needed" }
            ul {
                @for approver in &approval.approvers {
                    li data-approver=(approver.name) {
                        strong { (approver.name) } ": "
                        @match vote_of(&approver.name) {
                            Some(vote) => {
                                span .vote data-voted="true" {
                                    @for (i, id) in vote.selection.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        (c.option_label(id))
                                    }
                                }
                                @if let Some(note) = &vote.annotation { " (" (note) ")" }
                            }
                            None => span .vote { "not yet" },
                        }
                    }
                }
            }
        }
    }
}

/// Names the viewers fragment lists at most; the rest are "N more".
const NAMES_SHOWN: usize = 8;

/// Who is watching: the count and a few names, live. It stays small however many watch:
/// guests are counted, not listed.
pub fn viewers(presence: &Presence) -> Markup {
    let names: Vec<&String> = presence
        .watchers
        .iter()
        .filter(|n| *n != crate::json::GUEST)
        .take(NAMES_SHOWN)
        .collect();
    let more = presence.people.saturating_sub(names.len());
    html! {
        div #viewers .viewers hx-swap-oob="true" data-count=(presence.viewers) {
            (presence.viewers) " watching"
            @if !names.is_empty() {
                ": "
                @for (i, name) in names.iter().enumerate() {
                    @if i > 0 { ", " }
                    span .watcher { (name) }
                }
                @if more > 0 { " and " (more) " more" }
            }
        }
    }
}

fn status_label(c: &Choice) -> &'static str {
    match (c.status, c.spec.mode) {
        (Status::Pending, _) => "waiting",
        (Status::Paused, _) => "paused",
        (Status::Submitted, _) => "submitted",
        (Status::Cancelled, _) => "cancelled",
        (Status::TimedOut, Mode::Timer) => "time is up",
        (Status::TimedOut, _) => "timed out",
    }
}

/// How the choice was decided, and when: `Answered on the web page by Ana at 5 Dec 2026,
/// 10:15:03 UTC.`, the instant also machine-readable in its `<time>`.
fn how(c: &Choice) -> Markup {
    let Some(result) = &c.result else {
        return html! {};
    };
    let by = result
        .by
        .as_deref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    let said = match (c.status, result.via) {
        (Status::TimedOut, _) if c.spec.mode == Mode::Timer => "Time was up".to_string(),
        (Status::TimedOut, _) if result.selection.is_empty() => {
            "Nobody answered in time; the deadline passed".to_string()
        }
        (Status::TimedOut, _) => "Nobody answered in time; the default was taken".to_string(),
        (Status::Submitted, _) if !result.votes.is_empty() => {
            format!("Decided by the approvers' votes, the last{by},")
        }
        (_, Some(Via::Web)) => format!("Answered on the web page{by}"),
        (_, Some(Via::Ws)) => format!("Answered over a live connection{by}"),
        (_, Some(Via::Push)) => format!("Answered from a phone notification{by}"),
        (_, Some(Via::McpElicitation)) => format!("Answered in the asking agent's client{by}"),
        _ => format!("Answered by a program{by}"),
    };
    html! {
        (said)
        @if let Some(at) = c.resolved_at { " at " time datetime=(rfc3339(at)) { (readable(at)) } }
        "."
    }
}

/// What the deadline does, said in words where the page's marks could mislead: when options are
/// marked recommended but the deadline takes others, or those preselected are not what it takes.
fn if_nobody_answers(c: &Choice) -> Option<Markup> {
    let spec = &c.spec;
    let taken: &[String] = match spec.on_timeout {
        OnTimeout::SubmitDefault => &spec.default_selection,
        OnTimeout::Cancel => &[],
    };
    let same =
        |ids: &[&String]| ids.len() == taken.len() && ids.iter().all(|id| taken.contains(id));
    let recommended: Vec<&String> = spec
        .options
        .iter()
        .filter(|o| o.recommended)
        .map(|o| &o.id)
        .collect();
    let preselected: Vec<&String> = spec.default_selection.iter().collect();
    let misleads = (!recommended.is_empty() && !same(&recommended)) || !same(&preselected);
    if spec.options.is_empty() || !misleads {
        return None;
    }
    Some(html! {
        p #if-nobody-answers .if-nobody-answers {
            @if spec.on_timeout == OnTimeout::Cancel {
                "Nobody answering in time cancels it."
            } @else if taken.is_empty() {
                "Nothing is chosen if nobody answers in time."
            } @else {
                @for (i, id) in taken.iter().enumerate() {
                    @if i > 0 { @if i + 1 == taken.len() { " and " } @else { ", " } }
                    strong { (c.option_label(id)) }
                }
                @if taken.len() == 1 { " is" } @else { " are" }
                " chosen if nobody answers in time."
            }
        }
    })
}

/// The page's link as a QR code, so a phone can join. Rendered here from our own URL; the SVG
/// holds only rectangles.
pub fn qr_code(url: &str) -> Option<Markup> {
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(168, 168)
        .quiet_zone(true)
        .build();
    let svg = svg
        .split_once("?>")
        .map_or(svg.as_str(), |(_, rest)| rest)
        .to_string();
    Some(trusted(svg))
}

/// The parts of a choice's page that never change (its spec is fixed at creation), and cost
/// the most to render: the prompt's Markdown, sanitised, and the link's QR code.
#[derive(Debug)]
pub struct Fixed {
    prompt: Option<PreEscaped<String>>,
    qr: Option<Markup>,
}

impl Fixed {
    pub fn render(c: &Choice, url: &str) -> Fixed {
        Fixed {
            prompt: (!c.spec.prompt.is_empty()).then(|| trusted(markdown::render(&c.spec.prompt))),
            qr: qr_code(url),
        }
    }
}

/// Everything the choice page shows besides the choice itself.
pub struct PageContext<'a> {
    pub url: &'a str,
    pub presence: &'a Presence,
    /// This browser's display name, if it gave one.
    pub name: Option<&'a str>,
    /// On a choice that approvers decide: who this page votes as, from its link's key.
    pub ballot: Ballot<'a>,
}

/// Whether this page may vote on a choice that approvers decide.
pub enum Ballot<'a> {
    /// The link named an approver: the form votes as them, with their key.
    As { name: &'a str, key: &'a str },
    /// No key: the page shows the votes, and whose are needed.
    Watch,
    /// A key that is not one of this choice's approvers'.
    Refused,
}

pub fn page(c: &Choice, fixed: &Fixed, now: Millis, context: &PageContext<'_>) -> Markup {
    let presence = context.presence;
    let id = &c.id;
    let action = |name: &str| paths::choice_action(id, name);
    let spec = &c.spec;
    let multi = spec.mode == Mode::Multi || (spec.mode == Mode::Hybrid && spec.max_selections > 1);
    let refresh = (!c.status.is_final()).then_some(10);
    // Nothing left to stream once settled; a rung timer streams on, for its next round.
    let streams = !c.is_settled();
    shell(
        &spec.title,
        refresh,
        html! {
            main .choice data-choice-id=(id) data-mode=(spec.mode.as_str()) {
                nav .top {
                    a href=(paths::DASHBOARD) { "← All choices" }
                    @if streams { (badge()) } @else { (final_badge()) }
                }
                h1 { (spec.title) }
                @if let Some(prompt) = &fixed.prompt { div .prompt { (prompt) } }
                section .clock aria-label="Time left" {
                    (remaining(c, now))
                    (status(c))
                }
                div #errors role="alert" {}
                @if let (Some(approval), false) = (&spec.approval, matches!(context.ballot, Ballot::As { .. })) {
                    section #ballot .ballot aria-label="Approvers" {
                        @if matches!(context.ballot, Ballot::Refused) {
                            p .error { "This approver link is not valid for this choice." }
                        }
                        p { "Only its approvers can answer this choice: "
                            @for (i, approver) in approval.approvers.iter().enumerate() {
                                @if i > 0 { ", " }
                                strong { (approver.name) }
                            }
                            ". " (approval.quorum) " of them must agree; their votes show above as they come in." }
                        form method="post" action=(action("cancel")) hx-post=(action("cancel")) hx-swap="none" .when-open {
                            button type="submit" { "Cancel the question" }
                        }
                    }
                } @else if spec.mode != Mode::Timer {
                    form #answer .answer method="post" action=(action("submit")) hx-post=(action("submit")) hx-swap="none" {
                        @if !spec.options.is_empty() {
                            fieldset .options {
                                legend {
                                    @if let Ballot::As { name, .. } = context.ballot { "Your vote, " (name) ": " }
                                    @if multi {
                                        @if spec.min_selections == spec.max_selections { "Choose " (spec.max_selections) }
                                        @else { "Choose " (spec.min_selections) " to " (spec.max_selections) }
                                    } @else { "Choose one" }
                                }
                                @for option in &spec.options {
                                    div .option {
                                        label {
                                            input type=(if multi { "checkbox" } else { "radio" }) name="selection" value=(option.id)
                                                checked[spec.default_selection.contains(&option.id)];
                                            " " span .label { (option.label) }
                                            @if option.recommended { " " span .recommended { "recommended" } }
                                        }
                                        @if let Some(d) = &option.description { p .description { (d) } }
                                        input .note type="text" name={ "note." (option.id) } maxlength="2000"
                                            placeholder="Note (optional)" aria-label={ "Note on " (option.label) };
                                    }
                                }
                                @if let Some(note) = if_nobody_answers(c) { (note) }
                            }
                        }
                        @if matches!(spec.mode, Mode::Text | Mode::Hybrid) {
                            label .text { "Your answer"
                                textarea name="text" rows="4" maxlength="20000" placeholder=[spec.placeholder.as_deref()] {}
                            }
                        }
                        label .annotation { "Comment (optional)"
                            input type="text" name="annotation" maxlength="2000";
                        }
                        @if let Ballot::As { key, .. } = context.ballot {
                            input type="hidden" name="as" value=(key);
                        }
                        div .buttons {
                            button .primary type="submit" {
                                @if spec.approval.is_some() { "Vote" } @else { "Submit" }
                            }
                            button type="submit" formaction=(action("cancel")) hx-post=(action("cancel")) { "Cancel the question" }
                        }
                    }
                }
                section #controls .controls aria-label="Countdown controls" {
                    form method="post" action=(action("pause")) hx-post=(action("pause")) hx-swap="none" .when-pending {
                        button type="submit" { "Pause" }
                    }
                    form method="post" action=(action("resume")) hx-post=(action("resume")) hx-swap="none" .when-paused {
                        button type="submit" { @if spec.mode == Mode::Timer { "Start" } @else { "Resume" } }
                    }
                    form method="post" action=(action("timeout")) hx-post=(action("timeout")) hx-swap="none" .when-open {
                        input type="hidden" name="add" value="60";
                        button type="submit" { "+1 min" }
                    }
                    form method="post" action=(action("timeout")) hx-post=(action("timeout")) hx-swap="none" .when-open {
                        input type="hidden" name="add" value="-60";
                        button type="submit" { "−1 min" }
                    }
                    form method="post" action=(action("reset")) hx-post=(action("reset")) hx-swap="none" .when-resettable {
                        button type="submit" { "Reset" }
                    }
                    form .set method="post" action=(action("timeout")) hx-post=(action("timeout")) hx-swap="none" .when-open {
                        @if spec.mode == Mode::Timer {
                            label { "Minutes " input type="number" name="minutes" min="0.1" max="10080" step="any" required; }
                        } @else {
                            label { "Seconds left " input type="number" name="seconds" min="1" max="604800" step="1" required; }
                        }
                        button type="submit" { "Set" }
                    }
                    @if spec.mode == Mode::Timer {
                        form method="post" action=(action("cancel")) hx-post=(action("cancel")) hx-swap="none" .when-open {
                            button type="submit" { "Stop" }
                        }
                    }
                }
                section .share aria-label="Share" {
                    label { "Link " input #link type="url" readonly value=(context.url); }
                    button #copy type="button" hidden { "Copy link" }
                    details { summary { "QR code" } @if let Some(svg) = &fixed.qr { div .qr { (svg) } } }
                }
                form .name method="post" action=(paths::NAME) hx-post=(paths::NAME) hx-swap="none" {
                    input type="hidden" name="back" value=(paths::choice(id));
                    label { "Your name " input type="text" name="name" maxlength="40" placeholder="guest"
                        value=[context.name] autocomplete="nickname"; }
                    button type="submit" { "Save" }
                }
                footer .meta {
                    (viewers(presence))
                    button #notify .linkish type="button" hidden { "Enable notifications" }
                }
                @if streams {
                    // live.js posts to `data-leave` as the tab goes away, so this browser stops
                    // counting as a viewer a moment after its stream ends, not after the grace
                    // period kept for a stream that blips.
                    div #stream hx-sse:connect=(paths::choice_events(id)) hx-sse:close="close"
                        data-leave=(paths::choice_leave(id)) {}
                }
            }
        },
    )
}
