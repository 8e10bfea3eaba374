//! How a council's votes become a decision: enough votes cast (quorum), and one choice — the same
//! choice, an amendment to the same points — holding the majority of them.

use std::collections::BTreeMap;

/// What a member votes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ballot {
    Approve,
    Reject,
    Amend(i64),
}

/// A council's voting rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub quorum: usize,
    /// The share of votes cast the winning choice needs, in per mille.
    pub majority_permille: i64,
}

/// The decision the votes reach, if any.
pub fn decide(ballots: &[Ballot], rules: Rules) -> Option<Ballot> {
    if ballots.len() < rules.quorum.max(1) {
        return None;
    }
    let mut counts: BTreeMap<Ballot, i64> = BTreeMap::new();
    for ballot in ballots {
        *counts.entry(*ballot).or_default() += 1;
    }
    let cast = ballots.len() as i64;
    counts.into_iter().find(|(_, n)| n * 1000 >= rules.majority_permille * cast).map(|(ballot, _)| ballot)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE: Rules = Rules { quorum: 3, majority_permille: 501 };

    #[test]
    fn no_decision_without_quorum() {
        assert_eq!(decide(&[Ballot::Approve, Ballot::Approve], SIMPLE), None);
        assert_eq!(decide(&[Ballot::Approve, Ballot::Approve, Ballot::Reject], SIMPLE), Some(Ballot::Approve));
    }

    #[test]
    fn a_tie_or_split_amendments_decide_nothing() {
        let tie = [Ballot::Approve, Ballot::Approve, Ballot::Reject, Ballot::Reject];
        assert_eq!(decide(&tie, SIMPLE), None);
        let split = [Ballot::Amend(2), Ballot::Amend(3), Ballot::Reject];
        assert_eq!(decide(&split, SIMPLE), None);
        let agreed = [Ballot::Amend(2), Ballot::Amend(2), Ballot::Reject];
        assert_eq!(decide(&agreed, SIMPLE), Some(Ballot::Amend(2)));
    }

    #[test]
    fn two_thirds_means_two_thirds() {
        let rules = Rules { quorum: 3, majority_permille: 667 };
        assert_eq!(decide(&[Ballot::Reject, Ballot::Reject, Ballot::Approve], rules), None);
        assert_eq!(
            decide(&[Ballot::Reject, Ballot::Reject, Ballot::Reject, Ballot::Approve], rules),
            Some(Ballot::Reject)
        );
    }
}
