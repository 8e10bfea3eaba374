//! Points' operations: each one transaction that checks the caller, validates against current
//! state, writes, and adds its events to the outbox.

use std::collections::BTreeMap;

use sqlx::AnyConnection;

use jiaxin_kit::{
    auth::{Caller, Role},
    error::{ItemError, Violations},
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
        RecordStatus, Rule, Score, ScoreChanged, ScoreEntry, Severity,
    },
};

use crate::{
    UnpledgedRecords,
    domain::{
        access, catalogue, ledger,
        score::{DAY_MICROS, Entry, Evaluation, Tiers},
    },
    error::{PointsError, Result},
    store::{self, LedgerRow, RecordRow, RuleRow},
};

pub(crate) const HOUSEHOLD: &str = "家庭户";
const RECORD: &str = "积分记录";

pub struct Points {
    pub(crate) db: Database,
    pub(crate) outbox: Outbox,
    pub(crate) tiers: Tiers,
    pub(crate) unpledged: UnpledgedRecords,
}

pub(crate) use jiaxin_kit::sql::path_ids;

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
/// approved-in-disclosure, the clock says when that turned into effective. A frozen record
/// (objected to) shows as frozen whatever it was.
fn status_now(r: &RecordRow, now: i64) -> RecordStatus {
    if r.frozen == 1 {
        return RecordStatus::Frozen;
    }
    let stored = RecordStatus::try_from(r.status as i32).unwrap_or(RecordStatus::Unspecified);
    match (stored, r.effective_from) {
        (RecordStatus::InDisclosure, Some(from)) if from <= now => RecordStatus::Effective,
        _ => stored,
    }
}

pub(crate) fn timestamp_micros(ts: &Option<prost_types::Timestamp>) -> Option<i64> {
    ts.as_ref().map(jiaxin_kit::time::from_timestamp)
}

