//! The credit report under a consent and whole-village pre-approval (整村授信). Each is written
//! to the audit log and to the consenting households' query lists in the transaction that
//! produces it: if those writes fail, nothing is returned.

use std::collections::BTreeMap;

use jiaxin_kit::{
    audit,
    auth::Caller,
    sql::path_ids,
    tiers,
    time::{DAY_MICROS, to_timestamp},
};
use jiaxin_proto::{
    bank::{
        ActiveDeduction, CategoryCount, CreditReport, HouseholdLimit, PreApproveVillageRequest,
        PreApproveVillageResponse, ProductLimit, Purpose, TierCount,
    },
    points::{Category, Severity},
};

use super::{
    Bank, china_today,
    journal::{ReportAsk, ReportTrace},
    now, require_officer,
};
use crate::{
    domain::{
        consent::{self, Terms},
        limits,
        report::{self, Facts},
    },
    error::{BankError, Result},
    store::{
        consents::{self as store, QueryRow},
        readmodel::{self, StandingRow},
        registry::{self, BusinessRow},
    },
};

const TREND_MONTHS: u32 = 24;
const YEAR: i64 = 365 * DAY_MICROS;

/// The purposes a report may rest on.
const REPORT_PURPOSES: [Purpose; 2] = [Purpose::LoanApplication, Purpose::PostLoanMonitoring];

/// Whether `consent` (of a current household) may be used by `institution` on `today` for a
/// report of its household, or of one of its businesses (`business_household`: the business's
/// household). Every case where it may not reads the same NOT_FOUND to the caller.
pub(crate) fn usable(
    consent: &store::ConsentRow,
    institution: &str,
    business_household: Option<&str>,
    today: &str,
) -> bool {
    let terms = Terms {
        institution_id: &consent.institution_id,
        purpose: consent.purpose,
        valid_until: &consent.valid_until,
        revoked: consent.revoked_at.is_some(),
    };
    consent::usable(&terms, institution, &REPORT_PURPOSES, today)
        && business_household.is_none_or(|household| household == consent.household_id)
}

fn category_name(code: i64) -> String {
    Category::try_from(code as i32)
        .map(|c| c.as_str_name().trim_start_matches("CATEGORY_").to_lowercase())
        .unwrap_or_default()
}

impl Bank {
    /// A report for the consent's institution's officer. Every refusal past the officer check —
    /// no such consent, another bank's, revoked, expired, the wrong purpose, a household no
    /// longer there — reads the same NOT_FOUND.
    pub async fn credit_report(&self, caller: &Caller, consent_id: &str) -> Result<CreditReport> {
        self.credit_report_for(caller, consent_id, None).await
    }

    /// A report under a consent, for the household or for one of its businesses. Only a bank
    /// officer's ask reaches the journal, which reads, assembles and records it with other
    /// concurrent reports (`journal`).
    pub(crate) async fn credit_report_for(
        &self,
        caller: &Caller,
        consent_id: &str,
        business: Option<BusinessRow>,
    ) -> Result<CreditReport> {
        require_officer(caller)?;
        let ask = ReportAsk {
            officer_account_id: caller.account_id().to_owned(),
            consent_id: consent_id.to_owned(),
            business,
        };
        self.journal.submit(ask).await?
    }

