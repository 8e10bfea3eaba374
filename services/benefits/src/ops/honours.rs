//! The annual evaluation: credit households (信用户) and credit villages (信用村居) of a year,
//! computed set-wise from the read models (a county's 210,000 households in a few reads, folded
//! in memory), reviewed as a draft, then published.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use jiaxin_kit::{
    audit::Entry,
    auth::Caller,
    page::Page,
    sql::{path_ids, subtree_range},
    time::to_timestamp,
};
use jiaxin_proto::benefits::{
    Criterion, Evaluation, EvaluationStatus, GetHonourStatusResponse, Honour, HonourKind, HonoursPublished,
    HouseholdHonoured, ListHonoursResponse, ListVillageReportsResponse, VillageReport,
};

use super::{Benefits, audit, now, village_of, village_path};
use crate::{
    domain::{
        access,
        honours::{self, Criteria, HouseholdYear, Judged, VillageYear},
    },
    error::{BenefitsError, Result},
    store::{
        honours::{self as store, EvaluationRow, HouseholdResult, VillageResult},
        readmodel::{self, StandingRow},
    },
};

const EVALUATION: &str = "evaluation";

/// The first moment of a year in China (UTC+8), in microseconds.
fn year_start(year: i32) -> Option<i64> {
    jiaxin_kit::time::china_midnight(NaiveDate::from_ymd_opt(year, 1, 1)?)
}

fn evaluation_proto(e: &EvaluationRow) -> Evaluation {
    let criteria: Criteria = serde_json::from_str(&e.criteria).unwrap_or_default();
    Evaluation {
        id: e.id.clone(),
        year: e.year as i32,
        org_node_id: e.org_node_id.clone(),
        status: e.status as i32,
        households: e.households,
        credit_households: e.credit_households,
        villages: e.villages,
        credit_villages: e.credit_villages,
        criteria: criteria.describe(),
        computed_at: Some(to_timestamp(e.computed_at)),
        published_by: e.published_by.clone(),
        published_at: e.published_at.map(to_timestamp),
    }
}

fn criterion_proto(j: Judged) -> Criterion {
    Criterion { name: j.name.to_owned(), met: j.met, detail: j.detail }
}

fn village_report(v: &VillageResult) -> VillageReport {
    let year = VillageYear {
        households: v.households,
        pledged: v.pledged,
        credit_households: v.credit_households,
        score_sum: 0,
        loans: v.loans,
        bad_loans: v.bad_loans,
    };
    VillageReport {
        village_id: v.village_id.clone(),
        households: v.households,
        pledged: v.pledged,
        credit_households: v.credit_households,
        coverage_permille: year.coverage_permille(),
        credit_share_permille: year.credit_share_permille(),
        average_score: v.average_score,
        honoured: v.honoured != 0,
        loans: v.loans,
        bad_loans: v.bad_loans,
        npl_permille: year.npl_permille(),
    }
}

/// Everything the year says, computed from the read models.
struct Computed {
    households: Vec<HouseholdResult>,
    villages: Vec<VillageResult>,
}

