//! `POST /choice/{id}/{action}`: the commands, from a form, HTMX or JSON, answered the way the
//! client asked (a fragment, the choice JSON, or 303 back to the page).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[allow(unused_imports)] // named in the OpenAPI attributes
use super::error::ErrorBody;
use super::{AppError, AppState, Asks, Body, Params, PathIds, Wants, parse_json};
use crate::choice::{Actor, Command, Submission, Via, seconds_to_ms};
use crate::views;

/// The fields any command may carry, from JSON or a form, before they mean anything.
#[derive(Debug, Default, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(example = json!({"selection": ["yes"], "annotation": "looks good"}))]
pub struct CommandBody {
    /// submit: the chosen option ids.
    pub selection: Selection,
    /// submit: the free text (text and hybrid modes).
    pub text: Option<String>,
    /// submit, cancel: a note for the asker.
    pub annotation: Option<String>,
    /// submit: a note per option id.
    pub option_annotations: BTreeMap<String, String>,
    /// submit, on a choice that approvers decide: the approver's key, from their link
    /// (`?as=KEY`; also taken from the query string).
    #[serde(rename = "as")]
    pub approver_key: Option<String>,
    /// `push` from a phone notification's action button, so the record says so.
    pub via: Option<String>,
    /// timeout: the remaining time becomes this many seconds from now.
    pub seconds: Option<f64>,
    /// timeout: add this many seconds (may be negative; remaining never drops below 1 s).
    pub add: Option<f64>,
}

/// `selection` as a JSON array, or a single id for convenience.
#[derive(Debug, Default, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Selection {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl CommandBody {
    /// Reads a form body: `selection` repeated, `note.ID` per option, numbers as text.
    pub fn from_form(bytes: &[u8]) -> Result<CommandBody, AppError> {
        let mut body = CommandBody::default();
        let mut selection = Vec::new();
        for (key, value) in form_urlencoded::parse(bytes) {
            let number = |v: &str| match v.trim() {
                "" => Ok(None),
                v => v
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| AppError::invalid(&key, format!("{key} must be a number"))),
            };
            match &*key {
                "selection" => selection.push(value.into_owned()),
                "text" => body.text = Some(value.into_owned()),
                "annotation" => body.annotation = Some(value.into_owned()),
                "as" => body.approver_key = Some(value.into_owned()),
                "via" => body.via = Some(value.into_owned()),
                "seconds" => body.seconds = number(&value)?,
                "add" => body.add = number(&value)?,
                "minutes" => body.seconds = number(&value)?.map(|m| m * 60.0),
                _ => {
                    if let Some(id) = key.strip_prefix("note.") {
                        body.option_annotations
                            .insert(id.to_string(), value.into_owned());
                    }
                }
            }
        }
        body.selection = Selection::Many(selection);
        Ok(body)
    }

    /// Reads a body by its content type; JSON when it says so or looks like it.
    pub fn from_request(headers: &HeaderMap, bytes: &[u8]) -> Result<CommandBody, AppError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let trimmed = bytes.trim_ascii_start();
        if trimmed.is_empty() {
            Ok(CommandBody::default())
        } else if content_type.starts_with("application/json") || trimmed.starts_with(b"{") {
            parse_json(bytes)
        } else {
            CommandBody::from_form(bytes)
        }
    }

    /// What the action with these fields asks of the choice.
    pub fn into_command(self, action: Action) -> Result<Command, AppError> {
        Ok(match action {
            Action::Submit => Command::Submit(Submission {
                selection: match self.selection {
                    Selection::None => Vec::new(),
                    Selection::One(id) => vec![id],
                    Selection::Many(ids) => ids,
                },
                text: self.text,
                annotation: self.annotation,
                option_annotations: self.option_annotations,
                approver_key: self.approver_key.filter(|key| !key.is_empty()),
            }),
            Action::Cancel => Command::Cancel {
                annotation: self.annotation,
            },
            Action::Timeout => match (self.seconds, self.add) {
                (Some(seconds), _) => Command::SetTimeout {
                    ms: seconds_to_ms("seconds", seconds)?,
                },
                (None, Some(add)) => Command::AddTimeout {
                    ms: seconds_to_ms("add", add)?,
                },
                (None, None) => {
                    return Err(AppError::invalid(
                        "seconds",
                        "give seconds (the new remaining time) or add",
                    ));
                }
            },
            Action::Pause => Command::Pause,
            Action::Resume => Command::Resume,
            Action::Reset => Command::Reset,
        })
    }
}

