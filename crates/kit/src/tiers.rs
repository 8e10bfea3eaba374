//! The credit tiers every service speaks of: names, order and the thresholds points scores them
//! by. Points owns the scoring; benefits and bank compare tiers ("at least A") with the same
//! order, so it is defined once here.

/// The score every pledged household starts from.
pub const BASE_SCORE: i64 = 1000;

/// (tier, minimum score), highest first; the last one is the floor.
pub const LEVELS: [(&str, i64); 6] =
    [("AAA", 1100), ("AA", 1050), ("A", 1000), ("B", 950), ("C", 900), ("D", i64::MIN)];

/// The highest tier a household reaches while a serious deduction counts.
pub const SERIOUS_CAP: &str = "B";

/// A tier's rank, 0 for the highest; `None` for a name that is not a tier.
pub fn rank(tier: &str) -> Option<usize> {
    LEVELS.iter().position(|(name, _)| *name == tier)
}

/// The tier a score reaches, without any cap.
pub fn of_score(score: i64) -> &'static str {
    LEVELS.iter().find(|(_, min)| score >= *min).map(|(name, _)| *name).unwrap_or("D")
}

/// Whether `tier` is `minimum` or above it. Unknown names never qualify.
pub fn at_least(tier: &str, minimum: &str) -> bool {
    matches!((rank(tier), rank(minimum)), (Some(t), Some(m)) if t <= m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_order_from_the_top() {
        assert_eq!(of_score(BASE_SCORE), "A");
        assert_eq!(of_score(999), "B");
        assert_eq!(of_score(-5), "D");
        assert!(at_least("AA", "A"));
        assert!(at_least("A", "A"));
        assert!(!at_least("B", "A"));
        assert!(!at_least("Z", "D"));
    }
}