impl Benefits {
    pub async fn evaluate_year(&self, caller: &Caller, year: i32, org_node_id: &str) -> Result<Evaluation> {
        if !caller.has_any_role(access::EVALUATORS) {
            return Err(BenefitsError::PermissionDenied);
        }
        if !(2000..=2100).contains(&year) {
            return Err(BenefitsError::invalid("year", "须在 2000 到 2100 之间 / between 2000 and 2100"));
        }
        let (start, end) = match (year_start(year), year_start(year + 1)) {
            (Some(start), Some(end)) => (start, end),
            _ => return Err(BenefitsError::invalid("year", "无效年份 / not a year")),
        };
        let mut tx = self.db.begin().await?;
        let path = self.scoped_node(&mut tx, caller, org_node_id, "org_node_id").await?;
        let existing = store::evaluation_of(&mut *tx, i64::from(year), org_node_id).await?;
        if existing.as_ref().is_some_and(|e| e.status == EvaluationStatus::Published as i64) {
            return Err(BenefitsError::Precondition(format!(
                "{year} 年评定已公布,不能重算 / the {year} evaluation is published and cannot be recomputed"
            )));
        }
        let started = std::time::Instant::now();
        let computed = self.compute(&mut tx, &path, start, end).await?;
        let computed_in = started.elapsed();
        let row = EvaluationRow {
            id: existing.map(|e| e.id).unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            year: i64::from(year),
            org_node_id: org_node_id.to_owned(),
            path,
            status: EvaluationStatus::Draft as i64,
            households: computed.households.len() as i64,
            credit_households: computed.households.iter().filter(|h| h.honoured != 0).count() as i64,
            villages: computed.villages.len() as i64,
            credit_villages: computed.villages.iter().filter(|v| v.honoured != 0).count() as i64,
            criteria: serde_json::to_string(&self.criteria).map_err(|e| BenefitsError::Internal(e.to_string()))?,
            computed_at: now(),
            published_by: String::new(),
            published_at: None,
        };
        store::replace_evaluation(&mut tx, &row, &computed.households, &computed.villages).await?;
        tracing::info!(
            year,
            households = row.households,
            read_and_judged_ms = computed_in.as_millis() as u64,
            written_ms = (started.elapsed() - computed_in).as_millis() as u64,
            "annual evaluation computed"
        );
        let details = format!(
            "year={year} households={} credit_households={} villages={} credit_villages={}",
            row.households, row.credit_households, row.villages, row.credit_villages
        );
        audit(
            &mut tx,
            &[Entry {
                at: row.computed_at,
                actor: caller.account_id(),
                action: "honours.evaluate",
                subject: &row.id,
                details: &details,
            }],
        )
        .await?;
        tx.commit().await?;
        Ok(evaluation_proto(&row))
    }

    /// Reads the year's facts under `path` set-wise and judges every household and village.
    async fn compute(&self, tx: &mut jiaxin_kit::storage::Tx, path: &str, start: i64, end: i64) -> Result<Computed> {
        let (from, to) = subtree_range(path);
        let households = store::households_under(tx, &from, &to).await?;
        let pledges: HashMap<String, (Option<i64>, Option<i64>)> = store::pledges_under(tx, &from, &to)
            .await?
            .into_iter()
            .map(|(id, signed, revoked)| (id, (signed, revoked)))
            .collect();
        let serious: HashSet<String> = store::serious_under(tx, &from, &to, start, end).await?.into_iter().collect();
        let loans = store::loans_under(tx, &from, &to).await?;
        let mut history: HashMap<String, Vec<(i64, i64, String)>> = HashMap::new();
        for (household, at, score, tier) in store::history_under(tx, &from, &to, end).await? {
            history.entry(household).or_default().push((at, score, tier));
        }
        for changes in history.values_mut() {
            changes.sort_unstable_by_key(|(at, _, _)| *at);
        }
        let mut villages: BTreeMap<String, (String, VillageYear)> = BTreeMap::new();
        let mut results = Vec::with_capacity(households.len());
        for (id, household_path) in households {
            let (lowest_tier, score_end) =
                honours::household_year(history.get(&id).map(Vec::as_slice).unwrap_or(&[]), start);
            let mut standing = StandingRow::base(&id);
            (standing.pledged_at, standing.revoked_at) = pledges.get(&id).copied().unwrap_or((None, None));
            let year = HouseholdYear {
                lowest_tier,
                serious: serious.contains(&id),
                pledged: standing.pledged_at_moment(end - 1),
                score_end,
            };
            let honoured = honours::judge_household(&self.criteria, &year).iter().all(|j| j.met);
            let village_id = village_of(&household_path).to_owned();
            let (_, village) = villages
                .entry(village_id.clone())
                .or_insert_with(|| (village_path(&household_path), VillageYear::default()));
            village.households += 1;
            village.pledged += i64::from(year.pledged);
            village.credit_households += i64::from(honoured);
            village.score_sum += year.score_end;
            results.push(HouseholdResult {
                household_id: id,
                village_id,
                path: household_path,
                honoured: i64::from(honoured),
                lowest_tier: year.lowest_tier,
                serious: i64::from(year.serious),
                pledged: i64::from(year.pledged),
                score_end: year.score_end,
            });
        }
        for (household_path, bad) in loans {
            if let Some((_, village)) = villages.get_mut(village_of(&household_path)) {
                village.loans += 1;
                village.bad_loans += i64::from(bad != 0);
            }
        }
        let villages = villages
            .into_iter()
            .map(|(village_id, (path, year))| VillageResult {
                honoured: i64::from(honours::judge_village(&self.criteria, &year).iter().all(|j| j.met)),
                village_id,
                path,
                households: year.households,
                pledged: year.pledged,
                credit_households: year.credit_households,
                average_score: year.average_score(),
                loans: year.loans,
                bad_loans: year.bad_loans,
            })
            .collect();
        Ok(Computed { households: results, villages })
    }

