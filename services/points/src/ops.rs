//! Points' operations: each one transaction that checks the caller, validates against current
//! state, writes, and adds its events to the outbox.

use std::collections::BTreeMap;

use jiaxin_kit::{
    auth::{Caller, Role},
    error::Violations,
    outbox::Outbox,
    page::Page,
    storage::{Database, Tx},
    time::{now_micros, to_timestamp},
};
use jiaxin_proto::{
    council::{ReviewDecided, ReviewOutcome},
    identity::OrgNodeKind,
    points::{
        BatchItemResult, BatchSubmitRecordsResponse, Category, CategoryTotal, ExplainScoreResponse, LeaderboardEntry,
        ListRecordsResponse, PledgeStatus, Record, RecordEffective, RecordInput, RecordRejected, RecordReversed,
        RecordStatus, RecordSubmitted, Rule, RuleKind, Score, ScoreChanged, ScoreEntry, Severity, VerifyLedgerResponse,
    },
};

use crate::{
    UnpledgedRecords,
    domain::{
        access, catalogue,
        ledger::{self, Chained},
        score::{DAY_MICROS, Entry, Evaluation, Tiers},
    },
    error::{PointsError, Result},
    pledge::Gate,
    store::{self, LedgerRow, RecordRow, RuleRow},
};

const HOUSEHOLD: &str = "家庭户";
const RECORD: &str = "积分记录";
/// Submissions may be stamped a little ahead of the server's clock (a phone's clock drifts).
const CLOCK_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

pub struct Points {
    pub(crate) db: Database,
    pub(crate) outbox: Outbox,
    pub(crate) tiers: Tiers,
    pub(crate) unpledged: UnpledgedRecords,
}

