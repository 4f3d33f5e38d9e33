//! The tools' arguments: their schemas, the create request a `provide_choice` call makes, and
//! each bad argument as the MCP error `invalid_params` naming its field.

use rmcp::ErrorData;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::choice::{MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, Mode, OnTimeout};
use crate::json::request::{CreateRequest, OptionRequest};

/// `provide_choice` arguments: the contract agents already use, plus a deadline.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ProvideChoice {
    /// The question, short, as the heading the person sees.
    pub title: String,
    /// Context for the person, in Markdown: what you found, what each option means.
    #[serde(default)]
    pub prompt: Option<String>,
    /// `single`: exactly one option; `multi`: one or more.
    #[serde(default)]
    pub selection_mode: SelectionMode,
    /// The options, in the order shown.
    pub options: Vec<ChoiceOptionArg>,
    /// How long the person has, in seconds (default 300); clamped to 1..=604800.
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
    /// At the deadline: `submit` the recommended options (default), `cancel`, or `reinvoke`
    /// (nothing is chosen; you are asked to call provide_choice again).
    #[serde(default)]
    pub on_timeout: Option<TimeoutAction>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChoiceOptionArg {
    /// Unique id, returned in `selected_indices` when chosen (1 to 64 characters).
    pub id: String,
    /// The text shown for the option; defaults to the id.
    #[serde(default)]
    pub label: Option<String>,
    /// One or two sentences on what choosing it means.
    #[serde(default)]
    pub description: Option<String>,
    /// Marked as recommended and preselected; submitted at the deadline with `on_timeout: submit`.
    #[serde(default)]
    pub recommended: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMode {
    #[default]
    Single,
    Multi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutAction {
    Submit,
    Cancel,
    Reinvoke,
}

/// `poll_selection` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PollSelection {
    /// The `choice_id` of a `pending` result.
    pub choice_id: String,
    /// How long to wait for the answer at most, in seconds (default and limit: the server's
    /// maximum wait per call).
    #[serde(default)]
    pub wait_seconds: Option<f64>,
}

impl ProvideChoice {
    /// What the call does at the deadline.
    pub fn action(&self) -> TimeoutAction {
        self.on_timeout.unwrap_or(TimeoutAction::Submit)
    }

    /// The options as `(id, label)`, for a form in the agent's client.
    pub fn labels(&self) -> Vec<(String, String)> {
        self.options
            .iter()
            .map(|o| {
                (
                    o.id.clone(),
                    o.label.clone().unwrap_or_else(|| o.id.clone()),
                )
            })
            .collect()
    }

    /// The choice this call asks for, from `source`: the recommended options are the default
    /// selection, and `reinvoke` cancels on the server (the call's answer tells it apart).
    pub fn into_request(self, source: String) -> CreateRequest {
        let action = self.action();
        let recommended: Vec<String> = self
            .options
            .iter()
            .filter(|o| o.recommended)
            .map(|o| o.id.clone())
            .collect();
        let limits = (
            MIN_TIMEOUT_MS as f64 / 1000.0,
            MAX_TIMEOUT_MS as f64 / 1000.0,
        );
        CreateRequest {
            title: self.title,
            prompt: self.prompt,
            mode: Some(match self.selection_mode {
                SelectionMode::Single => Mode::Single,
                SelectionMode::Multi => Mode::Multi,
            }),
            options: Some(
                self.options
                    .into_iter()
                    .map(|o| OptionRequest {
                        id: o.id,
                        label: o.label,
                        description: o.description,
                        recommended: o.recommended,
                    })
                    .collect(),
            ),
            default_selection: (!recommended.is_empty()).then_some(recommended),
            on_timeout: Some(match action {
                TimeoutAction::Submit => OnTimeout::SubmitDefault,
                TimeoutAction::Cancel | TimeoutAction::Reinvoke => OnTimeout::Cancel,
            }),
            timeout_seconds: self.timeout_seconds.map(|t| t.clamp(limits.0, limits.1)),
            source: Some(source),
            ..CreateRequest::default()
        }
    }
}

/// A bad argument: the MCP error `invalid_params`, naming the field in its message and data.
pub fn invalid(field: &str, message: impl std::fmt::Display) -> ErrorData {
    ErrorData::invalid_params(
        format!("{field}: {message}"),
        Some(json!({ "field": field })),
    )
}

/// The server's 422 on a create, named by the tool argument that caused it.
pub fn refused_argument(field: Option<&str>, message: &str) -> ErrorData {
    let Some(field) = field else {
        return ErrorData::invalid_params(message.to_string(), None);
    };
    match field.split(['[', '.']).next().unwrap_or("") {
        "default_selection" => invalid(
            "options",
            format!("{message} (the recommended options are the default selection)"),
        ),
        "mode" | "min_selections" | "max_selections" => invalid("selection_mode", message),
        _ => invalid(field, message),
    }
}

/// Tool arguments as `T`; a bad one is an error naming its field (`options[1].id`).
pub fn arguments<T: DeserializeOwned>(arguments: Option<JsonObject>) -> Result<T, ErrorData> {
    let value = Value::Object(arguments.unwrap_or_default());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name.to_string(),
            (_, Some(name)) => format!("{path}.{name}"),
            (".", None) => "arguments".to_string(),
            (_, None) => path,
        };
        invalid(&field, message)
    })
}

#[cfg(test)]
mod tests {
    use rmcp::model::ErrorCode;

    use super::*;

    #[test]
    fn bad_arguments_name_their_field() {
        let field = |args: Value| {
            let Value::Object(map) = args else {
                panic!("an object")
            };
            let e = arguments::<ProvideChoice>(Some(map)).expect_err("refused");
            assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
            e.data.expect("data")["field"]
                .as_str()
                .expect("field")
                .to_string()
        };
        assert_eq!(field(json!({"options": []})), "title");
        assert_eq!(field(json!({"title": "t"})), "options");
        assert_eq!(
            field(json!({"title": "t", "options": [{"id": "a"}, {"label": "b"}]})),
            "options[1].id"
        );
        assert_eq!(
            field(json!({"title": "t", "options": [{"id": "a"}], "selection_mode": "some"})),
            "selection_mode"
        );
        assert_eq!(
            field(json!({"title": "t", "options": [{"id": "a"}], "timeout_seconds": "soon"})),
            "timeout_seconds"
        );
        assert_eq!(
            refused_argument(Some("default_selection"), "at most 1").data,
            Some(json!({"field": "options"}))
        );
    }
}