    /// 整村授信: a branch's officer asks for a village the branch serves. Aggregates cover every
    /// household; suggested limits name only households whose consent covers pre-approval by
    /// this institution, and each of those sees the query in its list.
    pub async fn pre_approve(
        &self,
        caller: &Caller,
        request: PreApproveVillageRequest,
    ) -> Result<PreApproveVillageResponse> {
        let mut tx = self.db.begin().await?;
        let institution = self.officer_institution(&mut tx, caller).await?;
        let (branch_institution, _) =
            registry::branch(&mut *tx, &request.branch_id).await?.ok_or(BankError::NotFound("branch"))?;
        let officers = registry::branch_officers(&mut *tx, &request.branch_id).await?;
        if branch_institution != institution || !officers.iter().any(|o| o == caller.account_id()) {
            return Err(BankError::NotFound("branch"));
        }
        if !registry::branch_villages(&mut *tx, &request.branch_id).await?.contains(&request.village_id) {
            return Err(BankError::invalid("village_id", "该网点不服务此村 / the branch does not serve this village"));
        }
        let product = registry::product(&mut *tx, &request.product_id)
            .await?
            .filter(|p| p.institution_id == institution)
            .ok_or_else(|| BankError::invalid("product_id", "本机构无此产品 / no such product of your institution"))?;
        self.admit(caller, &institution)?;
        let village_path = readmodel::org_path(&mut *tx, &request.village_id)
            .await?
            .filter(|path| path_ids(path).last() == Some(&request.village_id.as_str()))
            .ok_or_else(|| BankError::invalid("village_id", "村不存在 / no such village"))?;
        let at = now();
        let households = readmodel::village_standings(&mut tx, &village_path).await?;
        let range = jiaxin_kit::sql::subtree_range(&village_path);
        let consents = store::usable_in(
            &mut tx,
            &institution,
            Purpose::VillagePreapproval as i64,
            &china_today(at),
            (&range.0, &range.1),
        )
        .await?;

        let mut tiers_seen: BTreeMap<usize, (String, i64)> = BTreeMap::new();
        let mut total = 0;
        let mut by_household = std::collections::HashMap::new();
        for (id, score, tier) in &households {
            let rank = tiers::rank(tier).unwrap_or(usize::MAX);
            tiers_seen.entry(rank).or_insert_with(|| (tier.clone(), 0)).1 += 1;
            total += limits::at(&product.limits, tier);
            by_household.insert(id.as_str(), (*score, tier.as_str()));
        }
        let answer_id = uuid::Uuid::now_v7().to_string();
        let mut consented = Vec::new();
        let mut queries = Vec::new();
        let mut last_household = None;
        for (consent_id, household_id) in &consents {
            let Some((score, tier)) = by_household.get(household_id.as_str()) else { continue };
            if last_household != Some(household_id.as_str()) {
                consented.push(HouseholdLimit {
                    household_id: household_id.clone(),
                    tier: (*tier).to_owned(),
                    score: *score,
                    limit_fen: limits::at(&product.limits, tier),
                });
                last_household = Some(household_id.as_str());
            }
            queries.push(QueryRow {
                id: format!("{answer_id}:{consent_id}"),
                consent_id: consent_id.clone(),
                institution_id: institution.clone(),
                officer_account_id: caller.account_id().to_owned(),
                purpose: Purpose::VillagePreapproval as i64,
                at,
                returned: format!(
                    "整村授信:{tier} 级,建议额度 {} 元 / pre-approval: tier {tier}",
                    limits::at(&product.limits, tier) / 100
                ),
            });
        }
        store::insert_queries(&mut tx, &queries).await?;
        let details = format!(
            "branch={} village={} product={} households={} consented={} total_fen={total}",
            request.branch_id,
            request.village_id,
            product.id,
            households.len(),
            consented.len()
        );
        let entry = audit::Entry {
            at,
            actor: caller.account_id(),
            action: "village.preapprove",
            subject: &answer_id,
            details: &details,
        };
        audit::append(&mut tx, &[entry]).await?;
        tx.commit().await?;
        Ok(PreApproveVillageResponse {
            id: answer_id,
            village_id: request.village_id,
            households: households.len() as i64,
            tiers: tiers_seen.into_values().map(|(tier, households)| TierCount { tier, households }).collect(),
            suggested_total_fen: total,
            consented,
        })
    }

    pub async fn verify_audit(&self, caller: &Caller) -> Result<jiaxin_proto::bank::VerifyAuditLogResponse> {
        if !caller.has_any_role(crate::domain::access::VERIFIERS) {
            return Err(BankError::PermissionDenied);
        }
        let mut tx = self.db.begin_read().await?;
        let verified = audit::verify(&mut tx).await?;
        Ok(jiaxin_proto::bank::VerifyAuditLogResponse {
            intact: verified.intact,
            entries_checked: verified.entries_checked,
            broken_seq: verified.broken_seq,
        })
    }
}

