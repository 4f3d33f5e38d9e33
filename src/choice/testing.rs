//! Fixtures for the machine's and the approvals' tests: choices made by the creation rules,
//! as a create request would make them, and the commands a person sends.

use super::{
    Actor, Choice, ChoiceOption, Command, Mode, NewChoice, OnTimeout, Spec, Submission, Via, create,
};
use crate::clock::Millis;

pub const T0: Millis = 1_800_000_000_000;

pub fn web() -> Actor {
    Actor {
        via: Via::Web,
        by: None,
    }
}

/// Options yes, no and maybe where the mode has options (none for text and timer).
fn yes_no_maybe(mode: Mode) -> Vec<ChoiceOption> {
    if !mode.has_options() {
        return Vec::new();
    }
    let given = ["yes", "no", "maybe"]
        .map(|id| ChoiceOption {
            id: id.into(),
            label: String::new(),
            description: None,
            recommended: false,
        })
        .to_vec();
    create::options(mode, given).expect("valid options")
}

fn new_choice(mode: Mode, timeout_s: f64, spec: impl FnOnce(&mut Spec)) -> NewChoice {
    let options = yes_no_maybe(mode);
    let (min_selections, max_selections) =
        create::selections(mode, options.len(), None, None).expect("valid bounds");
    let mut new = NewChoice {
        spec: Spec {
            title: create::title("Deploy?").expect("valid title"),
            prompt: String::new(),
            mode,
            options,
            min_selections,
            max_selections,
            placeholder: None,
            default_selection: Vec::new(),
            on_timeout: OnTimeout::SubmitDefault,
            source: None,
            approval: None,
        },
        timeout_ms: create::timeout(Some(timeout_s)).expect("valid timeout"),
        start_paused: false,
    };
    spec(&mut new.spec);
    new
}

/// A choice over yes/no/maybe (none for text and timer) whose default is `no`.
pub fn choice(mode: Mode, timeout_s: f64, on_timeout: OnTimeout) -> Choice {
    let new = new_choice(mode, timeout_s, |spec| {
        spec.on_timeout = on_timeout;
        if mode.has_options() {
            spec.default_selection = vec!["no".into()];
        }
    });
    Choice::new("c1".into(), new, T0)
}

/// A choice over yes/no/maybe that `names` decide, and each approver's key.
pub fn approved(mode: Mode, names: &[&str], quorum: Option<u64>) -> (Choice, Vec<String>) {
    let names = names.iter().map(|n| n.to_string()).collect();
    let approval = create::approval(mode, Some(names), quorum).expect("valid approvers");
    let mut new = new_choice(mode, 60.0, |spec| spec.approval = approval);
    let mut n = 0;
    let keys = new
        .issue_approver_keys(|| {
            n += 1;
            Ok::<_, ()>(format!("key-{n}"))
        })
        .expect("keys");
    let choice = Choice::new("c1".into(), new, T0);
    (choice, keys.into_iter().map(|(_, key)| key).collect())
}

pub fn submit(ids: &[&str]) -> Command {
    Command::Submit(Submission {
        selection: ids.iter().map(|s| s.to_string()).collect(),
        ..Submission::default()
    })
}

pub fn vote(key: &str, ids: &[&str]) -> Command {
    Command::Submit(Submission {
        selection: ids.iter().map(|s| s.to_string()).collect(),
        approver_key: Some(key.to_string()),
        ..Submission::default()
    })
}
