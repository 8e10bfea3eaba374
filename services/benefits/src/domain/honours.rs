//! The annual honours: which households are credit households (信用户) and which villages and
//! communities are credit villages (信用村居), by criteria a county sets in its configuration.
//! The facts come from the read models; here they are only judged and explained.

use jiaxin_kit::tiers;
use serde::{Deserialize, Serialize};

/// The county's criteria, kept with each evaluation so its results are explained by the rules
/// they were computed under, whatever the configuration says later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Criteria {
    /// A credit household's tier never fell below this during the year.
    #[arg(long = "honour-household-min-tier", env = "JIAXIN_HONOUR_HOUSEHOLD_MIN_TIER", default_value = "A")]
    pub household_min_tier: String,
    /// A credit household had no serious deduction counting during the year.
    #[arg(long = "honour-no-serious-deduction", env = "JIAXIN_HONOUR_NO_SERIOUS_DEDUCTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub household_no_serious: bool,
    /// A credit household's pledge was in force at the year's end.
    #[arg(long = "honour-pledge-required", env = "JIAXIN_HONOUR_PLEDGE_REQUIRED", default_value_t = true, action = clap::ArgAction::Set)]
    pub household_pledge: bool,
    /// A credit village's pledge coverage at the year's end, in ‰.
    #[arg(long = "honour-village-min-coverage", env = "JIAXIN_HONOUR_VILLAGE_MIN_COVERAGE", default_value_t = 900)]
    pub village_min_coverage_permille: i64,
    /// A credit village's share of credit households, in ‰.
    #[arg(
        long = "honour-village-min-credit-share",
        env = "JIAXIN_HONOUR_VILLAGE_MIN_CREDIT_SHARE",
        default_value_t = 700
    )]
    pub village_min_credit_share_permille: i64,
    /// A credit village's average household score at the year's end.
    #[arg(
        long = "honour-village-min-average-score",
        env = "JIAXIN_HONOUR_VILLAGE_MIN_AVERAGE_SCORE",
        default_value_t = 1000
    )]
    pub village_min_average_score: i64,
    /// A credit village's non-performing loans (overdue or written off, of those disbursed, as
    /// the bank reported them), in ‰; a village without loans meets it.
    #[arg(long = "honour-village-max-npl", env = "JIAXIN_HONOUR_VILLAGE_MAX_NPL", default_value_t = 50)]
    pub village_max_npl_permille: i64,
}

impl Default for Criteria {
    fn default() -> Self {
        Self {
            household_min_tier: "A".into(),
            household_no_serious: true,
            household_pledge: true,
            village_min_coverage_permille: 900,
            village_min_credit_share_permille: 700,
            village_min_average_score: 1000,
            village_max_npl_permille: 50,
        }
    }
}

impl Criteria {
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if tiers::rank(&self.household_min_tier).is_none() {
            problems.push(format!("--honour-household-min-tier {}: no such tier", self.household_min_tier));
        }
        for (flag, value) in [
            ("--honour-village-min-coverage", self.village_min_coverage_permille),
            ("--honour-village-min-credit-share", self.village_min_credit_share_permille),
            ("--honour-village-max-npl", self.village_max_npl_permille),
        ] {
            if !(0..=1000).contains(&value) {
                problems.push(format!("{flag} {value}: a share in ‰ between 0 and 1000"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The criteria as a person reads them.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "信用户:全年信用等级不低于 {} / credit household: tier at least {} all year",
            self.household_min_tier, self.household_min_tier
        )];
        if self.household_no_serious {
            lines.push("信用户:全年无严重扣分 / credit household: no serious deduction in the year".into());
        }
        if self.household_pledge {
            lines.push("信用户:年末承诺有效 / credit household: pledge in force at the year's end".into());
        }
        lines.push(format!(
            "信用村居:承诺覆盖率不低于 {}‰ / credit village: pledge coverage at least {}‰",
            self.village_min_coverage_permille, self.village_min_coverage_permille
        ));
        lines.push(format!(
            "信用村居:信用户占比不低于 {}‰ / credit village: credit households at least {}‰",
            self.village_min_credit_share_permille, self.village_min_credit_share_permille
        ));
        lines.push(format!(
            "信用村居:户均积分不低于 {} / credit village: average score at least {}",
            self.village_min_average_score, self.village_min_average_score
        ));
        lines.push(format!(
            "信用村居:不良贷款率不高于 {}‰ / credit village: non-performing loans at most {}‰",
            self.village_max_npl_permille, self.village_max_npl_permille
        ));
        lines
    }
}

/// One criterion's result for one household or village.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub name: &'static str,
    pub met: bool,
    pub detail: String,
}

