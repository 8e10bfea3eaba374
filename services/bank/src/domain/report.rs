//! The credit report's computed parts: the 24-month trend from the score history, and the
//! reason codes that explain the tier.

use chrono::{Datelike, NaiveDate};
use jiaxin_kit::tiers;
use jiaxin_proto::bank::{MonthScore, ReasonCode};

/// The first moment of a month in China (UTC+8), in microseconds.
fn month_start(year: i32, month: u32) -> Option<i64> {
    jiaxin_kit::time::china_midnight(NaiveDate::from_ymd_opt(year, month, 1)?)
}

/// The last `months` months up to `now`, oldest first: (YYYY-MM, the moment its score is read
/// at — the month's end, or `now` for the current month).
pub fn month_ends(now: i64, months: u32) -> Vec<(String, i64)> {
    let Some(today) = jiaxin_kit::time::china_date(now) else { return Vec::new() };
    let mut ends = Vec::new();
    let (mut year, mut month) = (today.year(), today.month());
    for i in 0..months {
        let end = if i == 0 {
            Some(now)
        } else {
            let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
            month_start(next_year, next_month)
        };
        if let Some(end) = end {
            ends.push((format!("{year:04}-{month:02}"), end));
        }
        (year, month) = if month == 1 { (year - 1, 12) } else { (year, month - 1) };
    }
    ends.reverse();
    ends
}

/// The score and tier just before a moment (a change at the first instant of a month belongs to
/// that month) from a household's history (at, score, tier), oldest first; the base before any
/// change.
pub fn score_at(history: &[(i64, i64, String)], at: i64) -> (i64, String) {
    history
        .iter()
        .rev()
        .find(|(when, _, _)| *when < at)
        .map(|(_, score, tier)| (*score, tier.clone()))
        .unwrap_or_else(|| (tiers::BASE_SCORE, tiers::of_score(tiers::BASE_SCORE).to_owned()))
}

pub fn trend(history: &[(i64, i64, String)], ends: &[(String, i64)]) -> Vec<MonthScore> {
    ends.iter()
        .map(|(month, at)| {
            let (score, tier) = score_at(history, *at);
            MonthScore { month: month.clone(), score, tier }
        })
        .collect()
}

/// What the report knows about a household, for its reason codes.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub score: i64,
    pub score_a_year_ago: i64,
    pub serious_active: bool,
    pub deductions_last_year: i64,
    pub bonuses_last_year: i64,
    pub pledged: bool,
    pub credit_household: bool,
}

pub fn reasons(facts: &Facts) -> Vec<ReasonCode> {
    let mut codes = Vec::new();
    if facts.serious_active {
        codes.push(ReasonCode::SeriousDeductionActive);
    }
    if facts.deductions_last_year > 0 {
        codes.push(ReasonCode::RecentDeduction);
    }
    if facts.bonuses_last_year >= 3 {
        codes.push(ReasonCode::SustainedBonuses);
    }
    if facts.score > facts.score_a_year_ago {
        codes.push(ReasonCode::ScoreRising);
    } else if facts.score < facts.score_a_year_ago {
        codes.push(ReasonCode::ScoreFalling);
    }
    codes.push(if facts.pledged { ReasonCode::PledgeInForce } else { ReasonCode::NoPledge });
    if facts.credit_household {
        codes.push(ReasonCode::CreditHousehold);
    }
    let next = tiers::LEVELS.iter().rev().find(|(_, min)| *min > facts.score);
    if next.is_some_and(|(_, min)| min - facts.score <= 10) {
        codes.push(ReasonCode::NearNextTier);
    }
    codes
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_trend_reads_each_months_end_and_the_base_before_any_change() {
        // 2026-11-29 12:00 China time.
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 29, 4, 0, 0).unwrap().timestamp_micros();
        let ends = month_ends(now, 24);
        assert_eq!(ends.len(), 24);
        assert_eq!(ends.first().unwrap().0, "2024-12");
        assert_eq!(ends.last().unwrap(), &("2026-11".to_owned(), now));
        let october_end = month_start(2026, 11).unwrap();
        let history = vec![(october_end - 1, 1060, "AA".to_owned()), (october_end, 990, "B".to_owned())];
        let trend = trend(&history, &ends);
        assert_eq!((trend[21].score, trend[22].score, trend[23].score), (1000, 1060, 990));
    }

    #[test]
    fn reasons_explain_the_tier() {
        let facts =
            Facts { score: 1045, score_a_year_ago: 1000, bonuses_last_year: 4, pledged: true, ..Default::default() };
        assert_eq!(
            reasons(&facts),
            [
                ReasonCode::SustainedBonuses,
                ReasonCode::ScoreRising,
                ReasonCode::PledgeInForce,
                ReasonCode::NearNextTier
            ]
        );
    }
}
