//! The rules a new choice is checked against, one function per part of a create request; each
//! refusal names the field at fault. The request and the parse that applies these rules, part
//! by part, are in `json::request`.

use super::names::{DisplayName, Source};
use super::{
    Approval, Approver, ChoiceOption, DEFAULT_TIMEOUT_MS, MAX_APPROVERS, MAX_DESCRIPTION,
    MAX_LABEL, MAX_OPTION_ID, MAX_OPTIONS, MAX_PLACEHOLDER, MAX_PROMPT, MAX_TITLE, Mode, Rejection,
    check_timeout, invalid, seconds_to_ms,
};
use crate::clock::Millis;

/// The title, trimmed: required, and at most `MAX_TITLE` characters.
pub fn title(title: &str) -> Result<String, Rejection> {
    let title = title.trim();
    if title.is_empty() {
        return Err(invalid("title", "title is required"));
    }
    check_len("title", title, MAX_TITLE)?;
    Ok(title.to_string())
}

/// The prompt (Markdown), at most `MAX_PROMPT` characters; none is empty.
pub fn prompt(prompt: Option<String>) -> Result<String, Rejection> {
    let prompt = prompt.unwrap_or_default();
    check_len("prompt", &prompt, MAX_PROMPT)?;
    Ok(prompt)
}

/// The options as given: as many as the mode takes (none for text and timer), each one
/// checked by `option`.
pub fn options(mode: Mode, given: Vec<ChoiceOption>) -> Result<Vec<ChoiceOption>, Rejection> {
    if !mode.has_options() {
        if !given.is_empty() {
            return Err(invalid(
                "options",
                format!("{} mode takes no options", mode.as_str()),
            ));
        }
        return Ok(Vec::new());
    }
    if given.is_empty() || given.len() > MAX_OPTIONS {
        return Err(invalid(
            "options",
            format!("{} mode needs 1 to {MAX_OPTIONS} options", mode.as_str()),
        ));
    }
    let mut options = Vec::with_capacity(given.len());
    for (i, o) in given.into_iter().enumerate() {
        let checked = option(i, o, &options)?;
        options.push(checked);
    }
    Ok(options)
}

/// Option `i` as given, after the options `before` it: an id of its own without spaces or
/// control characters; a blank label becomes the id, an empty description none.
fn option(i: usize, o: ChoiceOption, before: &[ChoiceOption]) -> Result<ChoiceOption, Rejection> {
    let field = |name: &str| format!("options[{i}].{name}");
    if o.id.is_empty() || o.id.chars().count() > MAX_OPTION_ID {
        return Err(invalid(
            field("id"),
            format!("option ids are 1 to {MAX_OPTION_ID} characters"),
        ));
    }
    if o.id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            field("id"),
            "option ids may not contain spaces or control characters",
        ));
    }
    if before.iter().any(|p| p.id == o.id) {
        return Err(invalid(
            field("id"),
            format!("option id {:?} is used twice", o.id),
        ));
    }
    let label = if o.label.trim().is_empty() {
        o.id.clone()
    } else {
        o.label
    };
    check_len(&field("label"), &label, MAX_LABEL)?;
    let description = o.description.filter(|d| !d.is_empty());
    if let Some(d) = &description {
        check_len(&field("description"), d, MAX_DESCRIPTION)?;
    }
    Ok(ChoiceOption {
        id: o.id,
        label,
        description,
        recommended: o.recommended,
    })
}

/// How many of the `options` a person must and may select, `(min, max)`: the mode's own
/// unless given, and single is always exactly one.
pub fn selections(
    mode: Mode,
    options: usize,
    min: Option<u64>,
    max: Option<u64>,
) -> Result<(usize, usize), Rejection> {
    let n = options;
    let (default_min, default_max) = match mode {
        Mode::Single => (1, 1),
        Mode::Multi => (1, n),
        Mode::Hybrid => (0, 1),
        Mode::Text | Mode::Timer => (0, 0),
    };
    let min = min.map_or(default_min, |v| v as usize);
    let max = max.map_or(default_max, |v| v as usize);
    match mode {
        Mode::Single if min != 1 || max != 1 => Err(invalid(
            if min != 1 {
                "min_selections"
            } else {
                "max_selections"
            },
            "single mode takes exactly one option; use multi",
        )),
        Mode::Multi | Mode::Hybrid if max == 0 || max > n => Err(invalid(
            "max_selections",
            format!("max_selections must be between 1 and {n}"),
        )),
        Mode::Multi | Mode::Hybrid if min > max => Err(invalid(
            "min_selections",
            "min_selections may not exceed max_selections",
        )),
        Mode::Text | Mode::Timer if min != 0 || max != 0 => Err(invalid(
            if min != 0 {
                "min_selections"
            } else {
                "max_selections"
            },
            format!("{} mode takes no selections", mode.as_str()),
        )),
        _ => Ok((min, max)),
    }
}

