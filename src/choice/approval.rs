//! Approvers: their keys, kept only as hashes, and how their latest votes decide a choice.

use super::{Approval, NewChoice, Vote};

/// What an approval's latest votes decide, counted right after a vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    /// `quorum` latest votes agree with the one just cast.
    Decided,
    /// No selection can reach the quorum with the votes still to come.
    OutOfReach,
    /// Neither yet: the choice stays open.
    Open,
}

impl Approval {
    /// The name of the approver whose key this is.
    pub fn approver_of(&self, key: &str) -> Option<&str> {
        let hash = key_hash(key);
        self.approvers
            .iter()
            .find(|a| a.key_hash == hash)
            .map(|a| a.name.as_str())
    }

    /// Counts the latest `votes` (one per approver) just after a vote for `cast`.
    pub fn tally(&self, votes: &[Vote], cast: &[String]) -> Tally {
        let still_to_vote = self.approvers.len().saturating_sub(votes.len());
        if agreeing(votes, cast) >= self.quorum {
            Tally::Decided
        } else if leading(votes) + still_to_vote < self.quorum {
            Tally::OutOfReach
        } else {
            Tally::Open
        }
    }

    /// How many more agreeing votes the leading selection needs.
    pub fn votes_needed(&self, votes: &[Vote]) -> usize {
        self.quorum.saturating_sub(leading(votes))
    }
}

impl NewChoice {
    /// Gives each approver a fresh key, keeps only its hash, and answers `(name, key)` in the
    /// approvers' order: the one time the keys are seen.
    pub fn issue_approver_keys<E>(
        &mut self,
        mut fresh_key: impl FnMut() -> Result<String, E>,
    ) -> Result<Vec<(String, String)>, E> {
        let Some(approval) = &mut self.spec.approval else {
            return Ok(Vec::new());
        };
        let mut keys = Vec::with_capacity(approval.approvers.len());
        for approver in &mut approval.approvers {
            let key = fresh_key()?;
            approver.key_hash = key_hash(&key);
            keys.push((approver.name.clone(), key));
        }
        Ok(keys)
    }
}

/// What is stored of an approver's key: its SHA-256, URL-safe base64.
pub fn key_hash(key: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(key.as_bytes()))
}

/// How many of the latest votes agree with `selection`.
pub fn agreeing(votes: &[Vote], selection: &[String]) -> usize {
    votes
        .iter()
        .filter(|v| same_selection(&v.selection, selection))
        .count()
}

/// The most latest votes any one selection has.
pub fn leading(votes: &[Vote]) -> usize {
    votes
        .iter()
        .map(|v| agreeing(votes, &v.selection))
        .max()
        .unwrap_or(0)
}

