//! The pure state machine: each command, given `now`, changes a choice and names the event it
//! caused, or is refused and changes nothing. Final is absorbing, but for a rung timer's next
//! round.

use std::collections::BTreeMap;

use super::approval::Tally;
use super::{
    Actor, Approval, Choice, Command, EventKind, MAX_ANNOTATION, MAX_TEXT, MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS, Mode, NewChoice, OnTimeout, Outcome, Rejection, Spec, Status, Submission, Via,
    Vote, check_timeout, invalid,
};
use crate::clock::Millis;

impl Choice {
    /// A new choice at version 1, counting down (or paused) from `now`.
    pub fn new(id: String, new: NewChoice, now: Millis) -> Choice {
        let (status, deadline, paused_remaining) = if new.start_paused {
            (Status::Paused, None, Some(new.timeout_ms))
        } else {
            (Status::Pending, Some(now + new.timeout_ms), None)
        };
        Choice {
            id,
            spec: new.spec,
            status,
            deadline,
            paused_remaining,
            timeout_ms: new.timeout_ms,
            created_at: now,
            resolved_at: None,
            result: None,
            round: 1,
            version: 1,
            votes: Vec::new(),
        }
    }

    /// Remaining time at `now`: counting while pending, frozen while paused, zero once final.
    pub fn remaining_ms(&self, now: Millis) -> Millis {
        match self.status {
            Status::Pending => self.deadline.map_or(0, |d| (d - now).max(0)),
            Status::Paused => self.paused_remaining.unwrap_or(0).max(0),
            _ => 0,
        }
    }

    /// Nothing more can happen to it: final, and not a timer that rang (`reset` starts that
    /// one's next round). A settled choice's streams end; every other's stay open.
    pub fn is_settled(&self) -> bool {
        self.status.is_final()
            && !(self.spec.mode == Mode::Timer && self.status == Status::TimedOut)
    }

    /// Apply one command at `now`. On success the choice has changed (version + 1) and the
    /// event kind says how; on rejection nothing has changed.
    pub fn apply(
        &mut self,
        command: Command,
        actor: &Actor,
        now: Millis,
    ) -> Result<EventKind, Rejection> {
        // A settled choice takes no command; a rung timer takes `reset`, into its next round.
        if self.is_settled() || (self.status.is_final() && command != Command::Reset) {
            return Err(Rejection::AlreadyFinal);
        }
        let kind = match command {
            Command::Submit(answer) => match self.spec.approval.clone() {
                Some(approval) => self.vote(&approval, answer, actor, now)?,
                None if answer.approver_key.is_some() => {
                    return Err(invalid(
                        "as",
                        "this choice has no approvers; answer without a key",
                    ));
                }
                None => {
                    let outcome = self.check_answer(answer, actor)?;
                    self.finish(Status::Submitted, outcome, now);
                    EventKind::Submitted
                }
            },
            Command::Cancel { annotation } => {
                let annotation = bounded_note(annotation, "annotation")?;
                let outcome = Outcome {
                    annotation,
                    via: Some(actor.via),
                    by: actor.by.clone(),
                    ..Outcome::default()
                };
                self.finish(Status::Cancelled, outcome, now);
                EventKind::Cancelled
            }
            Command::SetTimeout { ms } => {
                check_timeout("seconds", ms)?;
                self.set_remaining(ms, now);
                self.timeout_ms = ms;
                EventKind::TimeoutChanged
            }
            Command::AddTimeout { ms } => {
                if ms.abs() > MAX_TIMEOUT_MS {
                    return Err(invalid("add", "add must be within ±604800 seconds"));
                }
                let remaining = (self.remaining_ms(now) + ms).max(MIN_TIMEOUT_MS);
                if remaining > MAX_TIMEOUT_MS {
                    return Err(invalid(
                        "add",
                        "remaining time may not exceed 604800 seconds",
                    ));
                }
                self.set_remaining(remaining, now);
                self.timeout_ms = (self.timeout_ms + ms).clamp(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS);
                EventKind::TimeoutChanged
            }
            Command::Pause => {
                if self.status == Status::Paused {
                    return Err(Rejection::Conflict("the choice is already paused".into()));
                }
                self.paused_remaining = Some(self.remaining_ms(now));
                self.deadline = None;
                self.status = Status::Paused;
                EventKind::Paused
            }
            Command::Resume => {
                if self.status != Status::Paused {
                    return Err(Rejection::Conflict(
                        "only a paused choice can be resumed".into(),
                    ));
                }
                self.deadline = Some(now + self.paused_remaining.take().unwrap_or(0));
                self.status = Status::Pending;
                EventKind::Resumed
            }
            Command::Reset => {
                if self.status.is_final() {
                    self.round += 1;
                    self.result = None;
                    self.resolved_at = None;
                }
                self.status = Status::Pending;
                self.paused_remaining = None;
                self.deadline = Some(now + self.timeout_ms);
                EventKind::Reset
            }
            Command::Expire => {
                let due = self.status == Status::Pending && self.deadline.is_some_and(|d| now >= d);
                if !due {
                    return Err(Rejection::Conflict("the deadline has not passed".into()));
                }
                let (status, selection) = match (self.spec.on_timeout, self.spec.mode) {
                    (_, Mode::Timer) | (OnTimeout::Cancel, _) => (Status::TimedOut, Vec::new()),
                    (OnTimeout::SubmitDefault, _) => {
                        (Status::TimedOut, self.spec.default_selection.clone())
                    }
                };
                let outcome = Outcome {
                    selection,
                    via: Some(Via::Timeout),
                    ..Outcome::default()
                };
                self.finish(status, outcome, now);
                EventKind::TimedOut
            }
        };
        self.version += 1;
        Ok(kind)
    }