/// What `POST /choice/{id}/{action}` can ask, by its name in the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Submit,
    Cancel,
    Timeout,
    Pause,
    Resume,
    Reset,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Submit,
        Action::Cancel,
        Action::Timeout,
        Action::Pause,
        Action::Resume,
        Action::Reset,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Submit => "submit",
            Action::Cancel => "cancel",
            Action::Timeout => "timeout",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Reset => "reset",
        }
    }

    /// The action of that name; anything else is a 404 that lists the actions there are.
    pub fn parse(name: &str) -> Result<Action, AppError> {
        Action::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| {
                let name: String = name.chars().take(64).collect();
                let actions: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                AppError::NoSuchAction(format!("no such action: {name} ({})", actions.join(", ")))
            })
    }
}

/// A command on a choice. Needs no token: the id is the capability. Send JSON (answered with
/// the choice JSON) or a form (answered `303 See Other` back to the page, or an HTML fragment
/// for HTMX).
#[utoipa::path(
    post,
    path = "/choice/{id}/{action}",
    tag = "commands",
    security(()),
    params(
        ("id" = String, Path, description = "The choice's id"),
        ("action" = String, Path, description = "submit, cancel, timeout, pause, resume or reset", pattern = "^(submit|cancel|timeout|pause|resume|reset)$"),
    ),
    request_body(
        description = "The fields the action uses; pause, resume and reset need none. A JSON body or `Accept: application/json` gets JSON back; a form gets HTML (a 303, an error page).",
        content(
            (CommandBody = "application/json"),
            ("application/x-www-form-urlencoded"),
        ),
    ),
    responses(
        (status = 200, description = "Done: the choice as it is now.", body = crate::json::ChoiceBody),
        (status = 303, description = "Done (a form post without JSON): back to the choice's page.", headers(("location" = String))),
        (status = 400, description = "The body is not valid JSON or form data.", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 403, description = "forbidden_origin: a browser request from another origin; not_an_approver: a submit on a choice that approvers decide, without one of their keys.", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "No such choice (or no such action).", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 408, description = "The request body did not arrive in time.", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 409, description = "already_final: the choice is final; conflict: the action does not fit its status.", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 413, description = "The body is over 1 MiB.", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 422, description = "Well-formed but not acceptable; `field` names the culprit.", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 429, description = "Too many requests from this client.", content((ErrorBody = "application/json"), (String = "text/html")), headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The server could not answer in time.", content((ErrorBody = "application/json"), (String = "text/html")), headers(("retry-after" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn command(
    State(state): State<AppState>,
    PathIds { id, action }: PathIds,
    params: Params,
    asks: Asks,
    headers: HeaderMap,
    Body(body): Body,
) -> Response {
    // A form post that does not say is a browser's (curl -d): answered with a 303.
    let wants = asks.or(Wants::Page);
    let via = if wants == Wants::Json {
        Via::Api
    } else {
        Via::Web
    };
    let started = std::time::Instant::now();
    let result = async {
        let action = Action::parse(&action)?;
        let mut fields = CommandBody::from_request(&headers, &body)?;
        if fields.approver_key.is_none() {
            fields.approver_key = params.text("as").map(str::to_string);
        }
        let via = match fields.via.take().as_deref() {
            None => via,
            Some("push") => Via::Push,
            Some(_) => return Err(AppError::invalid("via", "via is push, or left out")),
        };
        let command = fields.into_command(action)?;
        Ok::<_, AppError>(
            state
                .engine
                .command(&id, command, Actor { via, by: None })
                .await?,
        )
    }
    .await;
    state.record_command(&action, &result, started);
    match (result, wants) {
        (Ok(choice), Wants::Json) => Json(state.choice_json(&choice)).into_response(),
        (Ok(choice), Wants::Fragment) => {
            // Out-of-band swaps: the new status and countdown, and no error left showing.
            let now = crate::clock::now_ms();
            let fragments = maud::html! {
                (views::choice::status(&choice))
                (views::choice::remaining(&choice, now))
                div #errors role="alert" hx-swap-oob="true" {}
            };
            (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                fragments.into_string(),
            )
                .into_response()
        }
        (Ok(_), Wants::Page) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, crate::paths::choice(&id))],
        )
            .into_response(),
        (Err(e), wants) => e.render(wants, Some(&crate::paths::choice(&id))),
    }
}