pub(crate) fn entry_of(row: &LedgerRow) -> Entry {
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

/// A ledger entry for `record`, chained after `prev` (the household's last hash).
pub(crate) fn chain_entry(
    prev: String,
    record: &RecordRow,
    rule: &RuleRow,
    delta: i64,
    effective_from: i64,
    reverses: Option<&LedgerRow>,
) -> LedgerRow {
    let expires_at = match reverses {
        Some(original) => original.expires_at.max(effective_from + 1),
        None => effective_from + rule.counts_days * DAY_MICROS,
    };
    chain_entry_until(prev, record, rule, delta, (effective_from, expires_at), reverses)
}

/// A ledger entry counting over `window` (from, until), chained after `prev`.
pub(crate) fn chain_entry_until(
    prev: String,
    record: &RecordRow,
    rule: &RuleRow,
    delta: i64,
    (effective_from, expires_at): (i64, i64),
    reverses: Option<&LedgerRow>,
) -> LedgerRow {
    let mut row = LedgerRow {
        seq: 0,
        household_id: record.household_id.clone(),
        record_id: record.id.clone(),
        resident_id: record.resident_id.clone().unwrap_or_default(),
        delta,
        effective_from,
        expires_at,
        rule_code: rule.code.clone(),
        rule_version: rule.version,
        category: rule.category,
        serious: i64::from(rule.severity == Severity::Serious as i64),
        reverses_seq: reverses.map(|r| r.seq),
        created_at: now_micros(),
        prev_hash: prev,
        hash: String::new(),
    };
    row.hash = ledger::hash(&row.prev_hash, &row.chained());
    row
}

/// What one ledger entry adds to its grid's totals, by the month it takes effect.
pub(crate) struct GridTotal {
    pub month: String,
    pub bonus: i64,
    pub deduction: i64,
    pub entries: i64,
}

impl GridTotal {
    pub fn of(row: &LedgerRow) -> Self {
        let month = jiaxin_kit::time::to_datetime(row.effective_from)
            .map(|d| d.format("%Y-%m").to_string())
            .unwrap_or_default();
        let (bonus, deduction) = if entry_of(row).bonus { (row.delta, 0) } else { (0, -row.delta) };
        Self { month, bonus, deduction, entries: if row.reverses_seq.is_some() { -1 } else { 1 } }
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
    async fn readable_household(
        &self,
        conn: &mut AnyConnection,
        caller: &Caller,
        household_id: &str,
    ) -> Result<String> {
        let (path, _) =
            store::household_path(&mut *conn, household_id).await?.ok_or(PointsError::NotFound(HOUSEHOLD))?;
        self.may_read(conn, caller, household_id, &path).await?;
        Ok(path)
    }

    /// Whether the caller may read the household at `path`: a reader over it, or a member.
    async fn may_read(&self, conn: &mut AnyConnection, caller: &Caller, household_id: &str, path: &str) -> Result<()> {
        let by_role = caller.has_any_role(access::READERS) && caller.covers(&path_ids(path));
        let own = caller.has_role(Role::Resident)
            && match caller.0.rid.as_deref() {
                Some(rid) => store::is_member(&mut *conn, household_id, rid).await?,
                None => false,
            };
        if by_role || own { Ok(()) } else { Err(PointsError::NotFound(HOUSEHOLD)) }
    }

    pub async fn submit(&self, caller: &Caller, input: RecordInput) -> Result<Record> {
        let mut answers = self.intake(caller, std::slice::from_ref(&input)).await?;
        answers.pop().unwrap_or_else(|| Err(PointsError::Internal("no answer for the record".into())))
    }

    /// The whole batch in one transaction (one commit, not one per item): each item is checked
    /// and answered on its own; a bad item writes nothing, the others stand.
    pub async fn batch_submit(&self, caller: &Caller, inputs: Vec<RecordInput>) -> Result<BatchSubmitRecordsResponse> {
        if inputs.len() > 10_000 {
            return Err(PointsError::invalid("records", "每批最多10000条 / at most 10000 per batch"));
        }
        let mut response = BatchSubmitRecordsResponse::default();
        for (index, answer) in self.intake(caller, &inputs).await?.into_iter().enumerate() {
            let mut result = BatchItemResult { index: index as i32, ..Default::default() };
            match answer {
                Ok(record) => {
                    result.record = Some(record);
                    response.accepted += 1;
                }
                Err(error) => {
                    let failed = ItemError::from(tonic::Status::from(error));
                    (result.error_code, result.error_field, result.error_message) =
                        (failed.code, failed.field, failed.message);
                    response.failed += 1;
                }
            }
            response.results.push(result);
        }
        Ok(response)
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
    pub(crate) async fn append_entry(
        &self,
        tx: &mut Tx,
        record: &RecordRow,
        rule: &RuleRow,
        delta: i64,
        effective_from: i64,
        reverses: Option<&LedgerRow>,
    ) -> Result<i64> {
        let prev = self.chain_head(tx, &record.household_id).await?;
        let row = chain_entry(prev, record, rule, delta, effective_from, reverses);
        self.store_entry(tx, &row).await
    }

    /// What the household's next entry chains after: its chain head, not whatever entry is last
    /// in the table, so entries removed from the end stay missing from the chain.
    pub(crate) async fn chain_head(&self, tx: &mut Tx, household_id: &str) -> Result<String> {
        Ok(store::head_hash(&mut **tx, household_id).await?.unwrap_or_else(|| ledger::GENESIS.to_owned()))
    }

    /// Writes a chained entry, moves the household's chain head to it and adds it to its grid's
    /// totals; returns its seq.
    pub(crate) async fn store_entry(&self, tx: &mut Tx, row: &LedgerRow) -> Result<i64> {
        let seq = store::insert_entry(&mut **tx, row).await?;
        store::advance_heads(tx, &[(&row.household_id, 1, &row.hash)]).await?;
        // Keep the grid's totals with the ledger, by the month the entry takes effect.
        if let Some(grid) = store::household_grid(&mut **tx, &row.household_id).await? {
            let total = GridTotal::of(row);
            store::add_grid_total(
                &mut **tx,
                &grid,
                row.category,
                &total.month,
                total.bonus,
                total.deduction,
                total.entries,
            )
            .await?;
        }
        Ok(seq)
    }

    async fn evaluate(&self, conn: &mut AnyConnection, household_id: &str, at: i64) -> Result<Evaluation> {
        let entries: Vec<Entry> = store::entries_of(&mut *conn, household_id).await?.iter().map(entry_of).collect();
        Ok(self.tiers.evaluate(&entries, at))
    }

    /// Brings the household's maintained balance up to `at` and publishes `ScoreChanged` when
    /// the score, tier or redeemable points moved. Every path that can move a score calls this:
    /// ledger writes, and the ticker when entries start or stop counting.
    pub(crate) async fn refresh_balance(&self, tx: &mut Tx, household_id: &str, at: i64) -> Result<bool> {
        let after = self.evaluate(tx, household_id, at).await?;
        let before = store::balance(&mut **tx, household_id).await?;
        let (write, event) = self.balance_change(household_id, before, &after, at);
        if write {
            store::upsert_balance(&mut **tx, household_id, after.score, &after.tier, after.redeemable, at).await?;
        }
        match event {
            Some(event) => {
                self.outbox.write(tx, household_id, &event).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether a household's maintained balance must be written, and the `ScoreChanged` to
    /// publish when the score, tier or redeemable points moved (a household without a balance
    /// yet stood at the base).
    pub(crate) fn balance_change(
        &self,
        household_id: &str,
        before: Option<(i64, String, i64)>,
        after: &Evaluation,
        at: i64,
    ) -> (bool, Option<ScoreChanged>) {
        let now = (after.score, after.tier.as_str(), after.redeemable);
        if before.as_ref().is_some_and(|(score, tier, redeemable)| (*score, tier.as_str(), *redeemable) == now) {
            return (false, None);
        }
        let (old_score, old_tier, old_redeemable) =
            before.unwrap_or_else(|| (self.tiers.base, self.tiers.evaluate(&[], at).tier, 0));
        if (old_score, old_tier.as_str(), old_redeemable) == now {
            return (true, None);
        }
        let event = ScoreChanged {
            household_id: household_id.to_owned(),
            old_score,
            new_score: after.score,
            old_tier,
            new_tier: after.tier.clone(),
            redeemable_points: after.redeemable,
            at: Some(to_timestamp(at)),
        };
        (true, Some(event))
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
            // Evaluated as of now, read once the lock is held: a batch that committed entries
            // for this household after `now` was taken also wrote a balance as of its own later
            // moment, and evaluating at `now` would move that balance back in time, without
            // the entries that did not exist yet at `now` (the crash campaign caught one).
            let at = now.max(now_micros());
            changed += usize::from(self.refresh_balance(&mut tx, household, at).await?);
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
        if record.frozen == 1 {
            return Err(PointsError::Precondition(
                "该记录有待复核的异议 / an objection to this record awaits the council".into(),
            ));
        }
        store::lock_household(&mut *tx, &record.household_id).await?;
        let original = store::live_entry_of_record(&mut *tx, &record.household_id, &record.id)
            .await?
            .ok_or(PointsError::NotFound(RECORD))?;
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
        // The hottest read (banks, benefits, residents' phones): three statements on one
        // connection and no transaction — the score comes from one statement over the ledger,
        // which is consistent in itself, and the household's place and pledge do not depend on
        // it. A BEGIN and its end were two more round trips to the database per read.
        let mut conn = self.db.pool().acquire().await?;
        let (path, pledge) =
            store::household_for_score(&mut *conn, household_id).await?.ok_or(PointsError::NotFound(HOUSEHOLD))?;
        self.may_read(&mut conn, caller, household_id, &path).await?;
        let entries = if resident_id.is_empty() {
            store::entries_of(&mut *conn, household_id).await?
        } else {
            store::entries_of_resident(&mut *conn, household_id, resident_id).await?
        };
        let evaluation = self.tiers.evaluate(&entries.iter().map(entry_of).collect::<Vec<_>>(), at);
        Ok(score_proto(household_id, at, &evaluation, crate::pledge::pledge_status_of(pledge)))
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
