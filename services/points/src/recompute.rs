//! Every household's score rebuilt from its ledger and compared with the balance points maintains
//! incrementally: what an operator runs after an incident or an upgrade to know the maintained
//! figures (leaderboards, tier counts, the balances behind ScoreChanged events) still follow from
//! the books, and the benchmark's "recompute" figure.
//!
//! Each balance is compared at the later of its own moment (`updated_at`) and the ticker's last
//! moment: a balance is exact for the moment it was computed, the ticker has applied every entry
//! that started or stopped counting up to its last moment, and what did so since is the next
//! tick's to apply, not a disagreement.

use std::collections::HashMap;

use crate::{
    domain::score::Evaluation,
    error::Result,
    ops::{Points, entry_of},
    store::{self, Balance, LedgerRow},
};

/// Households compared per page: one statement for their balances, one for their entries.
const PAGE: i64 = 1_000;
/// Disagreeing households named in the answer; the count covers all.
const NAMED: usize = 100;

/// What a recompute found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recomputed {
    /// Households with a balance or ledger entries.
    pub households: u64,
    pub entries: u64,
    /// Households whose ledger gives another score, tier or redeemable points than their
    /// balance (the base for a household with entries and no balance).
    pub disagreeing: u64,
    /// The first of them (up to a hundred), by household id.
    pub first_disagreeing: Vec<String>,
}

impl Recomputed {
    fn disagrees(&mut self, household: &str) {
        self.disagreeing += 1;
        if self.first_disagreeing.len() < NAMED {
            self.first_disagreeing.push(household.to_owned());
        }
    }
}

impl Points {
    /// Reads the whole ledger once, a page of households at a time, in household order. Reads
    /// only: a disagreement is reported, not repaired.
    pub(crate) async fn recompute_scores(&self) -> Result<Recomputed> {
        let mut found = Recomputed::default();
        let ticked = store::last_tick(self.db.pool()).await?.unwrap_or(i64::MIN);
        let mut after = String::new();
        loop {
            let balances = store::balances_after(self.db.pool(), &after, PAGE).await?;
            // The last page reads the rest of the ledger, so entries of a household after the
            // last balance are seen too.
            let until = (balances.len() as i64 == PAGE).then(|| balances[balances.len() - 1].0.clone());
            let entries = store::entries_between(self.db.pool(), &after, until.as_deref()).await?;
            found.entries += entries.len() as u64;
            let mut by_household: HashMap<&str, Vec<&LedgerRow>> = HashMap::new();
            for row in &entries {
                by_household.entry(row.household_id.as_str()).or_default().push(row);
            }
            for (household, balance) in &balances {
                found.households += 1;
                let rows = by_household.remove(household.as_str()).unwrap_or_default();
                if !self.agrees(balance, &rows, ticked) {
                    found.disagrees(household);
                }
            }
            // Entries without a balance: points writes none while a household's entries leave it
            // at the base (a deduction still in 公示), so the books must give the base as of the
            // last entry written (or the last tick).
            let mut unbalanced: Vec<(&str, Vec<&LedgerRow>)> = by_household.into_iter().collect();
            unbalanced.sort_unstable_by_key(|(household, _)| *household);
            for (household, rows) in unbalanced {
                found.households += 1;
                let last_written = rows.iter().map(|row| row.created_at).max().unwrap_or_default();
                let base = Balance {
                    score: self.tiers.base,
                    tier: self.tiers.evaluate(&[], last_written).tier,
                    redeemable: 0,
                    updated_at: last_written,
                };
                if !self.agrees(&base, &rows, ticked) {
                    found.disagrees(household);
                }
            }
            match until {
                Some(last) => after = last,
                None => {
                    found.first_disagreeing.sort();
                    return Ok(found);
                }
            }
        }
    }

    fn agrees(&self, balance: &Balance, rows: &[&LedgerRow], ticked: i64) -> bool {
        let entries: Vec<_> = rows.iter().map(|row| entry_of(row)).collect();
        let Evaluation { score, tier, redeemable, .. } = self.tiers.evaluate(&entries, balance.updated_at.max(ticked));
        score == balance.score && tier == balance.tier && redeemable == balance.redeemable
    }
}
