//! A household's standing and the eligibility checks agencies make against it. Every check is
//! written to the audit log before its answer is given.

use std::collections::HashMap;

use sqlx::AnyConnection;

use jiaxin_kit::{
    audit::{self as chain, Entry, OwnedEntry},
    auth::Caller,
    sql::path_ids,
    time::{from_timestamp, to_timestamp},
};
use jiaxin_proto::benefits::{EligibilityCheck, EligibilityReason, Standing, VerifyAuditLogResponse};

use super::{BENEFIT, Benefits, audit, china_today, now};
use crate::{
    domain::{
        access,
        eligibility::{self, Terms},
    },
    error::{BenefitsError, Result},
    store::{
        catalogue::{self, BenefitRow},
        readmodel::{self, StandingRow},
        shop,
    },
};

/// The most households one batch check may name.
pub const MAX_BATCH: usize = 5_000;

fn terms(b: &BenefitRow) -> Terms<'_> {
    Terms {
        min_tier: &b.min_tier,
        min_score: b.min_score,
        valid_from: &b.valid_from,
        valid_until: &b.valid_until,
        retired: b.retired != 0,
    }
}

/// Decides one household: `None` for a household the benefit does not cover (unknown, dissolved
/// or outside its area — the answer does not say which).
fn decide(
    benefit: &BenefitRow,
    path: Option<&str>,
    standing: Option<&StandingRow>,
    household_id: &str,
    at: i64,
) -> EligibilityCheck {
    let covered = path.is_some_and(|path| path_ids(path).contains(&benefit.org_node_id.as_str()));
    let mut check = EligibilityCheck {
        id: uuid::Uuid::now_v7().to_string(),
        benefit_id: benefit.id.clone(),
        household_id: household_id.to_owned(),
        checked_at: Some(to_timestamp(at)),
        ..Default::default()
    };
    let reason = if covered {
        let base;
        let standing = match standing {
            Some(s) => s,
            None => {
                base = StandingRow::base(household_id);
                &base
            }
        };
        check.tier = standing.tier.clone();
        check.score = standing.score;
        check.standing_as_of = standing.as_of.map(to_timestamp);
        eligibility::decide(&terms(benefit), standing.score, &standing.tier, &china_today(at))
    } else {
        EligibilityReason::NotCovered
    };
    check.eligible = reason == EligibilityReason::Eligible;
    check.reason = reason as i32;
    check.explanation = eligibility::explain(reason, &terms(benefit), check.score, &check.tier);
    check
}

fn check_details(check: &EligibilityCheck) -> String {
    format!(
        "benefit={} household={} eligible={} reason={} tier={} score={} as_of={}",
        check.benefit_id,
        check.household_id,
        check.eligible,
        EligibilityReason::try_from(check.reason).map(|r| r.as_str_name()).unwrap_or("?"),
        check.tier,
        check.score,
        check.standing_as_of.as_ref().map(|t| from_timestamp(t).to_string()).unwrap_or_default(),
    )
}

impl Benefits {
    /// The standing now, or as of `at` (from the history kept of points' changes).
    pub async fn standing(&self, caller: &Caller, household_id: &str, at: Option<i64>) -> Result<Standing> {
        let mut tx = self.db.begin_read().await?;
        self.readable_household(&mut tx, caller, household_id).await?;
        let current =
            readmodel::standing(&mut *tx, household_id).await?.unwrap_or_else(|| StandingRow::base(household_id));
        let Some(at) = at else {
            return Ok(standing_proto(&current, current.redeemable_spent, now()));
        };
        let mut past = StandingRow::base(household_id);
        if let Some((when, score, tier)) = readmodel::score_at(&mut *tx, household_id, at).await? {
            (past.score, past.tier, past.as_of) = (score, tier, Some(when));
        }
        // What was earned then is not kept line by line; spending is, from the redemptions.
        past.redeemable_earned = current.redeemable_earned;
        (past.pledged_at, past.revoked_at) = (current.pledged_at, current.revoked_at);
        let spent = shop::spent_at(&mut *tx, household_id, at).await?;
        Ok(standing_proto(&past, spent, at))
    }

