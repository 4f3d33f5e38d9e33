//! What a call answers about a choice: the tool result (`action_status`, `selected_indices`,
//! ...), and the same result as a task of the Tasks extension.

use rmcp::model::{CallToolResult, DetailedTask, JsonObject, Task, TaskPayload, TaskStatus};
use serde_json::{Map, Value, json};

use super::PROGRESS_EVERY;
use super::args::TimeoutAction;
use super::backend::ChoiceView;
use crate::choice::{OnTimeout, Status};
use crate::clock::countdown_secs;

/// What an open choice waits for, and how long it has left (`4:59`, or `paused with 4:59`).
pub fn waiting(choice: &ChoiceView) -> String {
    let left = match choice.status {
        Status::Paused => format!("paused with {}", countdown_secs(choice.remaining_seconds)),
        _ => countdown_secs(choice.remaining_seconds),
    };
    format!("waiting for a person at {}: {left} left", choice.url)
}

/// A provide_choice call run as a task (the Tasks extension) is its choice: the task id is the
/// choice id, working while the choice is open, completed with the tool's result once it is
/// final. Read from the choice itself, so a task survives a restart and reads the same on every
/// node; nothing is kept in memory for it.
pub fn task_of(choice: &ChoiceView, asked: Option<TimeoutAction>) -> DetailedTask {
    let updated = choice
        .resolved_at
        .clone()
        .unwrap_or_else(|| crate::clock::rfc3339(crate::clock::now_ms()));
    let task = Task::new(&choice.id, TaskStatus::Working, &choice.created_at, updated)
        .with_poll_interval_ms(PROGRESS_EVERY.as_millis() as u64);
    if !choice.status.is_final() {
        let task = task.with_status_message(waiting(choice));
        return DetailedTask::new(task, TaskPayload::Working);
    }
    let answer = CallToolResult::structured(result(choice, asked));
    let result = match serde_json::to_value(answer) {
        Ok(Value::Object(result)) => result,
        _ => JsonObject::new(),
    };
    DetailedTask::new(task, TaskPayload::Completed { result })
}

/// The tool result for a choice in its current state; empty fields are left out.
pub fn result(choice: &ChoiceView, asked: Option<TimeoutAction>) -> Value {
    let annotation = choice.annotation.as_ref().filter(|a| !a.is_empty());
    let action = asked.unwrap_or(match choice.on_timeout {
        OnTimeout::SubmitDefault => TimeoutAction::Submit,
        OnTimeout::Cancel => TimeoutAction::Cancel,
    });
    let status = match choice.status {
        Status::Submitted => "selected",
        Status::Cancelled if annotation.is_some() || !choice.option_annotations.is_empty() => {
            "cancel_with_annotation"
        }
        Status::Cancelled => "cancelled",
        Status::TimedOut => match action {
            TimeoutAction::Reinvoke => "timeout_reinvoke_requested",
            TimeoutAction::Submit if !choice.selection.is_empty() => "timeout_auto_submitted",
            TimeoutAction::Submit | TimeoutAction::Cancel => "timeout_cancelled",
        },
        Status::Pending | Status::Paused => "pending",
    };
    let mut out = Map::new();
    out.insert("action_status".into(), json!(status));
    if !choice.selection.is_empty() {
        out.insert("selected_indices".into(), json!(choice.selection));
    }
    if !choice.option_annotations.is_empty() {
        out.insert(
            "option_annotations".into(),
            json!(choice.option_annotations),
        );
    }
    if let Some(annotation) = annotation {
        out.insert("additional_annotation".into(), json!(annotation));
    }
    out.insert("url".into(), json!(choice.url));
    out.insert("choice_id".into(), json!(choice.id));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::choice::Mode;

    fn choice(status: Status, selection: &[&str], on_timeout: OnTimeout) -> ChoiceView {
        ChoiceView {
            id: "abc".into(),
            url: "http://127.0.0.1:8080/choice/abc".into(),
            title: "Deploy?".into(),
            mode: Mode::Single,
            status,
            remaining_seconds: 0.0,
            on_timeout,
            selection: selection.iter().map(|s| s.to_string()).collect(),
            annotation: None,
            option_annotations: BTreeMap::new(),
            created_at: "2026-11-02T10:00:00.000Z".into(),
            resolved_at: None,
        }
    }

    #[test]
    fn results_name_the_outcome_and_leave_out_empty_fields() {
        let mut selected = choice(Status::Submitted, &["yes"], OnTimeout::SubmitDefault);
        selected.option_annotations = BTreeMap::from([("yes".into(), "after 6pm".into())]);
        selected.annotation = Some(String::new());
        assert_eq!(
            result(&selected, None),
            json!({"action_status": "selected", "selected_indices": ["yes"],
                   "option_annotations": {"yes": "after 6pm"},
                   "url": "http://127.0.0.1:8080/choice/abc", "choice_id": "abc"})
        );
        let cancelled = choice(Status::Cancelled, &[], OnTimeout::Cancel);
        assert_eq!(result(&cancelled, None)["action_status"], "cancelled");
        let mut noted = choice(Status::Cancelled, &[], OnTimeout::Cancel);
        noted.annotation = Some("wrong question".into());
        assert_eq!(
            result(&noted, None)["action_status"],
            "cancel_with_annotation"
        );
        assert_eq!(
            result(&noted, None)["additional_annotation"],
            "wrong question"
        );
        let pending = choice(Status::Pending, &[], OnTimeout::SubmitDefault);
        assert_eq!(
            result(&pending, None),
            json!({"action_status": "pending", "url": "http://127.0.0.1:8080/choice/abc", "choice_id": "abc"})
        );
    }

    #[test]
    fn timeouts_say_what_the_deadline_did() {
        let submitted = choice(Status::TimedOut, &["no"], OnTimeout::SubmitDefault);
        assert_eq!(
            result(&submitted, None)["action_status"],
            "timeout_auto_submitted"
        );
        let cancelled = choice(Status::TimedOut, &[], OnTimeout::Cancel);
        assert_eq!(
            result(&cancelled, None)["action_status"],
            "timeout_cancelled"
        );
        assert_eq!(
            result(&cancelled, Some(TimeoutAction::Reinvoke))["action_status"],
            "timeout_reinvoke_requested"
        );
        let nothing_recommended = choice(Status::TimedOut, &[], OnTimeout::SubmitDefault);
        assert_eq!(
            result(&nothing_recommended, None)["action_status"],
            "timeout_cancelled"
        );
    }
}
