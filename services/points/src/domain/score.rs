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
    fn the_nearest_boundaries() {
        let tiers = Tiers::default();
        let (above, below) = tiers.neighbours(1030);
        assert_eq!(above, Some(("AA".into(), 20)));
        assert_eq!(below, Some(("B".into(), 31)));
        assert_eq!(tiers.neighbours(1200).0, None);
    }
}