    fn set_remaining(&mut self, ms: Millis, now: Millis) {
        match self.status {
            Status::Paused => self.paused_remaining = Some(ms),
            _ => self.deadline = Some(now + ms),
        }
    }

    fn finish(&mut self, status: Status, mut outcome: Outcome, now: Millis) {
        outcome.votes = self.votes.clone();
        self.status = status;
        self.deadline = None;
        self.paused_remaining = None;
        self.resolved_at = Some(now);
        self.result = Some(outcome);
    }

    /// An approver's vote: recorded as their latest, then counted (see [`Approval::tally`]).
    /// It decides the choice, cancels it when the quorum is out of reach, or leaves it open.
    fn vote(
        &mut self,
        approval: &Approval,
        mut answer: Submission,
        actor: &Actor,
        now: Millis,
    ) -> Result<EventKind, Rejection> {
        let key = answer.approver_key.take().ok_or_else(|| {
            Rejection::NotAnApprover(
                "only this choice's approvers may answer it: use your approver link".into(),
            )
        })?;
        let name = approval
            .approver_of(&key)
            .map(str::to_string)
            .ok_or_else(|| {
                Rejection::NotAnApprover("this key is not one of this choice's approvers".into())
            })?;
        let voter = Actor {
            via: actor.via,
            by: Some(name.clone()),
        };
        let outcome = self.check_answer(answer, &voter)?;
        self.votes.retain(|v| v.approver != name);
        self.votes.push(Vote {
            approver: name,
            selection: outcome.selection.clone(),
            annotation: outcome.annotation.clone(),
            at: now,
        });
        match approval.tally(&self.votes, &outcome.selection) {
            Tally::Decided => {
                self.finish(Status::Submitted, outcome, now);
                Ok(EventKind::Submitted)
            }
            Tally::OutOfReach => {
                let no_quorum = Outcome {
                    annotation: Some("no quorum".into()),
                    via: Some(actor.via),
                    ..Outcome::default()
                };
                self.finish(Status::Cancelled, no_quorum, now);
                Ok(EventKind::Cancelled)
            }
            Tally::Open => Ok(EventKind::Voted),
        }
    }