/// What `report` leaves behind for the household (whose report, what it said) and for the audit
/// log.
pub(crate) fn trace(
    report: &CreditReport,
    consent: &store::ConsentRow,
    ask: &ReportAsk,
    institution: &str,
    at: i64,
) -> ReportTrace {
    let business = ask.business.as_ref();
    let subject = business.map(|b| format!("{}(经营主体)", b.name)).unwrap_or_default();
    let returned = format!(
        "{subject}信用报告:{} 级 {} 分 / credit report: tier {}, score {}",
        report.tier, report.score, report.tier, report.score
    );
    let details = format!(
        "consent={} household={} business={} institution={} tier={} score={} reasons={:?}",
        consent.id,
        consent.household_id,
        business.map(|b| b.id.as_str()).unwrap_or(""),
        institution,
        report.tier,
        report.score,
        report.reasons
    );
    ReportTrace {
        query: QueryRow {
            id: report.id.clone(),
            consent_id: consent.id.clone(),
            institution_id: institution.to_owned(),
            officer_account_id: ask.officer_account_id.clone(),
            purpose: consent.purpose,
            at,
            returned,
        },
        action: if business.is_some() { "business.report" } else { "credit.report" },
        details,
    }
}

/// The report's contents from what the bank's read models hold of its subject.
pub(crate) fn assemble(subject: &store::ReportSubject, products: &[(String, String)], at: i64) -> CreditReport {
    let base = StandingRow::base();
    let standing = subject.standing.as_ref().unwrap_or(&base);
    let (history, records) = (&subject.history, &subject.records);
    let ends = report::month_ends(at, TREND_MONTHS);
    let trend = report::trend(history, &ends);

    // Items by category over the trend's window; serious deductions counting now.
    let window_start = ends.first().map(|(_, end)| end - 31 * DAY_MICROS).unwrap_or(at);
    let mut counts: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut serious = Vec::new();
    let (mut bonuses_last_year, mut deductions_last_year) = (0, 0);
    for record in records {
        let (from, until) = (record.effective_from, record.expires_at);
        if from >= window_start && from <= at {
            let entry = counts.entry(record.category).or_default();
            if record.bonus { entry.0 += 1 } else { entry.1 += 1 }
        }
        if from > at - YEAR && from <= at {
            if record.bonus { bonuses_last_year += 1 } else { deductions_last_year += 1 }
        }
        if !record.bonus && record.severity == Severity::Serious as i64 && from <= at && at < until {
            serious
                .push(ActiveDeduction { severity: Severity::Serious as i32, counts_until: Some(to_timestamp(until)) });
        }
    }
    let facts = Facts {
        score: standing.score,
        score_a_year_ago: report::score_at(history, at - YEAR).0,
        serious_active: !serious.is_empty(),
        deductions_last_year,
        bonuses_last_year,
        pledged: standing.pledged(),
        credit_household: standing.credit_household_year > 0,
    };
    let limits = products
        .iter()
        .map(|(id, table)| ProductLimit { product_id: id.clone(), limit_fen: limits::at(table, &standing.tier) })
        .collect();
    CreditReport {
        id: uuid::Uuid::now_v7().to_string(),
        consent_id: subject.consent.id.clone(),
        household_id: subject.consent.household_id.clone(),
        generated_at: Some(to_timestamp(at)),
        score: standing.score,
        tier: standing.tier.clone(),
        trend,
        counts: counts
            .into_iter()
            .map(|(category, (bonus, deduction))| CategoryCount {
                category: category_name(category),
                bonus_items: bonus,
                deduction_items: deduction,
            })
            .collect(),
        serious_deductions: serious,
        credit_household: facts.credit_household,
        reasons: report::reasons(&facts).into_iter().map(|r| r as i32).collect(),
        limits,
    }
}
