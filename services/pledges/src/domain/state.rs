//! Where a household stands with its village's template, and what a change of standing does to
//! the coverage counts of every org node above it.

use std::collections::BTreeMap;

use jiaxin_proto::pledges::PledgeState;

/// The standing of a pledge in force on `version` of a template whose latest version asking for
/// re-signing is `resign_from` (1 when none does).
pub fn standing(version: i64, resign_from: i64) -> PledgeState {
    if version >= resign_from { PledgeState::Signed } else { PledgeState::RenewalDue }
}

/// One node's counts, as stored and as changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub households: i64,
    pub signed: i64,
    pub renewal_due: i64,
    pub revoked: i64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.households += other.households;
        self.signed += other.signed;
        self.renewal_due += other.renewal_due;
        self.revoked += other.revoked;
    }
}

impl Counts {
    fn slot(&mut self, state: PledgeState) -> Option<&mut i64> {
        match state {
            PledgeState::Signed => Some(&mut self.signed),
            PledgeState::RenewalDue => Some(&mut self.renewal_due),
            PledgeState::Revoked => Some(&mut self.revoked),
            // Unsigned is what is left: households minus the rest.
            PledgeState::Unsigned | PledgeState::Unspecified => None,
        }
    }

    pub fn unsigned(&self) -> i64 {
        self.households - self.signed - self.renewal_due - self.revoked
    }

    /// Households with a pledge in force, per mille, rounded down.
    pub fn coverage_permille(&self) -> i32 {
        if self.households <= 0 {
            return 0;
        }
        ((self.signed + self.renewal_due) * 1000 / self.households) as i32
    }

    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// Coverage changes gathered over an operation (or a whole batch) and written once: a batch of
/// thousands of signatures in one village touches each of its few ancestor rows once, not once
/// per household.
#[derive(Debug, Default)]
pub struct CoverageDelta {
    /// By org node id: sorted, so concurrent writers take the rows' locks in one order.
    by_node: BTreeMap<String, Counts>,
}

impl CoverageDelta {
    /// A household appears (`+1`) or disappears (`-1`) under `path` in `state`.
    pub fn household(&mut self, path: &[&str], state: PledgeState, sign: i64) {
        for node in path {
            let counts = self.by_node.entry((*node).to_owned()).or_default();
            counts.households += sign;
            if let Some(slot) = counts.slot(state) {
                *slot += sign;
            }
        }
    }

    /// A household under `path` moves from one standing to another.
    pub fn transition(&mut self, path: &[&str], from: PledgeState, to: PledgeState, households: i64) {
        if from == to {
            return;
        }
        for node in path {
            let counts = self.by_node.entry((*node).to_owned()).or_default();
            if let Some(slot) = counts.slot(from) {
                *slot -= households;
            }
            if let Some(slot) = counts.slot(to) {
                *slot += households;
            }
        }
    }

    /// Adds another operation's changes (a batch item that succeeded).
    pub fn merge(&mut self, other: CoverageDelta) {
        for (node, change) in other.by_node {
            *self.by_node.entry(node).or_default() += change;
        }
    }

    /// The non-zero changes, by node id (sorted, so every writer takes row locks in one order).
    pub fn take(&mut self) -> Vec<(String, Counts)> {
        std::mem::take(&mut self.by_node).into_iter().filter(|(_, c)| !c.is_zero()).collect()
    }
}

pub use jiaxin_kit::sql::{path_ids, path_of};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signing_moves_one_household_at_every_level_and_unsigned_is_the_rest() {
        let path = ["county", "town", "village", "grid"];
        let mut delta = CoverageDelta::default();
        delta.household(&path, PledgeState::Unsigned, 1);
        delta.household(&path, PledgeState::Unsigned, 1);
        delta.transition(&path, PledgeState::Unsigned, PledgeState::Signed, 1);
        let changes = delta.take();
        assert_eq!(changes.len(), 4);
        for (_, counts) in &changes {
            assert_eq!((counts.households, counts.signed, counts.unsigned()), (2, 1, 1));
            assert_eq!(counts.coverage_permille(), 500);
        }
        assert!(delta.take().is_empty());
    }

    #[test]
    fn a_renewal_due_household_is_still_covered_and_a_revoked_one_is_not() {
        let counts = Counts { households: 3, signed: 1, renewal_due: 1, revoked: 1 };
        assert_eq!(counts.coverage_permille(), 666);
        assert_eq!(counts.unsigned(), 0);
        assert_eq!(standing(1, 2), PledgeState::RenewalDue);
        assert_eq!(standing(2, 2), PledgeState::Signed);
    }

    #[test]
    fn cancelling_changes_leave_nothing_to_write() {
        let path = ["county", "grid"];
        let mut delta = CoverageDelta::default();
        delta.transition(&path, PledgeState::Unsigned, PledgeState::Signed, 1);
        delta.transition(&path, PledgeState::Signed, PledgeState::Unsigned, 1);
        assert!(delta.take().is_empty());
        assert_eq!(path_ids(&path_of(&path)), path.to_vec());
    }
}