    /// The label people see for an option id (the id itself if there is no such option).
    pub fn option_label<'a>(&'a self, id: &'a str) -> &'a str {
        self.spec
            .options
            .iter()
            .find(|o| o.id == id)
            .map_or(id, |o| o.label.as_str())
    }

    /// How many more agreeing votes the leading selection needs; `None` without approvers.
    pub fn votes_needed(&self) -> Option<usize> {
        let approval = self.spec.approval.as_ref()?;
        Some(approval.votes_needed(&self.votes))
    }

    fn check_answer(&self, answer: Submission, actor: &Actor) -> Result<Outcome, Rejection> {
        let spec = &self.spec;
        for (i, id) in answer.selection.iter().enumerate() {
            if !spec.options.iter().any(|o| &o.id == id) {
                return Err(invalid(
                    format!("selection[{i}]"),
                    format!("unknown option {id:?}"),
                ));
            }
            if answer.selection[..i].contains(id) {
                return Err(invalid(
                    format!("selection[{i}]"),
                    format!("option {id:?} is selected twice"),
                ));
            }
        }
        let text = match answer.text {
            Some(t) if t.trim().is_empty() => None,
            Some(t) if t.chars().count() > MAX_TEXT => {
                return Err(invalid(
                    "text",
                    format!("text is longer than {MAX_TEXT} characters"),
                ));
            }
            other => other,
        };
        let n = answer.selection.len();
        match spec.mode {
            Mode::Single | Mode::Multi => {
                if n < spec.min_selections || n > spec.max_selections {
                    return Err(invalid("selection", selection_bounds(spec)));
                }
            }
            Mode::Hybrid => {
                if n > spec.max_selections || (text.is_none() && n < spec.min_selections.max(1)) {
                    return Err(invalid(
                        "selection",
                        format!("{}, or write an answer", selection_bounds(spec)),
                    ));
                }
            }
            Mode::Text => {
                if text.is_none() {
                    return Err(invalid("text", "write an answer"));
                }
            }
            Mode::Timer => {
                if n > 0 || text.is_some() {
                    return Err(invalid("selection", "a timer takes no answer"));
                }
            }
        }
        let mut option_annotations = BTreeMap::new();
        for (id, note) in answer.option_annotations {
            if !spec.options.iter().any(|o| o.id == id) {
                return Err(invalid(
                    format!("option_annotations.{id}"),
                    format!("unknown option {id:?}"),
                ));
            }
            if let Some(note) = bounded_note(Some(note), &format!("option_annotations.{id}"))? {
                option_annotations.insert(id, note);
            }
        }
        Ok(Outcome {
            selection: answer.selection,
            text,
            annotation: bounded_note(answer.annotation, "annotation")?,
            option_annotations,
            via: Some(actor.via),
            by: actor.by.clone(),
            votes: Vec::new(),
        })
    }
}

fn selection_bounds(spec: &Spec) -> String {
    match (spec.min_selections, spec.max_selections) {
        (1, 1) => "choose exactly one option".into(),
        (min, max) if min == max => format!("choose exactly {min} options"),
        (min, max) => format!("choose between {min} and {max} options"),
    }
}