/// What the year says of a household.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdYear {
    /// The lowest tier it held at any moment of the year.
    pub lowest_tier: String,
    pub serious: bool,
    pub pledged: bool,
    pub score_end: i64,
}

pub fn judge_household(criteria: &Criteria, year: &HouseholdYear) -> Vec<Judged> {
    let mut judged = vec![Judged {
        name: "household.min_tier",
        met: tiers::at_least(&year.lowest_tier, &criteria.household_min_tier),
        detail: format!(
            "全年最低等级 {},要求不低于 {} / lowest tier {}, required {}",
            year.lowest_tier, criteria.household_min_tier, year.lowest_tier, criteria.household_min_tier
        ),
    }];
    if criteria.household_no_serious {
        judged.push(Judged {
            name: "household.no_serious_deduction",
            met: !year.serious,
            detail: if year.serious {
                "年内有严重扣分 / a serious deduction counted in the year".into()
            } else {
                "年内无严重扣分 / no serious deduction".into()
            },
        });
    }
    if criteria.household_pledge {
        judged.push(Judged {
            name: "household.pledge",
            met: year.pledged,
            detail: if year.pledged {
                "年末承诺有效 / pledge in force at the year's end".into()
            } else {
                "年末未签承诺或已撤回 / no pledge in force at the year's end".into()
            },
        });
    }
    judged
}

/// What the year says of a village: counts over its households.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VillageYear {
    pub households: i64,
    pub pledged: i64,
    pub credit_households: i64,
    pub score_sum: i64,
    /// Loans disbursed to its households, and of those the ones overdue or written off.
    pub loans: i64,
    pub bad_loans: i64,
}

impl VillageYear {
    pub fn coverage_permille(&self) -> i64 {
        permille(self.pledged, self.households)
    }

    pub fn credit_share_permille(&self) -> i64 {
        permille(self.credit_households, self.households)
    }

    /// Rounded up, so a ratio just over a ceiling never rounds down under it; 0 without loans.
    pub fn npl_permille(&self) -> i64 {
        if self.loans == 0 { 0 } else { (self.bad_loans * 1000 + self.loans - 1) / self.loans }
    }

    /// Rounded to the nearest point; 0 for a village without households.
    pub fn average_score(&self) -> i64 {
        if self.households == 0 { 0 } else { (self.score_sum + self.households / 2).div_euclid(self.households) }
    }
}

/// Rounded down, so a share just under a threshold never rounds up over it.
fn permille(part: i64, whole: i64) -> i64 {
    if whole == 0 { 0 } else { part * 1000 / whole }
}