/// What the deadline submits: known options, each listed once, at most `max` of them.
pub fn default_selection(
    options: &[ChoiceOption],
    ids: Vec<String>,
    max: usize,
) -> Result<Vec<String>, Rejection> {
    for (i, id) in ids.iter().enumerate() {
        let field = format!("default_selection[{i}]");
        if !options.iter().any(|o| &o.id == id) {
            return Err(invalid(field, format!("unknown option {id:?}")));
        }
        if ids[..i].contains(id) {
            return Err(invalid(field, format!("option {id:?} is listed twice")));
        }
    }
    if ids.len() > max {
        return Err(invalid(
            "default_selection",
            format!("at most {max} options may be selected"),
        ));
    }
    Ok(ids)
}

/// The countdown's length: 1 to 604,800 seconds (7 days), `DEFAULT_TIMEOUT_MS` if not given.
pub fn timeout(seconds: Option<f64>) -> Result<Millis, Rejection> {
    match seconds {
        None => Ok(DEFAULT_TIMEOUT_MS),
        // Checked before rounding: 0.9996 s is not "at least 1 second".
        Some(s) if !(1.0..=604_800.0).contains(&s) => Err(invalid(
            "timeout_seconds",
            "timeout_seconds must be between 1 and 604800 seconds",
        )),
        Some(s) => {
            let ms = seconds_to_ms("timeout_seconds", s)?;
            check_timeout("timeout_seconds", ms)?;
            Ok(ms)
        }
    }
}

/// The hint in an empty text answer; empty is none.
pub fn placeholder(placeholder: Option<String>) -> Result<Option<String>, Rejection> {
    let placeholder = placeholder.filter(|p| !p.is_empty());
    if let Some(p) = &placeholder {
        check_len("placeholder", p, MAX_PLACEHOLDER)?;
    }
    Ok(placeholder)
}

/// The name of the program that asks, trimmed; blank is none.
pub fn source(source: Option<String>) -> Result<Option<String>, Rejection> {
    Ok(source
        .as_deref()
        .map(Source::parse)
        .transpose()?
        .flatten()
        .map(String::from))
}

/// The approvers and quorum: single and multi only, 1 to `MAX_APPROVERS` distinct names, a
/// quorum between one and all of them (all if not given). Their keys are issued afterwards
/// (`NewChoice::issue_approver_keys`).
pub fn approval(
    mode: Mode,
    names: Option<Vec<String>>,
    quorum: Option<u64>,
) -> Result<Option<Approval>, Rejection> {
    let Some(names) = names else {
        return match quorum {
            Some(_) => Err(invalid("quorum", "a quorum needs approvers")),
            None => Ok(None),
        };
    };
    if !matches!(mode, Mode::Single | Mode::Multi) {
        return Err(invalid(
            "approvers",
            format!(
                "{} mode takes no approvers; use single or multi",
                mode.as_str()
            ),
        ));
    }
    if names.is_empty() || names.len() > MAX_APPROVERS {
        return Err(invalid(
            "approvers",
            format!("approvers lists 1 to {MAX_APPROVERS} names"),
        ));
    }
    let mut approvers: Vec<Approver> = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let checked = approver(i, &name, &approvers)?;
        approvers.push(checked);
    }
    let n = approvers.len();
    let quorum = match quorum {
        None => n,
        Some(q) if (1..=n as u64).contains(&q) => q as usize,
        Some(_) => {
            return Err(invalid(
                "quorum",
                format!("quorum must be between 1 and {n}, the number of approvers"),
            ));
        }
    };
    Ok(Some(Approval { approvers, quorum }))
}

/// Approver `i`, named after those `before` it: 1 to `MAX_NAME` characters once trimmed, no
/// control characters, a name of its own. Without a key yet.
fn approver(i: usize, name: &str, before: &[Approver]) -> Result<Approver, Rejection> {
    let field = format!("approvers[{i}]");
    let name = String::from(DisplayName::required(&field, name)?);
    if before.iter().any(|a| a.name == name) {
        return Err(invalid(field, format!("approver {name:?} is listed twice")));
    }
    Ok(Approver {
        name,
        key_hash: String::new(),
    })
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.chars().count() > max {
        return Err(invalid(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(())
}