    /// The benefit as its provider sees it: anyone else, and a benefit that is not there, read
    /// the same (not found).
    async fn provided_benefit(
        &self,
        conn: &mut AnyConnection,
        caller: &Caller,
        benefit_id: &str,
    ) -> Result<BenefitRow> {
        if benefit_id.trim().is_empty() {
            return Err(BenefitsError::invalid("benefit_id", "必填 / required"));
        }
        let benefit = catalogue::benefit(&mut *conn, benefit_id).await?.ok_or(BenefitsError::NotFound(BENEFIT))?;
        if catalogue::acts_for(&mut *conn, caller.account_id(), &benefit.provider_id).await? {
            Ok(benefit)
        } else {
            Err(BenefitsError::NotFound(BENEFIT))
        }
    }

    /// One check. Read on a pooled connection; the answer's audit entry goes to the audit log's
    /// group commit with the other checks' of the moment, and the answer is given only once that
    /// has committed. The entry records what was answered (score, tier and as-of included).
    pub async fn check(&self, caller: &Caller, benefit_id: &str, household_id: &str) -> Result<EligibilityCheck> {
        if household_id.trim().is_empty() {
            return Err(BenefitsError::invalid("household_id", "必填 / required"));
        }
        let mut conn = self.db.pool().acquire().await?;
        let benefit = self.provided_benefit(&mut conn, caller, benefit_id).await?;
        let path = readmodel::household_path(&mut *conn, household_id).await?;
        let standing = readmodel::standing(&mut *conn, household_id).await?;
        drop(conn);
        let at = now();
        let check = decide(&benefit, path.as_deref(), standing.as_ref(), household_id, at);
        let entry = OwnedEntry {
            at,
            actor: caller.account_id().to_owned(),
            action: "eligibility.check".into(),
            subject: check.id.clone(),
            details: check_details(&check),
        };
        self.audit_log.submit(entry).await?;
        Ok(check)
    }

    /// Checks a list in one transaction: one audit entry per household, all or none.
    pub async fn batch_check(
        &self,
        caller: &Caller,
        benefit_id: &str,
        household_ids: &[String],
    ) -> Result<Vec<EligibilityCheck>> {
        if household_ids.is_empty() {
            return Err(BenefitsError::invalid("household_ids", "至少一户 / at least one household"));
        }
        if household_ids.len() > MAX_BATCH {
            return Err(BenefitsError::invalid(
                "household_ids",
                format!("一次最多 {MAX_BATCH} 户 / at most {MAX_BATCH}"),
            ));
        }
        if let Some(i) = household_ids.iter().position(|h| h.trim().is_empty()) {
            return Err(BenefitsError::invalid(&format!("household_ids[{i}]"), "不能为空 / must not be empty"));
        }
        let mut tx = self.db.begin().await?;
        let benefit = self.provided_benefit(&mut tx, caller, benefit_id).await?;
        let paths: HashMap<String, String> = readmodel::household_paths(&mut tx, household_ids).await?;
        let standings = readmodel::standings_of(&mut tx, household_ids).await?;
        let at = now();
        let checks: Vec<EligibilityCheck> = household_ids
            .iter()
            .map(|h| decide(&benefit, paths.get(h).map(String::as_str), standings.get(h), h, at))
            .collect();
        let details: Vec<String> = checks.iter().map(check_details).collect();
        let entries: Vec<Entry<'_>> = checks
            .iter()
            .zip(&details)
            .map(|(check, details)| Entry {
                at,
                actor: caller.account_id(),
                action: "eligibility.check",
                subject: &check.id,
                details,
            })
            .collect();
        audit(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(checks)
    }

    pub async fn verify_audit(&self, caller: &Caller) -> Result<VerifyAuditLogResponse> {
        if !caller.has_any_role(access::VERIFIERS) {
            return Err(BenefitsError::PermissionDenied);
        }
        let mut tx = self.db.begin_read().await?;
        let verified = chain::verify(&mut tx).await?;
        Ok(VerifyAuditLogResponse {
            intact: verified.intact,
            entries_checked: verified.entries_checked,
            broken_seq: verified.broken_seq,
        })
    }
}

fn standing_proto(s: &StandingRow, spent: i64, at: i64) -> Standing {
    Standing {
        household_id: s.household_id.clone(),
        score: s.score,
        tier: s.tier.clone(),
        redeemable_earned: s.redeemable_earned,
        redeemable_spent: spent,
        redeemable_available: (s.redeemable_earned - spent).max(0),
        pledge_in_force: s.pledged_at_moment(at),
        as_of: s.as_of.map(to_timestamp),
    }
}