/// Two selections agree when they hold the same options, in whatever order.
fn same_selection(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|id| b.contains(id))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{T0, approved, choice, submit, vote, web};
    use super::super::{Command, EventKind, Mode, OnTimeout, Rejection, Status};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_of_three_matching_votes_decide_and_a_third_finds_it_final() {
        let (mut c, keys) = approved(Mode::Single, &["ana", "bo", "cy"], Some(2));
        assert!(matches!(
            c.apply(submit(&["yes"]), &web(), T0),
            Err(Rejection::NotAnApprover(_))
        ));
        assert!(matches!(
            c.apply(vote("key-of-another-choice", &["yes"]), &web(), T0),
            Err(Rejection::NotAnApprover(_))
        ));
        assert_eq!(c.version, 1, "refused votes change nothing");
        assert_eq!(
            c.apply(vote(&keys[0], &["yes"]), &web(), T0 + 1),
            Ok(EventKind::Voted)
        );
        assert_eq!(c.status, Status::Pending);
        assert_eq!(c.votes_needed(), Some(1));
        assert_eq!(
            c.apply(vote(&keys[2], &["yes"]), &web(), T0 + 2),
            Ok(EventKind::Submitted)
        );
        let result = c.result.clone().expect("final");
        assert_eq!(result.selection, vec!["yes".to_string()]);
        assert_eq!(result.by.as_deref(), Some("cy"));
        let voters: Vec<&str> = result.votes.iter().map(|v| v.approver.as_str()).collect();
        assert_eq!(voters, ["ana", "cy"]);
        assert_eq!(
            c.apply(vote(&keys[1], &["yes"]), &web(), T0 + 3),
            Err(Rejection::AlreadyFinal)
        );
    }

    #[test]
    fn a_split_vote_that_can_no_longer_reach_the_quorum_cancels() {
        let (mut c, keys) = approved(Mode::Single, &["ana", "bo", "cy"], None);
        assert_eq!(c.spec.approval.as_ref().map(|a| a.quorum), Some(3));
        c.apply(vote(&keys[0], &["yes"]), &web(), T0)
            .expect("votes");
        assert_eq!(
            c.apply(vote(&keys[1], &["no"]), &web(), T0),
            Ok(EventKind::Cancelled)
        );
        let result = c.result.expect("final");
        assert_eq!(result.annotation.as_deref(), Some("no quorum"));
        assert_eq!(result.votes.len(), 2);
    }

    #[test]
    fn a_changed_vote_counts_once_and_order_does_not_matter_in_multi() {
        let (mut c, keys) = approved(Mode::Single, &["ana", "bo", "cy"], Some(2));
        c.apply(vote(&keys[0], &["yes"]), &web(), T0)
            .expect("votes");
        assert_eq!(
            c.apply(vote(&keys[0], &["yes"]), &web(), T0 + 1),
            Ok(EventKind::Voted),
            "the same approver twice is still one vote"
        );
        c.apply(vote(&keys[0], &["no"]), &web(), T0 + 2)
            .expect("changes");
        assert_eq!(c.votes.len(), 1);
        assert_eq!(c.votes[0].selection, vec!["no".to_string()]);
        assert_eq!(
            c.apply(vote(&keys[1], &["yes"]), &web(), T0 + 3),
            Ok(EventKind::Voted),
            "ana's first vote no longer counts"
        );

        let (mut m, keys) = approved(Mode::Multi, &["ana", "bo"], None);
        m.apply(vote(&keys[0], &["yes", "maybe"]), &web(), T0)
            .expect("votes");
        assert_eq!(
            m.apply(vote(&keys[1], &["maybe", "yes"]), &web(), T0),
            Ok(EventKind::Submitted)
        );
    }

    #[test]
    fn the_deadline_keeps_the_votes_and_a_key_on_an_open_choice_is_refused() {
        let (mut c, keys) = approved(Mode::Single, &["ana", "bo"], None);
        c.apply(vote(&keys[0], &["yes"]), &web(), T0)
            .expect("votes");
        c.apply(Command::Expire, &web(), T0 + 60_000).expect("due");
        assert_eq!(c.status, Status::TimedOut);
        assert_eq!(c.result.expect("final").votes.len(), 1);

        let mut open = choice(Mode::Single, 60.0, OnTimeout::SubmitDefault);
        assert!(matches!(
            open.apply(vote("key-1", &["yes"]), &web(), T0),
            Err(Rejection::Invalid { field, .. }) if field == "as"
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn votes_reach_the_quorum_exactly_once_and_never_by_one_approver_twice(
            approvers in 1usize..6,
            quorum_seed in 0usize..6,
            steps in proptest::collection::vec(
                (0usize..7, proptest::sample::subsequence(vec!["yes", "no", "maybe"], 0..=2), 0i64..20_000, 0u8..10),
                0..40,
            ),
        ) {
            let names: Vec<String> = (0..approvers).map(|i| format!("p{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let quorum = quorum_seed % approvers + 1;
            let (mut c, keys) = approved(Mode::Multi, &names, Some(quorum as u64));
            let mut now = T0;
            let mut decided = 0;
            for (who, ids, dt, other) in steps {
                now += dt;
                let before = c.clone();
                // Mostly votes (some with a key nobody holds), now and then another command.
                let command = match other {
                    0 => Command::Pause,
                    1 => Command::Resume,
                    2 => Command::Expire,
                    3 => Command::AddTimeout { ms: 30_000 },
                    _ => vote(keys.get(who).map_or("nobody's key", String::as_str), &ids),
                };
                let is_vote = matches!(command, Command::Submit(_));
                match c.apply(command, &web(), now) {
                    Ok(kind) => {
                        if kind == EventKind::Submitted {
                            prop_assert!(is_vote);
                            decided += 1;
                            let result = c.result.clone().expect("final");
                            let agreed: Vec<&str> = result.votes.iter()
                                .filter(|v| same_selection(&v.selection, &result.selection))
                                .map(|v| v.approver.as_str())
                                .collect();
                            prop_assert_eq!(agreed.len(), quorum, "decided by exactly the quorum's vote");
                            prop_assert_eq!(agreeing(&before.votes, &result.selection), quorum - 1);
                        }
                        if kind == EventKind::Voted {
                            prop_assert!(!c.status.is_final());
                        }
                    }
                    Err(_) => prop_assert_eq!(&c, &before, "a refused command changes nothing"),
                }
                let mut voters: Vec<&str> = c.votes.iter().map(|v| v.approver.as_str()).collect();
                voters.sort_unstable();
                voters.dedup();
                prop_assert_eq!(voters.len(), c.votes.len(), "one latest vote per approver");
                prop_assert!(c.votes.len() <= approvers);
                if !c.status.is_final() {
                    prop_assert!(leading(&c.votes) < quorum, "an open choice has not reached its quorum");
                }
                prop_assert!(decided <= 1);
            }
        }
    }
}