pub fn judge_village(criteria: &Criteria, village: &VillageYear) -> Vec<Judged> {
    vec![
        Judged {
            name: "village.households",
            met: village.households > 0,
            detail: format!("在册 {} 户 / {} households", village.households, village.households),
        },
        Judged {
            name: "village.coverage",
            met: village.coverage_permille() >= criteria.village_min_coverage_permille,
            detail: format!(
                "承诺覆盖率 {}‰,要求 {}‰ / coverage {}‰, required {}‰",
                village.coverage_permille(),
                criteria.village_min_coverage_permille,
                village.coverage_permille(),
                criteria.village_min_coverage_permille
            ),
        },
        Judged {
            name: "village.credit_share",
            met: village.credit_share_permille() >= criteria.village_min_credit_share_permille,
            detail: format!(
                "信用户占比 {}‰,要求 {}‰ / credit households {}‰, required {}‰",
                village.credit_share_permille(),
                criteria.village_min_credit_share_permille,
                village.credit_share_permille(),
                criteria.village_min_credit_share_permille
            ),
        },
        Judged {
            name: "village.average_score",
            met: village.average_score() >= criteria.village_min_average_score,
            detail: format!(
                "户均积分 {},要求 {} / average score {}, required {}",
                village.average_score(),
                criteria.village_min_average_score,
                village.average_score(),
                criteria.village_min_average_score
            ),
        },
        Judged {
            name: "village.npl",
            met: village.npl_permille() <= criteria.village_max_npl_permille,
            detail: format!(
                "不良贷款率 {}‰({}/{} 笔),上限 {}‰ / non-performing {}‰ ({} of {} loans), at most {}‰",
                village.npl_permille(),
                village.bad_loans,
                village.loans,
                criteria.village_max_npl_permille,
                village.npl_permille(),
                village.bad_loans,
                village.loans,
                criteria.village_max_npl_permille
            ),
        },
    ]
}

/// Folds one household's score history into its year: the tier it entered the year with (the
/// last change before `start`, or the base), every change during the year, and the score at
/// `end`. `changes` are (at, score, tier), oldest first, all before `end`.
pub fn household_year(changes: &[(i64, i64, String)], start: i64) -> (String, i64) {
    let base_tier = tiers::of_score(tiers::BASE_SCORE).to_owned();
    let entering = changes.iter().rev().find(|(at, _, _)| *at < start).map(|(_, _, tier)| tier.clone());
    let mut lowest = entering.unwrap_or(base_tier);
    for (_, _, tier) in changes.iter().filter(|(at, _, _)| *at >= start) {
        if tiers::rank(tier).unwrap_or(usize::MAX) > tiers::rank(&lowest).unwrap_or(usize::MAX) {
            lowest = tier.clone();
        }
    }
    let score_end = changes.last().map(|(_, score, _)| *score).unwrap_or(tiers::BASE_SCORE);
    (lowest, score_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dip_during_the_year_counts_and_one_before_it_does_not() {
        let start = 100;
        let changes = vec![(10, 940, "C".to_owned()), (50, 1060, "AA".to_owned()), (150, 1001, "A".to_owned())];
        // Entered the year at AA (the C was the year before), then fell to A.
        assert_eq!(household_year(&changes, start), ("A".to_owned(), 1001));
        let dipped = vec![(50, 1060, "AA".to_owned()), (150, 990, "B".to_owned()), (160, 1060, "AA".to_owned())];
        assert_eq!(household_year(&dipped, start), ("B".to_owned(), 1060));
        assert_eq!(household_year(&[], start), ("A".to_owned(), 1000));
    }

    #[test]
    fn village_shares_round_down_at_the_threshold() {
        let village = VillageYear {
            households: 10,
            pledged: 9,
            credit_households: 7,
            score_sum: 10_004,
            loans: 20,
            bad_loans: 1,
        };
        let criteria = Criteria::default();
        assert!(judge_village(&criteria, &village).iter().all(|j| j.met));
        let short = VillageYear {
            households: 1000,
            pledged: 1000,
            credit_households: 699,
            score_sum: 1_000_000,
            loans: 1000,
            bad_loans: 51,
        };
        let judged = judge_village(&criteria, &short);
        assert!(!judged.iter().find(|j| j.name == "village.credit_share").unwrap().met);
        // 51 of 1,000 is 5.1%: over the 5% ceiling.
        assert!(!judged.iter().find(|j| j.name == "village.npl").unwrap().met);
        assert!(!judge_village(&criteria, &VillageYear::default())[0].met);
    }
}