    pub async fn publish_honours(&self, caller: &Caller, evaluation_id: &str) -> Result<Evaluation> {
        if !caller.has_any_role(access::EVALUATORS) {
            return Err(BenefitsError::PermissionDenied);
        }
        let mut tx = self.db.begin().await?;
        let mut row = store::evaluation(&mut *tx, evaluation_id).await?.ok_or(BenefitsError::NotFound(EVALUATION))?;
        if !caller.covers(&path_ids(&row.path)) {
            return Err(BenefitsError::NotFound(EVALUATION));
        }
        let at = now();
        // Publishing an evaluation already published changes nothing and publishes nothing.
        if store::publish(&mut *tx, evaluation_id, caller.account_id(), at).await? {
            row.status = EvaluationStatus::Published as i64;
            row.published_by = caller.account_id().to_owned();
            row.published_at = Some(at);
            let event = HonoursPublished {
                evaluation: Some(evaluation_proto(&row)),
                credit_village_ids: store::honoured_village_ids(&mut *tx, evaluation_id).await?,
            };
            self.outbox.write(&mut tx, evaluation_id, &event).await?;
            // One event per credit household, keyed by household, for other read models.
            let mut envelopes = Vec::new();
            for (household_id, village_id) in store::honoured_household_ids(&mut *tx, evaluation_id).await? {
                let honoured = HouseholdHonoured {
                    evaluation_id: row.id.clone(),
                    year: row.year as i32,
                    household_id,
                    village_id,
                };
                envelopes.push(self.outbox.envelope(&honoured.household_id, &honoured)?);
            }
            self.outbox.write_all(&mut tx, &envelopes).await?;
            audit(
                &mut tx,
                &[Entry {
                    at,
                    actor: caller.account_id(),
                    action: "honours.publish",
                    subject: evaluation_id,
                    details: "",
                }],
            )
            .await?;
        }
        tx.commit().await?;
        self.outbox.wake();
        Ok(evaluation_proto(&row))
    }

    /// A published evaluation is public (公示); a draft only for its reviewers in scope.
    async fn readable_evaluation(
        &self,
        tx: &mut jiaxin_kit::storage::Tx,
        caller: &Caller,
        id: &str,
    ) -> Result<EvaluationRow> {
        let row = store::evaluation(&mut **tx, id).await?.ok_or(BenefitsError::NotFound(EVALUATION))?;
        let published = row.status == EvaluationStatus::Published as i64;
        if published || (caller.has_any_role(access::DRAFT_READERS) && caller.covers(&path_ids(&row.path))) {
            Ok(row)
        } else {
            Err(BenefitsError::NotFound(EVALUATION))
        }
    }

    /// The range to list: the named node's subtree (it must lie inside the evaluation), or the
    /// whole evaluation.
    async fn listing_range(
        &self,
        tx: &mut jiaxin_kit::storage::Tx,
        evaluation: &EvaluationRow,
        org_node_id: &str,
    ) -> Result<(String, String)> {
        if org_node_id.is_empty() {
            return Ok(subtree_range(&evaluation.path));
        }
        let path = readmodel::org_path(&mut **tx, org_node_id)
            .await?
            .ok_or_else(|| BenefitsError::invalid("org_node_id", "机构不存在 / no such org node"))?;
        if !path_ids(&path).contains(&evaluation.org_node_id.as_str()) {
            return Err(BenefitsError::invalid("org_node_id", "不在本次评定范围内 / outside this evaluation"));
        }
        Ok(subtree_range(&path))
    }

