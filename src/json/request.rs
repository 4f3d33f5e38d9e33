//! The create request as programs send it, and its parse into a checked `NewChoice`: each
//! part by its rule in `choice::create`, so code past the boundary holds no unchecked value.

use serde::{Deserialize, Serialize};

use crate::choice::{ChoiceOption, Mode, NewChoice, OnTimeout, Rejection, Spec, create};

/// The create request as programs send it. Everything but `title` is optional. (The schema
/// attributes document it in `/api/openapi.json`; `TryFrom` below is what checks it.)
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(example = json!({"title": "Deploy build 1234?", "prompt": "All checks passed.",
    "options": [{"id": "yes", "label": "Ship it"}, {"id": "no"}],
    "default_selection": ["no"], "timeout_seconds": 300, "source": "nightly-build"}))]
pub struct CreateRequest {
    /// 1 to 200 characters, surrounding spaces aside.
    #[schema(required = true)]
    pub title: String,
    /// Markdown, up to 20,000 characters; raw HTML is shown as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 20000)]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// 1 to 100 for single, multi and hybrid; none for text and timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 100)]
    pub options: Option<Vec<OptionRequest>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_selection: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
    /// The countdown, 1 to 604,800 seconds (7 days); default 300.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_selections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_selections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub start_paused: bool,
    /// single and multi: 1 to 50 unique names (1 to 40 characters) whose votes decide. Each
    /// gets a link of its own in the answer (`approver_links`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 50)]
    pub approvers: Option<Vec<String>>,
    /// How many approvers must vote the same: 1 to the number of approvers; default all.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 50)]
    pub quorum: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OptionRequest {
    /// 1 to 64 characters, no spaces or control characters, unique in the choice.
    #[schema(required = true, min_length = 1, max_length = 64)]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recommended: bool,
}

impl TryFrom<CreateRequest> for NewChoice {
    type Error = Rejection;

    /// Part by part, in the order the request lists them: the first fault is the one named.
    fn try_from(req: CreateRequest) -> Result<NewChoice, Rejection> {
        let title = create::title(&req.title)?;
        let prompt = create::prompt(req.prompt)?;
        let mode = req.mode.unwrap_or(Mode::Single);
        let sent = req.options.unwrap_or_default();
        let options = create::options(mode, sent.into_iter().map(given).collect())?;
        let (min_selections, max_selections) =
            create::selections(mode, options.len(), req.min_selections, req.max_selections)?;
        let default_selection = create::default_selection(
            &options,
            req.default_selection.unwrap_or_default(),
            max_selections,
        )?;
        let timeout_ms = create::timeout(req.timeout_seconds)?;
        let placeholder = create::placeholder(req.placeholder)?;
        let source = create::source(req.source)?;
        let approval = create::approval(mode, req.approvers, req.quorum)?;
        Ok(NewChoice {
            spec: Spec {
                title,
                prompt,
                mode,
                options,
                min_selections,
                max_selections,
                placeholder,
                default_selection,
                on_timeout: req.on_timeout.unwrap_or(OnTimeout::SubmitDefault),
                source,
                approval,
            },
            timeout_ms,
            start_paused: req.start_paused,
        })
    }
}

/// An option as sent, not yet checked: no label is a blank one (`create::options` gives it the
/// id).
fn given(o: OptionRequest) -> ChoiceOption {
    ChoiceOption {
        id: o.id,
        label: o.label.unwrap_or_default(),
        description: o.description,
        recommended: o.recommended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_names_the_field_at_fault() {
        let field_of = |req: CreateRequest| match NewChoice::try_from(req) {
            Err(Rejection::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        let opt = |id: &str| OptionRequest {
            id: id.into(),
            ..Default::default()
        };
        assert_eq!(field_of(CreateRequest::default()), "title");
        assert_eq!(
            field_of(CreateRequest {
                title: "x".into(),
                ..Default::default()
            }),
            "options"
        );
        assert_eq!(
            field_of(CreateRequest {
                title: "x".into(),
                options: Some(vec![opt("a"), opt("a")]),
                ..Default::default()
            }),
            "options[1].id"
        );
        assert_eq!(
            field_of(CreateRequest {
                title: "x".into(),
                options: Some(vec![opt("a")]),
                timeout_seconds: Some(0.5),
                ..Default::default()
            }),
            "timeout_seconds"
        );
        assert_eq!(
            field_of(CreateRequest {
                title: "x".into(),
                options: Some(vec![opt("a")]),
                default_selection: Some(vec!["b".into()]),
                ..Default::default()
            }),
            "default_selection[0]"
        );
    }

    #[test]
    fn approvers_and_quorum_are_checked_at_creation() {
        let field_of = |mode: Mode, names: Vec<&str>, quorum: Option<u64>| {
            let req = CreateRequest {
                title: "x".into(),
                mode: Some(mode),
                options: (mode.has_options()).then(|| {
                    vec![OptionRequest {
                        id: "a".into(),
                        ..Default::default()
                    }]
                }),
                approvers: Some(names.into_iter().map(String::from).collect()),
                quorum,
                ..Default::default()
            };
            match NewChoice::try_from(req) {
                Err(Rejection::Invalid { field, .. }) => field,
                other => panic!("expected invalid, got {other:?}"),
            }
        };
        assert_eq!(field_of(Mode::Text, vec!["ana"], None), "approvers");
        assert_eq!(field_of(Mode::Hybrid, vec!["ana"], None), "approvers");
        assert_eq!(field_of(Mode::Timer, vec!["ana"], None), "approvers");
        assert_eq!(field_of(Mode::Single, vec![], None), "approvers");
        assert_eq!(
            field_of(Mode::Single, vec!["ana", "ana"], None),
            "approvers[1]"
        );
        assert_eq!(field_of(Mode::Single, vec![" "], None), "approvers[0]");
        assert_eq!(field_of(Mode::Single, vec!["ana", "bo"], Some(0)), "quorum");
        assert_eq!(field_of(Mode::Single, vec!["ana", "bo"], Some(3)), "quorum");
        let quorum_alone = CreateRequest {
            title: "x".into(),
            options: Some(vec![OptionRequest {
                id: "a".into(),
                ..Default::default()
            }]),
            quorum: Some(1),
            ..Default::default()
        };
        assert!(matches!(
            NewChoice::try_from(quorum_alone),
            Err(Rejection::Invalid { field, .. }) if field == "quorum"
        ));
    }
}
