//! Scores and tiers: the base plus every ledger entry that counts at a moment, tiers from
//! thresholds, and the cap a serious deduction puts on the tier while it counts.

/// Tier thresholds, highest first: a score at or above `min` reaches `name`.
#[derive(Debug, Clone)]
pub struct Tiers {
    pub base: i64,
    /// (name, minimum score), descending; the last one is the floor.
    pub levels: Vec<(String, i64)>,
    /// The highest tier while a serious deduction counts.
    pub serious_cap: String,
}

impl Default for Tiers {
    fn default() -> Self {
        use jiaxin_kit::tiers;
        Self {
            base: tiers::BASE_SCORE,
            levels: tiers::LEVELS.iter().map(|(name, min)| ((*name).to_owned(), *min)).collect(),
            serious_cap: tiers::SERIOUS_CAP.into(),
        }
    }
}

/// A ledger entry as the score sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: i64,
    pub delta: i64,
    pub effective_from: i64,
    pub expires_at: i64,
    pub created_at: i64,
    pub serious: bool,
    pub reverses_seq: Option<i64>,
    pub bonus: bool,
}

impl Entry {
    /// Whether the entry was on the books at `at` and in its counting window.
    pub fn counts_at(&self, at: i64) -> bool {
        self.created_at <= at && self.effective_from <= at && at < self.expires_at
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub score: i64,
    pub tier: String,
    pub tier_capped: bool,
    pub redeemable: i64,
}

impl Tiers {
    fn uncapped(&self, score: i64) -> &str {
        self.levels.iter().find(|(_, min)| score >= *min).map(|(name, _)| name.as_str()).unwrap_or("D")
    }

    fn rank(&self, tier: &str) -> usize {
        self.levels.iter().position(|(name, _)| name == tier).unwrap_or(self.levels.len())
    }

    /// The score and tier at `at`, as the books stood then.
    pub fn evaluate(&self, entries: &[Entry], at: i64) -> Evaluation {
        let counting: Vec<&Entry> = entries.iter().filter(|e| e.counts_at(at)).collect();
        let score = self.base + counting.iter().map(|e| e.delta).sum::<i64>();
        // A serious deduction caps the tier unless it had been reversed by then.
        let reversed: Vec<i64> = entries.iter().filter(|e| e.created_at <= at).filter_map(|e| e.reverses_seq).collect();
        let serious_counts = counting.iter().any(|e| e.serious && e.delta < 0 && !reversed.contains(&e.seq));
        let mut tier = self.uncapped(score).to_owned();
        let tier_capped = serious_counts && self.rank(&tier) < self.rank(&self.serious_cap);
        if tier_capped {
            tier = self.serious_cap.clone();
        }
        // Redeemable points: every bonus effective by then (not its window: earned points keep),
        // less the reversals of bonuses.
        let redeemable = entries
            .iter()
            .filter(|e| e.created_at <= at && e.effective_from <= at)
            .filter(|e| e.bonus)
            .map(|e| e.delta)
            .sum::<i64>()
            .max(0);
        Evaluation { score, tier, tier_capped, redeemable }
    }

    /// The evaluation at `at` of a household whose maintained balance (`score`, `redeemable`)
    /// is exact at `at` for every entry but `added`: the balance plus the new entries, instead of
    /// the whole ledger again. That holds only when the books have no serious deduction and no
    /// reversal (so the tier is the score's own and redeemable points were never clamped) and
    /// nothing started or stopped counting since the balance was computed — the caller checks
    /// that (`store::households_needing_whole_ledger`). `None` when an added entry itself needs
    /// the whole ledger: serious, a reversal, or not counting at `at`.
    pub fn advance(&self, score: i64, redeemable: i64, added: &[Entry], at: i64) -> Option<Evaluation> {
        let (mut score, mut redeemable) = (score, redeemable);
        for entry in added {
            if entry.serious || entry.reverses_seq.is_some() || !entry.counts_at(at) {
                return None;
            }
            score += entry.delta;
            if entry.bonus {
                redeemable += entry.delta;
            }
        }
        Some(Evaluation { score, tier: self.uncapped(score).to_owned(), tier_capped: false, redeemable })
    }