    pub async fn list_honours(
        &self,
        caller: &Caller,
        evaluation_id: &str,
        kind: i32,
        org_node_id: &str,
        page: Page,
    ) -> Result<ListHonoursResponse> {
        let kind = HonourKind::try_from(kind).unwrap_or(HonourKind::Unspecified);
        if kind == HonourKind::Unspecified {
            return Err(BenefitsError::invalid("kind", "须为 HOUSEHOLD 或 VILLAGE / HOUSEHOLD or VILLAGE"));
        }
        let mut tx = self.db.begin_read().await?;
        let evaluation = self.readable_evaluation(&mut tx, caller, evaluation_id).await?;
        let (from, to) = self.listing_range(&mut tx, &evaluation, org_node_id).await?;
        let after = page.after.clone().unwrap_or_default();
        let mut honours: Vec<Honour> = match kind {
            HonourKind::Household => {
                store::honoured_households(&mut tx, evaluation_id, (&from, &to), &after, page.fetch_limit())
                    .await?
                    .into_iter()
                    .map(|(household, village)| Honour {
                        kind: kind as i32,
                        subject_id: household,
                        village_id: village,
                    })
                    .collect()
            }
            _ => store::villages(&mut tx, evaluation_id, (&from, &to), true, &after, page.fetch_limit())
                .await?
                .into_iter()
                .map(|v| Honour { kind: kind as i32, subject_id: v.village_id.clone(), village_id: v.village_id })
                .collect(),
        };
        let next_page_token = page.finish(&mut honours, |h| h.subject_id.clone());
        Ok(ListHonoursResponse { honours, next_page_token })
    }

    pub async fn village_reports(
        &self,
        caller: &Caller,
        evaluation_id: &str,
        org_node_id: &str,
        page: Page,
    ) -> Result<ListVillageReportsResponse> {
        let mut tx = self.db.begin_read().await?;
        let evaluation = self.readable_evaluation(&mut tx, caller, evaluation_id).await?;
        let (from, to) = self.listing_range(&mut tx, &evaluation, org_node_id).await?;
        let after = page.after.clone().unwrap_or_default();
        let mut rows = store::villages(&mut tx, evaluation_id, (&from, &to), false, &after, page.fetch_limit()).await?;
        let next_page_token = page.finish(&mut rows, |v| v.village_id.clone());
        Ok(ListVillageReportsResponse { reports: rows.iter().map(village_report).collect(), next_page_token })
    }

    /// One household's (its members, or readers in scope) or one village's result, criterion by
    /// criterion, from the year's evaluation that covers it.
    pub async fn honour_status(
        &self,
        caller: &Caller,
        year: i32,
        household_id: &str,
        village_id: &str,
    ) -> Result<GetHonourStatusResponse> {
        if household_id.is_empty() == village_id.is_empty() {
            return Err(BenefitsError::invalid(
                "household_id",
                "须且只须指定户或村之一 / name exactly one of household_id and village_id",
            ));
        }
        let mut tx = self.db.begin_read().await?;
        if !household_id.is_empty() {
            self.readable_household(&mut tx, caller, household_id).await?;
        }
        let reviewer = caller.has_any_role(access::DRAFT_READERS);
        for evaluation in store::evaluations_of_year(&mut *tx, i64::from(year)).await? {
            let published = evaluation.status == EvaluationStatus::Published as i64;
            let visible = published || (reviewer && caller.covers(&path_ids(&evaluation.path)));
            if !visible {
                continue;
            }
            let criteria: Criteria = serde_json::from_str(&evaluation.criteria).unwrap_or_default();
            let (kind, subject, judged, honoured) = if household_id.is_empty() {
                let Some(v) = store::village_result(&mut *tx, &evaluation.id, village_id).await? else { continue };
                let year = VillageYear {
                    households: v.households,
                    pledged: v.pledged,
                    credit_households: v.credit_households,
                    score_sum: v.average_score * v.households,
                    loans: v.loans,
                    bad_loans: v.bad_loans,
                };
                (HonourKind::Village, village_id, honours::judge_village(&criteria, &year), v.honoured != 0)
            } else {
                let Some(h) = store::household_result(&mut *tx, &evaluation.id, household_id).await? else { continue };
                let year = HouseholdYear {
                    lowest_tier: h.lowest_tier.clone(),
                    serious: h.serious != 0,
                    pledged: h.pledged != 0,
                    score_end: h.score_end,
                };
                (HonourKind::Household, household_id, honours::judge_household(&criteria, &year), h.honoured != 0)
            };
            return Ok(GetHonourStatusResponse {
                evaluation_id: evaluation.id,
                kind: kind as i32,
                subject_id: subject.to_owned(),
                honoured,
                criteria: judged.into_iter().map(criterion_proto).collect(),
                published,
            });
        }
        Err(BenefitsError::NotFound(EVALUATION))
    }
}
