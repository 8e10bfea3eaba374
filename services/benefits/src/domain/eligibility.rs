//! Whether a household qualifies for a benefit on a day: the benefit's state and dates first,
//! then the household's tier and score.

use jiaxin_kit::tiers;
use jiaxin_proto::benefits::EligibilityReason;

/// What a benefit asks of a household, and when it is offered.
#[derive(Debug, Clone, Copy)]
pub struct Terms<'a> {
    pub min_tier: &'a str,
    pub min_score: i64,
    /// YYYY-MM-DD, inclusive; "" for open-ended.
    pub valid_from: &'a str,
    pub valid_until: &'a str,
    pub retired: bool,
}

/// The decision for a household known to be covered, with (score, tier), on `today`
/// (YYYY-MM-DD, China time). Strict `YYYY-MM-DD` strings order as dates do.
pub fn decide(terms: &Terms<'_>, score: i64, tier: &str, today: &str) -> EligibilityReason {
    if terms.retired {
        EligibilityReason::Retired
    } else if today < terms.valid_from {
        EligibilityReason::NotYetValid
    } else if !terms.valid_until.is_empty() && today > terms.valid_until {
        EligibilityReason::Expired
    } else if !terms.min_tier.is_empty() && !tiers::at_least(tier, terms.min_tier) {
        EligibilityReason::TierTooLow
    } else if score < terms.min_score {
        EligibilityReason::ScoreTooLow
    } else {
        EligibilityReason::Eligible
    }
}

/// The answer as a person reads it, Chinese first.
pub fn explain(reason: EligibilityReason, terms: &Terms<'_>, score: i64, tier: &str) -> String {
    match reason {
        EligibilityReason::Eligible => {
            format!("符合条件:信用等级 {tier},积分 {score} / eligible: tier {tier}, score {score}")
        }
        EligibilityReason::TierTooLow => format!(
            "信用等级 {tier} 低于要求的 {} / tier {tier} is below the required {}",
            terms.min_tier, terms.min_tier
        ),
        EligibilityReason::ScoreTooLow => format!(
            "积分 {score} 低于要求的 {} / score {score} is below the required {}",
            terms.min_score, terms.min_score
        ),
        EligibilityReason::NotYetValid => {
            format!("该权益自 {} 起提供 / offered from {}", terms.valid_from, terms.valid_from)
        }
        EligibilityReason::Expired => {
            format!("该权益已于 {} 到期 / expired on {}", terms.valid_until, terms.valid_until)
        }
        EligibilityReason::Retired => "该权益已停止提供 / no longer offered".to_owned(),
        EligibilityReason::NotCovered | EligibilityReason::Unspecified => {
            "该户不在本权益适用范围内 / household not covered by this benefit".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERMS: Terms<'static> =
        Terms { min_tier: "A", min_score: 0, valid_from: "2026-01-01", valid_until: "2026-12-31", retired: false };

    #[test]
    fn the_boundary_tier_qualifies_and_the_one_below_does_not() {
        assert_eq!(decide(&TERMS, 1000, "A", "2026-06-01"), EligibilityReason::Eligible);
        assert_eq!(decide(&TERMS, 999, "B", "2026-06-01"), EligibilityReason::TierTooLow);
        let scored = Terms { min_tier: "", min_score: 1000, ..TERMS };
        assert_eq!(decide(&scored, 1000, "A", "2026-06-01"), EligibilityReason::Eligible);
        assert_eq!(decide(&scored, 999, "B", "2026-06-01"), EligibilityReason::ScoreTooLow);
    }

    #[test]
    fn dates_are_inclusive_and_retirement_wins() {
        assert_eq!(decide(&TERMS, 1000, "A", "2025-12-31"), EligibilityReason::NotYetValid);
        assert_eq!(decide(&TERMS, 1000, "A", "2026-01-01"), EligibilityReason::Eligible);
        assert_eq!(decide(&TERMS, 1000, "A", "2026-12-31"), EligibilityReason::Eligible);
        assert_eq!(decide(&TERMS, 1000, "A", "2027-01-01"), EligibilityReason::Expired);
        let open = Terms { valid_until: "", ..TERMS };
        assert_eq!(decide(&open, 1000, "A", "2099-01-01"), EligibilityReason::Eligible);
        let retired = Terms { retired: true, ..TERMS };
        assert_eq!(decide(&retired, 1000, "A", "2026-06-01"), EligibilityReason::Retired);
    }
}