fn path_ids(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

pub(crate) fn rule_proto(r: &RuleRow) -> Rule {
    Rule {
        code: r.code.clone(),
        version: r.version as i32,
        category: r.category as i32,
        name_zh: r.name_zh.clone(),
        name_en: r.name_en.clone(),
        kind: r.kind as i32,
        points_min: r.points_min,
        points_max: r.points_max,
        yearly_cap: r.yearly_cap,
        recorders: r.recorders.split(',').map(str::to_owned).collect(),
        evidence_required: r.evidence_required == 1,
        review_required: r.review_required == 1,
        severity: r.severity as i32,
        disclosure_days: r.disclosure_days as i32,
        counts_days: r.counts_days as i32,
        article: r.article.clone(),
        adopted_by: r.adopted_by.clone(),
        adopted_on: r.adopted_on.clone(),
        basis: r.basis.clone(),
        retired: r.retired == 1,
        scope_org_node_id: r.scope_node_id.clone(),
    }
}

pub(crate) fn record_proto(r: &RecordRow) -> Record {
    Record {
        id: r.id.clone(),
        household_id: r.household_id.clone(),
        resident_id: r.resident_id.clone().unwrap_or_default(),
        rule_code: r.rule_code.clone(),
        rule_version: r.rule_version as i32,
        points: r.points,
        status: status_now(r, now_micros()) as i32,
        occurred_at: Some(to_timestamp(r.occurred_at)),
        place: r.place.clone(),
        evidence: if r.evidence.is_empty() { Vec::new() } else { r.evidence.split('\n').map(str::to_owned).collect() },
        note: r.note.clone(),
        recorded_by: r.recorded_by.clone(),
        submitted_at: Some(to_timestamp(r.submitted_at)),
        effective_from: r.effective_from.map(to_timestamp),
        expires_at: r.expires_at.map(to_timestamp),
        decision_reason: r.decision_reason.clone(),
    }
}

/// An approved record is in disclosure until its effective date; the stored status says
/// approved-in-disclosure, the clock says when that turned into effective.
fn status_now(r: &RecordRow, now: i64) -> RecordStatus {
    let stored = RecordStatus::try_from(r.status as i32).unwrap_or(RecordStatus::Unspecified);
    match (stored, r.effective_from) {
        (RecordStatus::InDisclosure, Some(from)) if from <= now => RecordStatus::Effective,
        _ => stored,
    }
}

fn timestamp_micros(ts: &Option<prost_types::Timestamp>) -> Option<i64> {
    ts.as_ref().map(|t| t.seconds.saturating_mul(1_000_000).saturating_add(i64::from(t.nanos) / 1_000))
}

fn entry_of(row: &LedgerRow) -> Entry {
    Entry {
        seq: row.seq,
        delta: row.delta,
        effective_from: row.effective_from,
        expires_at: row.expires_at,
        created_at: row.created_at,
        serious: row.serious == 1,
        reverses_seq: row.reverses_seq,
        // Reversals of bonuses are negative bonus movements; deductions never are.
        bonus: (row.reverses_seq.is_none() && row.delta > 0) || (row.reverses_seq.is_some() && row.delta < 0),
    }
}

impl Points {
    pub fn new(db: Database, outbox: Outbox, tiers: Tiers, unpledged: UnpledgedRecords) -> Self {
        Self { db, outbox, tiers, unpledged }
    }

    /// Loads the default catalogue on the first start.
    pub async fn load_catalogue(&self) -> Result<usize> {
        let rules = catalogue::parse(catalogue::DEFAULT_CATALOGUE).map_err(|e| PointsError::Internal(e.to_string()))?;
        let mut tx = self.db.begin().await?;
        if store::count_rules(&mut *tx).await? > 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        for rule in &rules {
            store::insert_rule(&mut *tx, rule, 1, "").await?;
        }
        tx.commit().await?;
        tracing::info!(rules = rules.len(), "default rule catalogue loaded");
        Ok(rules.len())
    }

    pub async fn list_rules(&self, category: i32, include_retired: bool) -> Result<Vec<Rule>> {
        let rows = store::current_rules(self.db.pool(), i64::from(category), include_retired).await?;
        Ok(rows.iter().map(rule_proto).collect())
    }

    pub async fn get_rule(&self, code: &str) -> Result<Rule> {
        let row = store::current_rule(self.db.pool(), code.trim()).await?.ok_or(PointsError::NotFound("规则"))?;
        Ok(rule_proto(&row))
    }

    /// The household's grid path when the caller may read it: by role inside their scope, or as a
    /// resident of that household. Anything else reads as missing.
    async fn readable_household(&self, tx: &mut Tx, caller: &Caller, household_id: &str) -> Result<String> {
        let (path, _) =
            store::household_path(&mut **tx, household_id).await?.ok_or(PointsError::NotFound(HOUSEHOLD))?;
        let by_role = caller.has_any_role(access::READERS) && caller.covers(&path_ids(&path));
        let own = caller.has_role(Role::Resident)
            && match caller.0.rid.as_deref() {
                Some(rid) => store::is_member(&mut **tx, household_id, rid).await?,
                None => false,
            };
        if by_role || own { Ok(path) } else { Err(PointsError::NotFound(HOUSEHOLD)) }
    }

    pub async fn submit(&self, caller: &Caller, input: RecordInput) -> Result<Record> {
        let mut tx = self.db.begin().await?;
        let record = self.submit_in(&mut tx, caller, &input).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(record)
    }

    /// The whole batch in one transaction (one commit, not one per item), each item inside its own
    /// savepoint: a bad item is rolled back alone and answered with its error; the others stand.
    /// A storage failure fails the batch, which the client can resend: the keys make it safe.
    pub async fn batch_submit(&self, caller: &Caller, inputs: Vec<RecordInput>) -> Result<BatchSubmitRecordsResponse> {
        if inputs.len() > 10_000 {
            return Err(PointsError::invalid("records", "每批最多10000条 / at most 10000 per batch"));
        }
        let mut response = BatchSubmitRecordsResponse::default();
        let mut tx = self.db.begin().await?;
        for (index, input) in inputs.iter().enumerate() {
            let mut result = BatchItemResult { index: index as i32, ..Default::default() };
            sqlx::query("SAVEPOINT batch_item").execute(&mut *tx).await?;
            match self.submit_in(&mut tx, caller, input).await {
                Ok(record) => {
                    sqlx::query("RELEASE SAVEPOINT batch_item").execute(&mut *tx).await?;
                    result.record = Some(record);
                    response.accepted += 1;
                }
                Err(PointsError::Storage(error)) if jiaxin_kit::storage::is_transient(&error) => {
                    return Err(PointsError::Storage(error));
                }
                Err(error) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT batch_item").execute(&mut *tx).await?;
                    sqlx::query("RELEASE SAVEPOINT batch_item").execute(&mut *tx).await?;
                    let status = tonic::Status::from(error);
                    let violation = jiaxin_kit::error::field_violations(&status).into_iter().next();
                    result.error_code = format!("{:?}", status.code());
                    result.error_field = violation.as_ref().map(|v| v.field.clone()).unwrap_or_default();
                    result.error_message = violation.map(|v| v.message).unwrap_or_else(|| status.message().to_owned());
                    response.failed += 1;
                }
            }
            response.results.push(result);
        }
        tx.commit().await?;
        self.outbox.wake();
        Ok(response)
    }

    async fn submit_in(&self, tx: &mut Tx, caller: &Caller, input: &RecordInput) -> Result<Record> {
        let now = now_micros();
        let mut v = Violations::new();
        v.require("request_id", &input.request_id);
        v.require("household_id", &input.household_id);
        v.require("rule_code", &input.rule_code);
        let occurred_at = timestamp_micros(&input.occurred_at);
        match occurred_at {
            None => v.add("occurred_at", "必填 / required"),
            Some(at) if at > now + CLOCK_SKEW_MICROS => v.add("occurred_at", "不能晚于现在 / cannot be in the future"),
            Some(_) => {}
        }
        if input.evidence.iter().any(|e| e.trim().is_empty() || e.contains('\n') || e.len() > 512) {
            v.add("evidence", "每项为一行、不超过512字符的引用 / one-line references of at most 512 characters");
        }
        if input.note.chars().count() > 500 || input.place.chars().count() > 200 {
            v.add(if input.place.chars().count() > 200 { "place" } else { "note" }, "过长 / too long");
        }
        if input.points < 0 {
            v.add("points", "填写正数,加减由规则决定 / unsigned: the rule says bonus or deduction");
        }
        v.into_result()?;
        let occurred_at = occurred_at.unwrap_or(now);

        // A retry returns the first result; the same key with other content is refused by field.
        if let Some(earlier) = store::record_by_request(&mut **tx, caller.account_id(), &input.request_id).await? {
            return match differing_field(&earlier, input, occurred_at) {
                None => Ok(record_proto(&earlier)),
                Some(field) => Err(PointsError::invalid(
                    "request_id",
                    format!("该请求号已用于另一条记录,{field} 不同 / reused with a different {field}"),
                )),
            };
        }

        let rule = store::current_rule(&mut **tx, input.rule_code.trim())
            .await?
            .filter(|r| r.retired == 0)
            .ok_or_else(|| PointsError::invalid("rule_code", "规则不存在或已停用 / no such rule in force"))?;
        let recorders: Vec<Role> = rule.recorders.split(',').filter_map(access::recorder_role).collect();
        let as_collector = recorders.iter().any(|r| *r != Role::Resident && caller.has_role(*r));
        let self_report = !as_collector && recorders.contains(&Role::Resident) && caller.has_role(Role::Resident);
        if !as_collector && !self_report {
            return Err(PointsError::PermissionDenied);
        }

        let (path, active) =
            store::household_path(&mut **tx, &input.household_id).await?.ok_or(PointsError::NotFound(HOUSEHOLD))?;
        let in_scope = if self_report {
            match caller.0.rid.as_deref() {
                Some(rid) => store::is_member(&mut **tx, &input.household_id, rid).await?,
                None => false,
            }
        } else {
            caller.covers(&path_ids(&path))
        };
        if !in_scope {
            return Err(PointsError::NotFound(HOUSEHOLD));
        }
        if !rule.scope_node_id.is_empty() && !path_ids(&path).contains(&rule.scope_node_id.as_str()) {
            return Err(PointsError::invalid(
                "rule_code",
                "该村规不适用于此户所在村(居)/ a local rule of another village",
            ));
        }
        if active != 1 {
            return Err(PointsError::Precondition("该户已注销 / the household is dissolved".into()));
        }
        if !input.resident_id.is_empty()
            && !store::is_member(&mut **tx, &input.household_id, &input.resident_id).await?
        {
            return Err(PointsError::invalid(
                "resident_id",
                "不是该户现有成员 / not a current member of the household",
            ));
        }

        let magnitude = match (rule.points_min == rule.points_max, input.points) {
            (true, 0) => rule.points_min,
            (_, p) if p >= rule.points_min && p <= rule.points_max => p,
            _ => {
                return Err(PointsError::invalid(
                    "points",
                    format!(
                        "应在 {}–{} 之间 / must be within {}–{}",
                        rule.points_min, rule.points_max, rule.points_min, rule.points_max
                    ),
                ));
            }
        };
        if rule.evidence_required == 1 && input.evidence.is_empty() {
            return Err(PointsError::invalid("evidence", "该规则须附证据 / this rule requires evidence"));
        }
        let year =
            jiaxin_kit::time::to_datetime(occurred_at).map(|d| i64::from(chrono::Datelike::year(&d))).unwrap_or(0);
        store::lock_household(&mut **tx, &input.household_id).await?;
        if rule.yearly_cap > 0 {
            let used = store::yearly_total(&mut **tx, &input.household_id, &rule.code, year).await?;
            if used + magnitude > rule.yearly_cap {
                return Err(PointsError::invalid(
                    "points",
                    format!(
                        "超过该规则年度上限 {} 分(已用 {})/ over the yearly cap of {} (used {})",
                        rule.yearly_cap, used, rule.yearly_cap, used
                    ),
                ));
            }
        }

        let signed = if rule.kind == RuleKind::Deduction as i64 { -magnitude } else { magnitude };
        let needs_review = rule.review_required == 1 || self_report;
        let held = self.pledge_gate(tx, &input.household_id).await? == Gate::Hold;
        let status = match (held, needs_review) {
            (true, _) => RecordStatus::Held,
            (false, true) => RecordStatus::PendingReview,
            (false, false) => RecordStatus::Effective,
        };
        let mut row = RecordRow {
            id: uuid::Uuid::now_v7().to_string(),
            household_id: input.household_id.clone(),
            resident_id: (!input.resident_id.is_empty()).then(|| input.resident_id.clone()),
            rule_code: rule.code.clone(),
            rule_version: rule.version,
            points: signed,
            status: status as i64,
            occurred_at,
            place: input.place.trim().to_owned(),
            evidence: input.evidence.iter().map(|e| e.trim()).collect::<Vec<_>>().join("\n"),
            note: input.note.trim().to_owned(),
            recorded_by: caller.account_id().to_owned(),
            submitted_at: now,
            effective_from: None,
            expires_at: None,
            decision_reason: String::new(),
            request_id: input.request_id.clone(),
            year,
            needs_review: i64::from(needs_review),
        };
        if status == RecordStatus::Effective {
            row.effective_from = Some(now);
            row.expires_at = Some(now + rule.counts_days * DAY_MICROS);
        }
        store::insert_record(&mut **tx, &row).await?;
        let submitted = RecordSubmitted {
            record: Some(record_proto(&row)),
            // The council opens a task now only for a record that is not held.
            needs_review: status == RecordStatus::PendingReview,
            org_path: path_ids(&path).into_iter().map(str::to_owned).collect(),
        };
        self.outbox.write(tx, &row.household_id, &submitted).await?;
        if status == RecordStatus::Effective {
            self.take_effect(tx, &row, &rule, now).await?;
        }
        Ok(record_proto(&row))
    }

    /// A record that needs no review counts from `from`: its ledger entry, its event, the
    /// household's balance.
    pub(crate) async fn take_effect(&self, tx: &mut Tx, row: &RecordRow, rule: &RuleRow, from: i64) -> Result<()> {
        self.append_entry(tx, row, rule, row.points, from, None).await?;
        self.outbox.write(tx, &row.household_id, &RecordEffective { record: Some(record_proto(row)) }).await?;
        // Now, not the request's start: the entry just appended exists from its own creation on.
        self.refresh_balance(tx, &row.household_id, now_micros()).await?;
        Ok(())
    }

    /// Appends a ledger entry to the household's chain; returns its seq.
    async fn append_entry(
        &self,
        tx: &mut Tx,
        record: &RecordRow,
        rule: &RuleRow,
        delta: i64,
        effective_from: i64,
        reverses: Option<&LedgerRow>,
    ) -> Result<i64> {
        let prev =
            store::last_hash(&mut **tx, &record.household_id).await?.unwrap_or_else(|| ledger::GENESIS.to_owned());
        let created_at = now_micros();
        let expires_at = match reverses {
            Some(original) => original.expires_at.max(effective_from + 1),
            None => effective_from + rule.counts_days * DAY_MICROS,
        };
        let serious = rule.severity == Severity::Serious as i64;
        let chained = Chained {
            household_id: &record.household_id,
            record_id: &record.id,
            resident_id: record.resident_id.as_deref().unwrap_or(""),
            delta,
            effective_from,
            expires_at,
            rule_code: &rule.code,
            rule_version: rule.version,
            category: rule.category,
            serious,
            reverses_seq: reverses.map(|r| r.seq),
            created_at,
        };
        let hash = ledger::hash(&prev, &chained);
        let row = LedgerRow {
            seq: 0,
            household_id: record.household_id.clone(),
            record_id: record.id.clone(),
            resident_id: chained.resident_id.to_owned(),
            delta,
            effective_from,
            expires_at,
            rule_code: rule.code.clone(),
            rule_version: rule.version,
            category: rule.category,
            serious: i64::from(serious),
            reverses_seq: chained.reverses_seq,
            created_at,
            prev_hash: prev,
            hash,
        };
        let seq = store::insert_entry(&mut **tx, &row).await?;
        // Keep the grid's totals with the ledger, by the month the entry takes effect.
        if let Some(grid) = store::household_grid(&mut **tx, &record.household_id).await? {
            let month = jiaxin_kit::time::to_datetime(effective_from)
                .map(|d| d.format("%Y-%m").to_string())
                .unwrap_or_default();
            let entry = entry_of(&row);
            let (bonus, deduction) = if entry.bonus { (delta, 0) } else { (0, -delta) };
            let count = if reverses.is_some() { -1 } else { 1 };
            store::add_grid_total(&mut **tx, &grid, rule.category, &month, bonus, deduction, count).await?;
        }
        Ok(seq)
    }

    async fn evaluate(&self, tx: &mut Tx, household_id: &str, at: i64) -> Result<Evaluation> {
        let entries: Vec<Entry> = store::entries_of(&mut **tx, household_id).await?.iter().map(entry_of).collect();
        Ok(self.tiers.evaluate(&entries, at))
    }

    /// Brings the household's maintained balance up to `at` and publishes `ScoreChanged` when
    /// the score, tier or redeemable points moved. Every path that can move a score calls this:
    /// ledger writes, and the ticker when entries start or stop counting.
    pub(crate) async fn refresh_balance(&self, tx: &mut Tx, household_id: &str, at: i64) -> Result<bool> {
        let after = self.evaluate(tx, household_id, at).await?;
        let before = store::balance(&mut **tx, household_id).await?;
        if before.as_ref().is_some_and(|(score, tier, redeemable)| {
            (*score, tier.as_str(), *redeemable) == (after.score, after.tier.as_str(), after.redeemable)
        }) {
            return Ok(false);
        }
        store::upsert_balance(&mut **tx, household_id, after.score, &after.tier, after.redeemable).await?;
        // A household without a balance yet stood at the base.
        let (old_score, old_tier, old_redeemable) =
            before.unwrap_or_else(|| (self.tiers.base, self.tiers.evaluate(&[], at).tier, 0));
        if (old_score, old_tier.as_str(), old_redeemable) == (after.score, after.tier.as_str(), after.redeemable) {
            return Ok(false);
        }
        let event = ScoreChanged {
            household_id: household_id.to_owned(),
            old_score,
            new_score: after.score,
            old_tier,
            new_tier: after.tier,
            redeemable_points: after.redeemable,
        };
        self.outbox.write(tx, household_id, &event).await?;
        Ok(true)
    }

    /// Refreshes every household whose entries started or stopped counting since the last tick
    /// (disclosure ending, windows expiring): found through the ledger's time indexes, never by
    /// visiting all households. Returns how many scores changed.
    pub async fn tick(&self, now: i64) -> Result<usize> {
        let last = match store::last_tick(self.db.pool()).await? {
            Some(last) => last,
            None => {
                store::set_tick(self.db.pool(), now).await?;
                return Ok(0);
            }
        };
        if now <= last {
            return Ok(0);
        }
        let households = store::households_with_transitions(self.db.pool(), last, now).await?;
        let mut changed = 0;
        for household in &households {
            let mut tx = self.db.begin().await?;
            store::lock_household(&mut *tx, household).await?;
            changed += usize::from(self.refresh_balance(&mut tx, household, now).await?);
            tx.commit().await?;
        }
        store::set_tick(self.db.pool(), now).await?;
        if changed > 0 {
            self.outbox.wake();
        }
        Ok(changed)
    }

    /// Applies the council's decision on a record awaiting review. Decisions on records that are
    /// no longer pending (a redelivered or late event) change nothing.
    pub async fn apply_review(&self, tx: &mut Tx, decision: &ReviewDecided) -> Result<()> {
        let Some(mut record) = store::record(&mut **tx, &decision.record_id).await? else {
            return Err(PointsError::NotFound(RECORD));
        };
        if record.status != RecordStatus::PendingReview as i64 {
            tracing::info!(record_id = %record.id, "review decision for a record no longer pending; ignored");
            return Ok(());
        }
        let rule = store::rule_version(&mut **tx, &record.rule_code, record.rule_version)
            .await?
            .ok_or(PointsError::NotFound("规则"))?;
        store::lock_household(&mut **tx, &record.household_id).await?;
        let now = now_micros();
        match ReviewOutcome::try_from(decision.outcome).unwrap_or(ReviewOutcome::Unspecified) {
            ReviewOutcome::Rejected => {
                store::decide_record(
                    &mut **tx,
                    &record.id,
                    RecordStatus::Rejected as i64,
                    record.points,
                    None,
                    None,
                    &decision.reason,
                )
                .await?;
                record.status = RecordStatus::Rejected as i64;
                record.decision_reason = decision.reason.clone();
                self.outbox
                    .write(tx, &record.household_id, &RecordRejected { record: Some(record_proto(&record)) })
                    .await?;
            }
            outcome @ (ReviewOutcome::Approved | ReviewOutcome::Amended) => {
                if outcome == ReviewOutcome::Amended {
                    let amended = decision.amended_points;
                    if amended < rule.points_min || amended > rule.points_max {
                        return Err(PointsError::invalid("amended_points", "outside the rule's range"));
                    }
                    record.points = if record.points < 0 { -amended } else { amended };
                }
                // On the disclosure list (公示) first; it counts from the end of the period.
                let effective_from = now + rule.disclosure_days * DAY_MICROS;
                let expires_at = effective_from + rule.counts_days * DAY_MICROS;
                store::decide_record(
                    &mut **tx,
                    &record.id,
                    RecordStatus::InDisclosure as i64,
                    record.points,
                    Some(effective_from),
                    Some(expires_at),
                    &decision.reason,
                )
                .await?;
                record.status = RecordStatus::InDisclosure as i64;
                record.effective_from = Some(effective_from);
                record.expires_at = Some(expires_at);
                record.decision_reason = decision.reason.clone();
                self.append_entry(tx, &record, &rule, record.points, effective_from, None).await?;
                self.outbox
                    .write(tx, &record.household_id, &RecordEffective { record: Some(record_proto(&record)) })
                    .await?;
            }
            ReviewOutcome::Unspecified => return Err(PointsError::invalid("outcome", "required")),
        }
        Ok(())
    }

    pub async fn get_record(&self, caller: &Caller, id: &str) -> Result<Record> {
        let mut tx = self.db.begin_read().await?;
        let record = store::record(&mut *tx, id).await?.ok_or(PointsError::NotFound(RECORD))?;
        self.readable_household(&mut tx, caller, &record.household_id)
            .await
            .map_err(|_| PointsError::NotFound(RECORD))?;
        Ok(record_proto(&record))
    }

    pub async fn list_records(&self, caller: &Caller, household_id: &str, page: Page) -> Result<ListRecordsResponse> {
        let mut tx = self.db.begin_read().await?;
        self.readable_household(&mut tx, caller, household_id).await?;
        let mut rows = store::records_of(&mut *tx, household_id, &page).await?;
        let next_page_token = page.finish(&mut rows, |r| r.id.clone());
        Ok(ListRecordsResponse { records: rows.iter().map(record_proto).collect(), next_page_token })
    }

    /// Reverses a record that counts or is in disclosure, with a new opposite entry.
    pub async fn reverse(&self, caller: &Caller, record_id: &str, reason: &str) -> Result<Record> {
        caller.require_any_role(access::REVERSERS).map_err(|_| PointsError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("record_id", record_id);
        v.require("reason", reason);
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let mut record = store::record(&mut *tx, record_id).await?.ok_or(PointsError::NotFound(RECORD))?;
        let (path, _) =
            store::household_path(&mut *tx, &record.household_id).await?.ok_or(PointsError::NotFound(RECORD))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(PointsError::NotFound(RECORD));
        }
        if !matches!(
            RecordStatus::try_from(record.status as i32),
            Ok(RecordStatus::Effective | RecordStatus::InDisclosure)
        ) {
            return Err(PointsError::Precondition(
                "只有已生效或公示中的记录可以冲销 / only effective or disclosed records can be reversed".into(),
            ));
        }
        store::lock_household(&mut *tx, &record.household_id).await?;
        let original = store::entry_of_record(&mut *tx, &record.id).await?.ok_or(PointsError::NotFound(RECORD))?;
        let rule = store::rule_version(&mut *tx, &record.rule_code, record.rule_version)
            .await?
            .ok_or(PointsError::NotFound("规则"))?;
        let now = now_micros();
        // From now on, or from the original's start if it had not started yet: then it never counts.
        let effective_from = original.effective_from.max(now);
        self.append_entry(&mut tx, &record, &rule, -original.delta, effective_from, Some(&original)).await?;
        store::decide_record(
            &mut *tx,
            &record.id,
            RecordStatus::Reversed as i64,
            record.points,
            record.effective_from,
            record.expires_at,
            reason.trim(),
        )
        .await?;
        record.status = RecordStatus::Reversed as i64;
        record.decision_reason = reason.trim().to_owned();
        let event = RecordReversed { record: Some(record_proto(&record)), reason: reason.trim().to_owned() };
        self.outbox.write(&mut tx, &record.household_id, &event).await?;
        self.refresh_balance(&mut tx, &record.household_id, now_micros()).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(record_proto(&record))
    }

    /// The household's score at `at`, or a member's own (the entries recorded for them).
    pub async fn score(
        &self,
        caller: &Caller,
        household_id: &str,
        resident_id: &str,
        as_of: Option<i64>,
    ) -> Result<Score> {
        let at = as_of.unwrap_or_else(now_micros);
        let mut tx = self.db.begin_read().await?;
        self.readable_household(&mut tx, caller, household_id).await?;
        let evaluation = if resident_id.is_empty() {
            self.evaluate(&mut tx, household_id, at).await?
        } else {
            let entries: Vec<Entry> =
                store::entries_of_resident(&mut *tx, household_id, resident_id).await?.iter().map(entry_of).collect();
            self.tiers.evaluate(&entries, at)
        };
        let pledge = self.pledge_status(&mut tx, household_id).await?;
        Ok(score_proto(household_id, at, &evaluation, pledge))
    }

    /// Households of a village, community or grid by maintained score.
    pub async fn leaderboard(&self, caller: &Caller, org_node_id: &str, limit: i32) -> Result<Vec<LeaderboardEntry>> {
        caller.require_any_role(access::READERS).map_err(|_| PointsError::PermissionDenied)?;
        if !(0..=500).contains(&limit) {
            return Err(PointsError::invalid("limit", "0–500"));
        }
        let (path, kind) =
            store::org_node(self.db.pool(), org_node_id).await?.ok_or(PointsError::NotFound("组织节点"))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(PointsError::NotFound("组织节点"));
        }
        // Only small units: a county-wide ranking would read every household of the county.
        if !matches!(
            OrgNodeKind::try_from(kind as i32),
            Ok(OrgNodeKind::Village | OrgNodeKind::Community | OrgNodeKind::Grid)
        ) {
            return Err(PointsError::invalid("org_node_id", "排行限于村(社区)或网格 / a village, community or grid"));
        }
        let rows = store::leaderboard(self.db.pool(), &path, if limit == 0 { 50 } else { i64::from(limit) }).await?;
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, (household_id, score, tier))| LeaderboardEntry { household_id, score, tier, rank: i as i32 + 1 })
            .collect())
    }

    pub async fn totals(&self, caller: &Caller, org_node_id: &str, from: &str, to: &str) -> Result<Vec<CategoryTotal>> {
        caller.require_any_role(access::READERS).map_err(|_| PointsError::PermissionDenied)?;
        let month = |field: &str, value: &str| -> Result<()> {
            let valid =
                value.is_empty() || chrono::NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").is_ok();
            if valid { Ok(()) } else { Err(PointsError::invalid(field, "应为 YYYY-MM / must be YYYY-MM")) }
        };
        month("from_month", from)?;
        month("to_month", to)?;
        let (path, _) = store::org_node(self.db.pool(), org_node_id).await?.ok_or(PointsError::NotFound("组织节点"))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(PointsError::NotFound("组织节点"));
        }
        let to = if to.is_empty() { "9999-12" } else { to };
        let rows = store::totals(self.db.pool(), &path, from, to).await?;
        Ok(rows
            .into_iter()
            .map(|(category, month, bonus_points, deduction_points, entries)| CategoryTotal {
                category: category as i32,
                month,
                bonus_points,
                deduction_points,
                entries,
            })
            .collect())
    }

    pub async fn explain(
        &self,
        caller: &Caller,
        household_id: &str,
        as_of: Option<i64>,
    ) -> Result<ExplainScoreResponse> {
        let at = as_of.unwrap_or_else(now_micros);
        let mut tx = self.db.begin_read().await?;
        self.readable_household(&mut tx, caller, household_id).await?;
        let rows = store::entries_of(&mut *tx, household_id).await?;
        let entries: Vec<Entry> = rows.iter().map(entry_of).collect();
        let evaluation = self.tiers.evaluate(&entries, at);
        let mut names: BTreeMap<(String, i64), String> = BTreeMap::new();
        let mut explained = Vec::new();
        for row in rows.iter().filter(|r| entry_of(r).counts_at(at)) {
            let key = (row.rule_code.clone(), row.rule_version);
            if !names.contains_key(&key) {
                let name = store::rule_version(&mut *tx, &row.rule_code, row.rule_version)
                    .await?
                    .map(|r| r.name_zh)
                    .unwrap_or_default();
                names.insert(key.clone(), name);
            }
            explained.push(ScoreEntry {
                record_id: row.record_id.clone(),
                rule_code: row.rule_code.clone(),
                rule_version: row.rule_version as i32,
                rule_name_zh: names.get(&key).cloned().unwrap_or_default(),
                category: Category::try_from(row.category as i32).unwrap_or(Category::Unspecified) as i32,
                points: row.delta,
                effective_from: Some(to_timestamp(row.effective_from)),
                expires_at: Some(to_timestamp(row.expires_at)),
                reversal: row.reverses_seq.is_some(),
            });
        }
        let year_later = at + 365 * DAY_MICROS;
        let mut expiring: Vec<ScoreEntry> = explained
            .iter()
            .filter(|e| e.expires_at.as_ref().is_some_and(|t| t.seconds * 1_000_000 < year_later))
            .cloned()
            .collect();
        expiring.sort_by_key(|e| e.expires_at.as_ref().map(|t| t.seconds));
        let (above, below) = self.tiers.neighbours(evaluation.score);
        Ok(ExplainScoreResponse {
            score: Some(score_proto(household_id, at, &evaluation, self.pledge_status(&mut tx, household_id).await?)),
            base: self.tiers.base,
            entries: explained,
            expiring,
            next_tier: above.as_ref().map(|a| a.0.clone()).unwrap_or_default(),
            points_to_next_tier: above.map(|a| a.1).unwrap_or_default(),
            lower_tier: below.as_ref().map(|b| b.0.clone()).unwrap_or_default(),
            points_above_lower_tier: below.map(|b| b.1).unwrap_or_default(),
        })
    }

    /// Recomputes every hash of one household's chain, or of all (a page of households at a time).
    pub async fn verify(&self, caller: &Caller, household_id: &str) -> Result<VerifyLedgerResponse> {
        caller.require_any_role(access::VERIFIERS).map_err(|_| PointsError::PermissionDenied)?;
        let mut response = VerifyLedgerResponse { intact: true, ..Default::default() };
        let mut after = String::new();
        loop {
            let households = if household_id.is_empty() {
                store::ledger_households(self.db.pool(), &after, 500).await?
            } else if after.is_empty() {
                vec![household_id.to_owned()]
            } else {
                Vec::new()
            };
            let Some(last) = households.last().cloned() else { return Ok(response) };
            for household in &households {
                let mut prev = ledger::GENESIS.to_owned();
                for row in store::entries_of(self.db.pool(), household).await? {
                    response.entries_checked += 1;
                    let expected = ledger::hash(
                        &prev,
                        &Chained {
                            household_id: &row.household_id,
                            record_id: &row.record_id,
                            resident_id: &row.resident_id,
                            delta: row.delta,
                            effective_from: row.effective_from,
                            expires_at: row.expires_at,
                            rule_code: &row.rule_code,
                            rule_version: row.rule_version,
                            category: row.category,
                            serious: row.serious == 1,
                            reverses_seq: row.reverses_seq,
                            created_at: row.created_at,
                        },
                    );
                    if row.prev_hash != prev || row.hash != expected {
                        response.intact = false;
                        response.broken_entry_seq = row.seq;
                        response.broken_household_id = row.household_id.clone();
                        return Ok(response);
                    }
                    prev = row.hash;
                }
                response.households_checked += 1;
            }
            after = last;
        }
    }
}

fn score_proto(household_id: &str, at: i64, e: &Evaluation, pledge: PledgeStatus) -> Score {
    Score {
        pledge: pledge as i32,
        household_id: household_id.to_owned(),
        as_of: Some(to_timestamp(at)),
        score: e.score,
        tier: e.tier.clone(),
        redeemable_points: e.redeemable,
        tier_capped: e.tier_capped,
    }
}

/// The first field in which a retried submission differs from the record its key made.
fn differing_field(earlier: &RecordRow, input: &RecordInput, occurred_at: i64) -> Option<&'static str> {
    let evidence: Vec<&str> = input.evidence.iter().map(|e| e.trim()).collect();
    let magnitude_matches = input.points == 0 || input.points == earlier.points.abs();
    [
        ("household_id", earlier.household_id == input.household_id),
        ("resident_id", earlier.resident_id.as_deref().unwrap_or("") == input.resident_id),
        ("rule_code", earlier.rule_code == input.rule_code.trim()),
        ("points", magnitude_matches),
        ("occurred_at", earlier.occurred_at == occurred_at),
        ("place", earlier.place == input.place.trim()),
        ("evidence", earlier.evidence == evidence.join("\n")),
        ("note", earlier.note == input.note.trim()),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(field, _)| field)
}