    /// The nearest boundary above (tier, points still needed) and below (the lower tier, points
    /// that can be lost before dropping to it).
    pub fn neighbours(&self, score: i64) -> (Option<Boundary>, Option<Boundary>) {
        let i = self.rank(self.uncapped(score));
        let above = i.checked_sub(1).and_then(|j| self.levels.get(j)).map(|(name, min)| (name.clone(), min - score));
        let below = match (self.levels.get(i), self.levels.get(i + 1)) {
            (Some((_, min)), Some((lower, _))) if *min != i64::MIN => Some((lower.clone(), score - min + 1)),
            _ => None,
        };
        (above, below)
    }
}

/// A neighbouring tier and the points between it and a score.
pub type Boundary = (String, i64);

pub use jiaxin_kit::time::DAY_MICROS;

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, delta: i64, from: i64, until: i64) -> Entry {
        Entry {
            seq,
            delta,
            effective_from: from,
            expires_at: until,
            created_at: from,
            serious: false,
            reverses_seq: None,
            bonus: delta > 0,
        }
    }

    #[test]
    fn entries_count_inside_their_window_only() {
        let tiers = Tiers::default();
        let entries = vec![entry(1, 60, 10, 100), entry(2, -20, 50, 80)];
        assert_eq!(tiers.evaluate(&entries, 5).score, 1000);
        assert_eq!(tiers.evaluate(&entries, 10).score, 1060);
        assert_eq!(tiers.evaluate(&entries, 60).score, 1040);
        assert_eq!(tiers.evaluate(&entries, 80).score, 1060, "the deduction expired");
        assert_eq!(tiers.evaluate(&entries, 100).score, 1000);
        assert_eq!(tiers.evaluate(&entries, 10).tier, "AA");
    }

    #[test]
    fn a_serious_deduction_caps_the_tier_until_reversed() {
        let tiers = Tiers::default();
        let mut serious = entry(2, -30, 20, 1000);
        serious.serious = true;
        let mut entries = vec![entry(1, 200, 10, 1000), serious];
        let at = tiers.evaluate(&entries, 30);
        assert_eq!((at.score, at.tier.as_str(), at.tier_capped), (1170, "B", true));
        let mut reversal = entry(3, 30, 40, 1000);
        reversal.reverses_seq = Some(2);
        entries.push(reversal);
        let later = tiers.evaluate(&entries, 50);
        assert_eq!((later.score, later.tier.as_str(), later.tier_capped), (1200, "AAA", false));
        assert_eq!(tiers.evaluate(&entries, 30).tier, "B", "history as it stood");
    }

    #[test]
    fn advancing_needs_the_whole_ledger_for_serious_reversing_or_future_entries() {
        let tiers = Tiers::default();
        let mut serious = entry(1, -30, 10, 100);
        serious.serious = true;
        let mut reversal = entry(2, 30, 10, 100);
        reversal.reverses_seq = Some(1);
        let future = entry(3, 5, 60, 100);
        for added in [serious, reversal, future] {
            assert_eq!(tiers.advance(1000, 0, std::slice::from_ref(&added), 50), None, "{added:?}");
        }
        let advanced = tiers.advance(1000, 0, &[entry(4, 60, 10, 100)], 50).unwrap();
        assert_eq!((advanced.score, advanced.tier.as_str(), advanced.redeemable), (1060, "AA", 60));
    }

    proptest::proptest! {
        /// Carrying a balance forward by the new entries gives what evaluating the whole ledger
        /// gives, whenever nothing else started or stopped counting in between.
        #[test]
        fn advancing_a_balance_equals_evaluating_the_whole_ledger(
            old in proptest::collection::vec((-40_i64..60, 0_i64..400, 1_i64..400), 0..12),
            added in proptest::collection::vec((-40_i64..60, 1_i64..400), 1..6),
            computed_at in 0_i64..500,
            later in 1_i64..100,
        ) {
            let old: Vec<Entry> = old
                .iter()
                .enumerate()
                .filter(|(_, (delta, _, _))| *delta != 0)
                .map(|(i, (delta, from, length))| entry(i as i64, *delta, (*from).min(computed_at), from + length))
                .collect();
            // `at` stays before the next moment an old entry starts or stops counting.
            let next_transition = old
                .iter()
                .flat_map(|e| [e.effective_from, e.expires_at])
                .filter(|t| *t > computed_at)
                .min()
                .unwrap_or(i64::MAX);
            let at = computed_at + later;
            proptest::prop_assume!(at < next_transition);
            let added: Vec<Entry> = added
                .iter()
                .enumerate()
                .filter(|(_, (delta, _))| *delta != 0)
                .map(|(i, (delta, length))| {
                    let mut e = entry(100 + i as i64, *delta, at, at + length);
                    e.created_at = computed_at + 1;
                    e
                })
                .collect();
            let before = Tiers::default().evaluate(&old, computed_at);
            let advanced = Tiers::default().advance(before.score, before.redeemable, &added, at).unwrap();
            let whole: Vec<Entry> = old.iter().chain(&added).cloned().collect();
            proptest::prop_assert_eq!(advanced, Tiers::default().evaluate(&whole, at));
        }
    }

    #[test]
    fn the_nearest_boundaries() {
        let tiers = Tiers::default();
        let (above, below) = tiers.neighbours(1030);
        assert_eq!(above, Some(("AA".into(), 20)));
        assert_eq!(below, Some(("B".into(), 31)));
        assert_eq!(tiers.neighbours(1200).0, None);
    }
}