/// An optional note: blank means none, and it has a length limit.
fn bounded_note(note: Option<String>, field: &str) -> Result<Option<String>, Rejection> {
    match note {
        Some(n) if n.trim().is_empty() => Ok(None),
        Some(n) if n.chars().count() > MAX_ANNOTATION => Err(invalid(
            field,
            format!("{field} is longer than {MAX_ANNOTATION} characters"),
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{T0, choice, submit, web};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pause_freezes_and_resume_restarts_from_the_frozen_value() {
        let mut c = choice(Mode::Single, 60.0, OnTimeout::SubmitDefault);
        assert_eq!(c.remaining_ms(T0 + 10_000), 50_000);
        assert_eq!(
            c.apply(Command::Pause, &web(), T0 + 10_000),
            Ok(EventKind::Paused)
        );
        assert_eq!(c.remaining_ms(T0 + 99_000), 50_000);
        assert!(matches!(
            c.apply(Command::Pause, &web(), T0 + 11_000),
            Err(Rejection::Conflict(_))
        ));
        assert_eq!(
            c.apply(Command::Resume, &web(), T0 + 100_000),
            Ok(EventKind::Resumed)
        );
        assert_eq!(c.deadline, Some(T0 + 150_000));
        assert!(matches!(
            c.apply(Command::Resume, &web(), T0 + 100_000),
            Err(Rejection::Conflict(_))
        ));
    }

    #[test]
    fn add_timeout_never_leaves_less_than_a_second() {
        let mut c = choice(Mode::Single, 60.0, OnTimeout::SubmitDefault);
        c.apply(Command::AddTimeout { ms: -3_600_000 }, &web(), T0)
            .expect("applies");
        assert_eq!(c.remaining_ms(T0), 1_000);
        c.apply(Command::AddTimeout { ms: 60_000 }, &web(), T0)
            .expect("applies");
        assert_eq!(c.remaining_ms(T0), 61_000);
    }

    #[test]
    fn set_timeout_rejects_out_of_range_values_and_names_the_field() {
        let mut c = choice(Mode::Single, 60.0, OnTimeout::SubmitDefault);
        let err = c
            .apply(Command::SetTimeout { ms: 0 }, &web(), T0)
            .unwrap_err();
        assert!(matches!(err, Rejection::Invalid { ref field, .. } if field == "seconds"));
        assert_eq!(c.version, 1);
    }

    #[test]
    fn expire_submits_the_default_or_cancels() {
        let mut c = choice(Mode::Single, 5.0, OnTimeout::SubmitDefault);
        assert!(matches!(
            c.apply(Command::Expire, &web(), T0 + 4_999),
            Err(Rejection::Conflict(_))
        ));
        assert_eq!(
            c.apply(Command::Expire, &web(), T0 + 5_000),
            Ok(EventKind::TimedOut)
        );
        let result = c.result.clone().expect("final");
        assert_eq!(result.selection, vec!["no".to_string()]);
        assert_eq!(result.via, Some(Via::Timeout));

        let mut c = choice(Mode::Single, 5.0, OnTimeout::Cancel);
        c.apply(Command::Expire, &web(), T0 + 6_000).expect("due");
        assert_eq!(c.status, Status::TimedOut);
        assert!(c.result.expect("final").selection.is_empty());
    }

    #[test]
    fn submit_checks_the_selection_against_the_options_and_bounds() {
        let mut c = choice(Mode::Single, 60.0, OnTimeout::SubmitDefault);
        assert!(
            matches!(c.apply(submit(&["nope"]), &web(), T0), Err(Rejection::Invalid { field, .. }) if field == "selection[0]")
        );
        assert!(
            matches!(c.apply(submit(&["yes", "no"]), &web(), T0), Err(Rejection::Invalid { field, .. }) if field == "selection")
        );
        assert!(matches!(
            c.apply(submit(&[]), &web(), T0),
            Err(Rejection::Invalid { .. })
        ));
        assert_eq!(
            c.apply(submit(&["yes"]), &web(), T0),
            Ok(EventKind::Submitted)
        );
        assert_eq!(
            c.apply(submit(&["yes"]), &web(), T0),
            Err(Rejection::AlreadyFinal)
        );
    }

    #[test]
    fn a_rung_timer_starts_its_next_round_on_reset() {
        let mut t = choice(Mode::Timer, 2.0, OnTimeout::SubmitDefault);
        t.apply(Command::Expire, &web(), T0 + 2_000).expect("due");
        assert_eq!(
            t.apply(Command::Reset, &web(), T0 + 3_000),
            Ok(EventKind::Reset)
        );
        assert_eq!(
            (t.status, t.round, t.deadline),
            (Status::Pending, 2, Some(T0 + 5_000))
        );
        let mut c = choice(Mode::Single, 2.0, OnTimeout::SubmitDefault);
        c.apply(Command::Expire, &web(), T0 + 2_000).expect("due");
        assert_eq!(
            c.apply(Command::Reset, &web(), T0 + 3_000),
            Err(Rejection::AlreadyFinal)
        );
    }

    #[test]
    fn a_timer_that_rang_is_not_settled_and_every_other_final_choice_is() {
        let mut rung = choice(Mode::Timer, 2.0, OnTimeout::SubmitDefault);
        assert!(!rung.is_settled(), "counting down");
        rung.apply(Command::Expire, &web(), T0 + 2_000)
            .expect("due");
        assert!(!rung.is_settled(), "a rung timer waits for its next round");
        let mut cancelled = choice(Mode::Timer, 2.0, OnTimeout::SubmitDefault);
        cancelled
            .apply(Command::Cancel { annotation: None }, &web(), T0)
            .expect("cancels");
        assert!(cancelled.is_settled());
        let mut timed_out = choice(Mode::Single, 2.0, OnTimeout::SubmitDefault);
        timed_out
            .apply(Command::Expire, &web(), T0 + 2_000)
            .expect("due");
        assert!(timed_out.is_settled());
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            proptest::sample::subsequence(vec!["yes", "no", "maybe", "other"], 0..=3)
                .prop_map(|ids| submit(&ids)),
            Just(Command::Cancel { annotation: None }),
            (-10_000i64..700_000_000).prop_map(|ms| Command::SetTimeout { ms }),
            (-700_000_000i64..700_000_000).prop_map(|ms| Command::AddTimeout { ms }),
            Just(Command::Pause),
            Just(Command::Resume),
            Just(Command::Reset),
            Just(Command::Expire),
        ]
    }

    fn any_mode() -> impl Strategy<Value = Mode> {
        prop_oneof![
            Just(Mode::Single),
            Just(Mode::Multi),
            Just(Mode::Hybrid),
            Just(Mode::Text),
            Just(Mode::Timer)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_sequence_of_commands_keeps_the_invariants(
            mode in any_mode(),
            timeout_s in 1u32..600,
            steps in proptest::collection::vec((any_command(), 0i64..400_000), 0..40),
        ) {
            let mut c = choice(mode, f64::from(timeout_s), OnTimeout::SubmitDefault);
            let mut now = T0;
            let mut final_events = 0;
            for (command, dt) in steps {
                now += dt;
                let before = c.clone();
                match c.apply(command.clone(), &web(), now) {
                    Ok(kind) => {
                        prop_assert_eq!(c.version, before.version + 1, "version strictly increases");
                        if before.status.is_final() {
                            // The one exception to "final never changes": a rung timer's next round.
                            prop_assert_eq!(mode, Mode::Timer);
                            prop_assert_eq!(before.status, Status::TimedOut);
                            prop_assert_eq!(kind, EventKind::Reset);
                            prop_assert_eq!(c.round, before.round + 1);
                            final_events = 0;
                        }
                        if kind.is_final() {
                            final_events += 1;
                            prop_assert!(c.status.is_final() && c.result.is_some() && c.deadline.is_none());
                        }
                    }
                    Err(_) => prop_assert_eq!(&c, &before, "a rejected command changes nothing"),
                }
                prop_assert!(final_events <= 1, "exactly one final event per round");
                prop_assert_eq!(final_events == 1, c.status.is_final());
                prop_assert!(c.remaining_ms(now) >= 0);
                prop_assert!(c.remaining_ms(now) <= MAX_TIMEOUT_MS);
                prop_assert_eq!(c.deadline.is_some(), c.status == Status::Pending);
                prop_assert_eq!(c.paused_remaining.is_some(), c.status == Status::Paused);
            }
        }
    }
}
