//! Points' SQL. Functions take any executor so operations can run them in one transaction.

use jiaxin_kit::{
    page::Page, pipeline::Statement, sql::values, storage::Dialect, time::now_micros, writes::Placeholders,
};
use sqlx::{Any, Executor};

use crate::domain::{catalogue::RuleDef, ledger::Chained};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuleRow {
    pub code: String,
    pub version: i64,
    pub category: i64,
    pub name_zh: String,
    pub name_en: String,
    pub kind: i64,
    pub points_min: i64,
    pub points_max: i64,
    pub yearly_cap: i64,
    pub recorders: String,
    pub evidence_required: i64,
    pub review_required: i64,
    pub severity: i64,
    pub disclosure_days: i64,
    pub counts_days: i64,
    pub article: String,
    pub adopted_by: String,
    pub adopted_on: String,
    pub basis: String,
    pub retired: i64,
    pub scope_node_id: String,
}

const RULE_COLUMNS: &str = "code, version, category, name_zh, name_en, kind, points_min, points_max, yearly_cap, recorders, \
     evidence_required, review_required, severity, disclosure_days, counts_days, article, adopted_by, adopted_on, basis, retired, \
     scope_node_id";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordRow {
    pub id: String,
    pub household_id: String,
    pub resident_id: Option<String>,
    pub rule_code: String,
    pub rule_version: i64,
    pub points: i64,
    pub status: i64,
    pub occurred_at: i64,
    pub place: String,
    pub evidence: String,
    pub note: String,
    pub recorded_by: String,
    pub submitted_at: i64,
    pub effective_from: Option<i64>,
    pub expires_at: Option<i64>,
    pub decision_reason: String,
    pub request_id: String,
    pub year: i64,
    /// Whether the council reviews it (kept for held records, decided when they are released).
    pub needs_review: i64,
    /// Objected to and not yet re-reviewed: its entry is cancelled meanwhile.
    pub frozen: i64,
}

const RECORD_COLUMNS: &str = "id, household_id, resident_id, rule_code, rule_version, points, status, occurred_at, place, \
     evidence, note, recorded_by, submitted_at, effective_from, expires_at, decision_reason, request_id, year, \
     needs_review, frozen";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerRow {
    pub seq: i64,
    pub household_id: String,
    pub record_id: String,
    pub resident_id: String,
    pub delta: i64,
    pub effective_from: i64,
    pub expires_at: i64,
    pub rule_code: String,
    pub rule_version: i64,
    pub category: i64,
    pub serious: i64,
    pub reverses_seq: Option<i64>,
    pub created_at: i64,
    pub prev_hash: String,
    pub hash: String,
}

impl LedgerRow {
    /// The fields the entry's hash covers (`domain::ledger::hash`).
    pub fn chained(&self) -> Chained<'_> {
        Chained {
            household_id: &self.household_id,
            record_id: &self.record_id,
            resident_id: &self.resident_id,
            delta: self.delta,
            effective_from: self.effective_from,
            expires_at: self.expires_at,
            rule_code: &self.rule_code,
            rule_version: self.rule_version,
            category: self.category,
            serious: self.serious == 1,
            reverses_seq: self.reverses_seq,
            created_at: self.created_at,
        }
    }
}

const LEDGER_COLUMNS: &str = "seq, household_id, record_id, resident_id, delta, effective_from, expires_at, rule_code, \
     rule_version, category, serious, reverses_seq, created_at, prev_hash, hash";

// ---- rules ----

pub async fn count_rules<'c, E: Executor<'c, Database = Any>>(e: E) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM rules").fetch_one(e).await
}

/// Adds a version of a rule; `scope_node_id` is empty for a deployment-wide rule.
pub async fn insert_rule<'c, E: Executor<'c, Database = Any>>(
    e: E,
    rule: &RuleDef,
    version: i64,
    scope_node_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO rules ({RULE_COLUMNS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 0, $20, $21)"
    ))
    .bind(&rule.code)
    .bind(version)
    .bind(rule.category as i64)
    .bind(&rule.name_zh)
    .bind(&rule.name_en)
    .bind(rule.kind as i64)
    .bind(rule.points_min)
    .bind(rule.points_max)
    .bind(rule.yearly_cap)
    .bind(rule.recorders.join(","))
    .bind(i64::from(rule.evidence_required))
    .bind(i64::from(rule.review_required))
    .bind(rule.severity as i64)
    .bind(rule.disclosure_days)
    .bind(rule.counts_days)
    .bind(&rule.article)
    .bind(&rule.adopted_by)
    .bind(&rule.adopted_on)
    .bind(&rule.basis)
    .bind(scope_node_id)
    .bind(now_micros())
    .execute(e)
    .await?;
    Ok(())
}

/// Marks the current version of a rule retired.
pub async fn retire_rule<'c, E: Executor<'c, Database = Any>>(e: E, code: &str, version: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE rules SET retired = 1 WHERE code = $1 AND version = $2")
        .bind(code)
        .bind(version)
        .execute(e)
        .await?;
    Ok(())
}

/// The current version of every rule (optionally one category), by code.
pub async fn current_rules<'c, E: Executor<'c, Database = Any>>(
    e: E,
    category: i64,
    include_retired: bool,
) -> sqlx::Result<Vec<RuleRow>> {
    sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM rules r WHERE version = (SELECT MAX(version) FROM rules x WHERE x.code = r.code) \
         AND ($1 = 0 OR category = $1) AND ($2 = 1 OR retired = 0) ORDER BY code"
    ))
    .bind(category)
    .bind(i64::from(include_retired))
    .fetch_all(e)
    .await
}

pub async fn current_rule<'c, E: Executor<'c, Database = Any>>(e: E, code: &str) -> sqlx::Result<Option<RuleRow>> {
    sqlx::query_as(&format!("SELECT {RULE_COLUMNS} FROM rules WHERE code = $1 ORDER BY version DESC LIMIT 1"))
        .bind(code)
        .fetch_optional(e)
        .await
}

pub async fn rule_version<'c, E: Executor<'c, Database = Any>>(
    e: E,
    code: &str,
    version: i64,
) -> sqlx::Result<Option<RuleRow>> {
    sqlx::query_as(&format!("SELECT {RULE_COLUMNS} FROM rules WHERE code = $1 AND version = $2"))
        .bind(code)
        .bind(version)
        .fetch_optional(e)
        .await
}

// ---- read models of identity ----

pub use jiaxin_kit::orgmodel::{org_path as org_node_path, upsert_org_node};

/// An org node's path and kind.
pub async fn org_node<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<(String, i64)>> {
    sqlx::query_as("SELECT path, kind FROM org_nodes WHERE id = $1").bind(id).fetch_optional(e).await
}

pub async fn upsert_household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, grid_id: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO households (id, grid_id, active) VALUES ($1, $2, 1) ON CONFLICT (id) DO UPDATE SET grid_id = excluded.grid_id, active = 1")
        .bind(id)
        .bind(grid_id)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn deactivate_household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET active = 0 WHERE id = $1").bind(id).execute(e).await?;
    Ok(())
}

/// The household's grid path and whether it is active; `None` when points has not heard of it.
pub async fn household_path<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
) -> sqlx::Result<Option<(String, i64)>> {
    sqlx::query_as("SELECT o.path, h.active FROM households h JOIN org_nodes o ON o.id = h.grid_id WHERE h.id = $1")
        .bind(id)
        .fetch_optional(e)
        .await
}

/// A household's org path and pledge status (`None` where pledges has said nothing), in one read.
pub async fn household_for_score<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
) -> sqlx::Result<Option<(String, Option<i64>)>> {
    sqlx::query_as(
        "SELECT o.path, p.status FROM households h JOIN org_nodes o ON o.id = h.grid_id \
         LEFT JOIN pledges p ON p.household_id = h.id WHERE h.id = $1",
    )
    .bind(id)
    .fetch_optional(e)
    .await
}

/// Serialises ledger writes of one household (a row lock in PostgreSQL; SQLite's writer lock
/// covers it already).
pub async fn lock_household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET active = active WHERE id = $1").bind(id).execute(e).await?;
    Ok(())
}

pub async fn add_member<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO members (household_id, resident_id) VALUES ($1, $2) ON CONFLICT (household_id, resident_id) DO NOTHING")
        .bind(household_id)
        .bind(resident_id)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn remove_member<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM members WHERE household_id = $1 AND resident_id = $2")
        .bind(household_id)
        .bind(resident_id)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn is_member<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT resident_id FROM members WHERE household_id = $1 AND resident_id = $2")
            .bind(household_id)
            .bind(resident_id)
            .fetch_optional(e)
            .await?;
    Ok(found.is_some())
}

// ---- records ----

pub async fn record<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<RecordRow>> {
    sqlx::query_as(&format!("SELECT {RECORD_COLUMNS} FROM records WHERE id = $1")).bind(id).fetch_optional(e).await
}

pub async fn records_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    page: &Page,
) -> sqlx::Result<Vec<RecordRow>> {
    sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE household_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(household_id)
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.fetch_limit())
    .fetch_all(e)
    .await
}

/// Points already recorded (pending or counting) for a household under a rule in a year.
pub async fn decide_record<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    status: i64,
    points: i64,
    effective_from: Option<i64>,
    expires_at: Option<i64>,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE records SET status = $1, points = $2, effective_from = $3, expires_at = $4, decision_reason = $5 WHERE id = $6")
        .bind(status)
        .bind(points)
        .bind(effective_from)
        .bind(expires_at)
        .bind(reason)
        .bind(id)
        .execute(e)
        .await?;
    Ok(())
}

// ---- ledger ----

/// The hash the household's next entry chains after: its chain head (`ledger_heads`), absent
/// before its first entry.
pub async fn head_hash<'c, E: Executor<'c, Database = Any>>(e: E, household_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT hash FROM ledger_heads WHERE household_id = $1")
        .bind(household_id)
        .fetch_optional(e)
        .await
}

pub async fn insert_entry<'c, E: Executor<'c, Database = Any>>(e: E, row: &LedgerRow) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO ledger (household_id, record_id, resident_id, delta, effective_from, expires_at, rule_code, rule_version, \
         category, serious, reverses_seq, created_at, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         RETURNING seq",
    )
    .bind(&row.household_id)
    .bind(&row.record_id)
    .bind(&row.resident_id)
    .bind(row.delta)
    .bind(row.effective_from)
    .bind(row.expires_at)
    .bind(&row.rule_code)
    .bind(row.rule_version)
    .bind(row.category)
    .bind(row.serious)
    .bind(row.reverses_seq)
    .bind(row.created_at)
    .bind(&row.prev_hash)
    .bind(&row.hash)
    .fetch_one(e)
    .await
}

pub async fn entries_of<'c, E: Executor<'c, Database = Any>>(e: E, household_id: &str) -> sqlx::Result<Vec<LedgerRow>> {
    sqlx::query_as(&format!("SELECT {LEDGER_COLUMNS} FROM ledger WHERE household_id = $1 ORDER BY seq"))
        .bind(household_id)
        .fetch_all(e)
        .await
}

/// Every entry of the households after `after` and up to `until` (to the end without it), in
/// household and chain order: a page of the whole ledger.
pub async fn entries_between<'c, E: Executor<'c, Database = Any>>(
    e: E,
    after: &str,
    until: Option<&str>,
) -> sqlx::Result<Vec<LedgerRow>> {
    let upper = if until.is_some() { " AND household_id <= $2" } else { "" };
    let sql = format!("SELECT {LEDGER_COLUMNS} FROM ledger WHERE household_id > $1{upper} ORDER BY household_id, seq");
    let mut query = sqlx::query_as(&sql).bind(after);
    if let Some(until) = until {
        query = query.bind(until);
    }
    query.fetch_all(e).await
}

/// The record's entry that counts (or will): its latest own entry no later entry reversed.
///
/// Looked up within the record's household, through `ledger_household`: nothing indexes the
/// ledger by record, and by record alone PostgreSQL read the whole ledger for each objection,
/// resolution and reversal — 118 ms at 1,000,000 entries against 0.2 ms within a household —
/// while holding the household's lock (the crash campaign's full form fell behind on it).
pub async fn live_entry_of_record<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    record_id: &str,
) -> sqlx::Result<Option<LedgerRow>> {
    sqlx::query_as(&format!(
        "SELECT {LEDGER_COLUMNS} FROM ledger l WHERE household_id = $1 AND record_id = $2 AND reverses_seq IS NULL \
         AND NOT EXISTS (SELECT 1 FROM ledger r WHERE r.reverses_seq = l.seq) ORDER BY seq DESC LIMIT 1"
    ))
    .bind(household_id)
    .bind(record_id)
    .fetch_optional(e)
    .await
}

/// The record's latest own entry, reversed or not (what an upheld objection re-applies); within
/// its household, as [`live_entry_of_record`] explains.
pub async fn last_entry_of_record<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    record_id: &str,
) -> sqlx::Result<Option<LedgerRow>> {
    sqlx::query_as(&format!(
        "SELECT {LEDGER_COLUMNS} FROM ledger WHERE household_id = $1 AND record_id = $2 AND reverses_seq IS NULL \
         ORDER BY seq DESC LIMIT 1"
    ))
    .bind(household_id)
    .bind(record_id)
    .fetch_optional(e)
    .await
}

pub async fn set_frozen<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, frozen: bool) -> sqlx::Result<()> {
    sqlx::query("UPDATE records SET frozen = $2 WHERE id = $1").bind(id).bind(i64::from(frozen)).execute(e).await?;
    Ok(())
}

/// The next `limit` households after `after` living under the node at `path`, for verifying
/// every chain in a caller's scope a page at a time — with or without ledger entries: a chain
/// whose every entry was removed has only its head left.
pub async fn households_under<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path: &str,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    let upper = format!("{}0", path.strip_suffix('/').unwrap_or(path));
    sqlx::query_scalar(
        "SELECT h.id FROM households h JOIN org_nodes o ON o.id = h.grid_id \
         WHERE h.id > $1 AND o.path >= $2 AND o.path < $3 ORDER BY h.id LIMIT $4",
    )
    .bind(after)
    .bind(path)
    .bind(upper)
    .bind(limit)
    .fetch_all(e)
    .await
}

// ---- maintained figures ----

pub async fn household_grid<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT grid_id FROM households WHERE id = $1").bind(household_id).fetch_optional(e).await
}

/// (score, tier, redeemable) as last maintained.
pub async fn balance<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
) -> sqlx::Result<Option<(i64, String, i64)>> {
    sqlx::query_as("SELECT score, tier, redeemable FROM balances WHERE household_id = $1")
        .bind(household_id)
        .fetch_optional(e)
        .await
}

pub async fn upsert_balance<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    score: i64,
    tier: &str,
    redeemable: i64,
    at: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO balances (household_id, score, tier, redeemable, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (household_id) DO UPDATE SET score = excluded.score, tier = excluded.tier, \
         redeemable = excluded.redeemable, updated_at = excluded.updated_at",
    )
    .bind(household_id)
    .bind(score)
    .bind(tier)
    .bind(redeemable)
    .bind(at)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn add_grid_total<'c, E: Executor<'c, Database = Any>>(
    e: E,
    grid_id: &str,
    category: i64,
    month: &str,
    bonus: i64,
    deduction: i64,
    entries: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO grid_totals (grid_id, category, month, bonus_points, deduction_points, entries) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (grid_id, category, month) DO UPDATE SET bonus_points = grid_totals.bonus_points + excluded.bonus_points, \
         deduction_points = grid_totals.deduction_points + excluded.deduction_points, entries = grid_totals.entries + excluded.entries",
    )
    .bind(grid_id)
    .bind(category)
    .bind(month)
    .bind(bonus)
    .bind(deduction)
    .bind(entries)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn last_tick<'c, E: Executor<'c, Database = Any>>(e: E) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT last_tick FROM ticker WHERE id = 1").fetch_optional(e).await
}

pub async fn set_tick<'c, E: Executor<'c, Database = Any>>(e: E, at: i64) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO ticker (id, last_tick) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET last_tick = excluded.last_tick")
        .bind(at)
        .execute(e)
        .await?;
    Ok(())
}

/// Households with an entry that started or stopped counting in (after, upto].
pub async fn households_with_transitions<'c, E: Executor<'c, Database = Any>>(
    e: E,
    after: i64,
    upto: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT household_id FROM ledger WHERE effective_from > $1 AND effective_from <= $2 \
         UNION SELECT household_id FROM ledger WHERE expires_at > $1 AND expires_at <= $2",
    )
    .bind(after)
    .bind(upto)
    .fetch_all(e)
    .await
}

/// Active households under the node at `path` by maintained score, highest first.
pub async fn leaderboard<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, i64, String)>> {
    let upper = format!("{}0", path.strip_suffix('/').unwrap_or(path));
    sqlx::query_as(
        "SELECT b.household_id, b.score, b.tier FROM balances b JOIN households h ON h.id = b.household_id \
         JOIN org_nodes o ON o.id = h.grid_id WHERE o.path >= $1 AND o.path < $2 AND h.active = 1 \
         ORDER BY b.score DESC, b.household_id LIMIT $3",
    )
    .bind(path)
    .bind(upper)
    .bind(limit)
    .fetch_all(e)
    .await
}

/// Totals by category and month over the grids under `path`, months in [from, to].
pub async fn totals<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path: &str,
    from: &str,
    to: &str,
) -> sqlx::Result<Vec<(i64, String, i64, i64, i64)>> {
    let upper = format!("{}0", path.strip_suffix('/').unwrap_or(path));
    sqlx::query_as(
        "SELECT t.category, t.month, CAST(SUM(t.bonus_points) AS BIGINT), CAST(SUM(t.deduction_points) AS BIGINT), \
         CAST(SUM(t.entries) AS BIGINT) FROM grid_totals t JOIN org_nodes o ON o.id = t.grid_id \
         WHERE o.path >= $1 AND o.path < $2 AND t.month >= $3 AND t.month <= $4 GROUP BY t.category, t.month ORDER BY t.month, t.category",
    )
    .bind(path)
    .bind(upper)
    .bind(from)
    .bind(to)
    .fetch_all(e)
    .await
}

pub async fn entries_of_resident<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<Vec<LedgerRow>> {
    sqlx::query_as(&format!(
        "SELECT {LEDGER_COLUMNS} FROM ledger WHERE household_id = $1 AND resident_id = $2 ORDER BY seq"
    ))
    .bind(household_id)
    .bind(resident_id)
    .fetch_all(e)
    .await
}

// ---- pledges (read model) ----

/// The household's pledge status (PledgeStatus) and since when; None before any pledge.
pub async fn pledge<'c, E: Executor<'c, Database = Any>>(e: E, household_id: &str) -> sqlx::Result<Option<(i64, i64)>> {
    sqlx::query_as("SELECT status, since FROM pledges WHERE household_id = $1")
        .bind(household_id)
        .fetch_optional(e)
        .await
}

pub async fn set_pledge<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    status: i64,
    since: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO pledges (household_id, status, since) VALUES ($1, $2, $3) \
         ON CONFLICT (household_id) DO UPDATE SET status = excluded.status, since = excluded.since",
    )
    .bind(household_id)
    .bind(status)
    .bind(since)
    .execute(e)
    .await?;
    Ok(())
}

/// The household's held records, oldest first.
pub async fn held_records<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
) -> sqlx::Result<Vec<RecordRow>> {
    sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE household_id = $1 AND status = 6 ORDER BY submitted_at, id"
    ))
    .bind(household_id)
    .fetch_all(e)
    .await
}

/// A held record goes on: to review, or effective from `effective_from` until `expires_at`.
pub async fn release_record<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    status: i64,
    effective_from: Option<i64>,
    expires_at: Option<i64>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE records SET status = $2, effective_from = $3, expires_at = $4 WHERE id = $1 AND status = 6")
        .bind(id)
        .bind(status)
        .bind(effective_from)
        .bind(expires_at)
        .execute(e)
        .await?;
    Ok(())
}

// ---- set-based reads and multi-row writes, for batches ----

/// Rows per multi-row statement: the widest (records, 20 columns) stays far below SQLite's
/// 32,766 and PostgreSQL's 65,535 bound values.
const ROWS_PER_STATEMENT: usize = 500;

/// The caller's records for any of `request_ids`.
pub async fn records_by_requests<'c, E: Executor<'c, Database = Any>>(
    e: E,
    dialect: Dialect,
    recorded_by: &str,
    request_ids: &[&str],
) -> sqlx::Result<Vec<RecordRow>> {
    let mut placeholders = Placeholders::new(dialect);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE recorded_by = {} AND request_id IN ({})",
        placeholders.one(),
        placeholders.list(request_ids.len())
    );
    let mut query = sqlx::query_as(&sql).bind(recorded_by);
    for id in request_ids {
        query = query.bind(*id);
    }
    query.fetch_all(e).await
}

/// The multi-row INSERTs of `rows`, each statement built as it is taken (for a [`Queue`]).
///
/// [`Queue`]: jiaxin_kit::pipeline::Queue
pub fn record_inserts<'a>(dialect: Dialect, rows: &'a [&RecordRow]) -> impl Iterator<Item = Statement> + 'a {
    rows.chunks(ROWS_PER_STATEMENT).map(move |chunk| {
        let sql = format!("INSERT INTO records ({RECORD_COLUMNS}) VALUES {}", values(dialect, chunk.len(), 20));
        chunk.iter().fold(Statement::new(sql), |statement, r| {
            statement
                .bind(r.id.clone())
                .bind(r.household_id.clone())
                .bind(r.resident_id.clone())
                .bind(r.rule_code.clone())
                .bind(r.rule_version)
                .bind(r.points)
                .bind(r.status)
                .bind(r.occurred_at)
                .bind(r.place.clone())
                .bind(r.evidence.clone())
                .bind(r.note.clone())
                .bind(r.recorded_by.clone())
                .bind(r.submitted_at)
                .bind(r.effective_from)
                .bind(r.expires_at)
                .bind(r.decision_reason.clone())
                .bind(r.request_id.clone())
                .bind(r.year)
                .bind(r.needs_review)
                .bind(r.frozen)
        })
    })
}

/// A household's chain head: how many entries its chain has, and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub entries: i64,
    pub hash: String,
}

/// The households' chain heads (households without entries are absent).
pub async fn heads_of(
    conn: &mut sqlx::AnyConnection,
    households: &[&str],
) -> sqlx::Result<std::collections::HashMap<String, Head>> {
    let mut heads = std::collections::HashMap::new();
    for chunk in households.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT household_id, entries, hash FROM ledger_heads WHERE household_id IN ({})",
            Placeholders::new(Dialect::of(conn)).list(chunk.len())
        );
        let mut query = sqlx::query_as::<_, (String, i64, String)>(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&mut *conn).await?;
        heads.extend(rows.into_iter().map(|(household, entries, hash)| (household, Head { entries, hash })));
    }
    Ok(heads)
}

/// Moves chain heads past entries just appended, one row per household: (household, entries
/// appended, the last one's hash). A household's first entries start its head.
pub async fn advance_heads(conn: &mut sqlx::AnyConnection, moves: &[(&str, i64, &str)]) -> sqlx::Result<()> {
    for statement in head_advances(Dialect::of(conn), moves) {
        statement.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The statements of [`advance_heads`], built as they are taken.
pub fn head_advances<'a>(dialect: Dialect, moves: &'a [(&str, i64, &str)]) -> impl Iterator<Item = Statement> + 'a {
    moves.chunks(ROWS_PER_STATEMENT).map(move |chunk| {
        let sql = format!(
            "INSERT INTO ledger_heads (household_id, entries, hash) VALUES {} \
             ON CONFLICT (household_id) DO UPDATE SET entries = ledger_heads.entries + excluded.entries, \
             hash = excluded.hash",
            values(dialect, chunk.len(), 3)
        );
        chunk.iter().fold(Statement::new(sql), |statement, (household, appended, hash)| {
            statement.bind((*household).to_owned()).bind(*appended).bind((*hash).to_owned())
        })
    })
}

/// Every ledger entry of the households, in ledger order.
pub async fn entries_of_households(
    conn: &mut sqlx::AnyConnection,
    households: &[&str],
) -> sqlx::Result<Vec<LedgerRow>> {
    let mut rows = Vec::new();
    for chunk in households.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger WHERE household_id IN ({}) ORDER BY seq",
            Placeholders::new(Dialect::of(conn)).list(chunk.len())
        );
        let mut query = sqlx::query_as::<_, LedgerRow>(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// Of `households`, those whose maintained balance cannot be carried forward to `at` by adding
/// new entries (`Tiers::advance`), so their whole ledger must be evaluated: entries but no
/// balance, a serious deduction or a reversal on the books, or an entry written, or starting or
/// stopping to count, since the balance was computed. Returns few rows however long the
/// households' ledgers are, where reading the ledgers would stream every entry.
pub async fn households_needing_whole_ledger(
    conn: &mut sqlx::AnyConnection,
    households: &[&str],
    at: i64,
) -> sqlx::Result<std::collections::HashSet<String>> {
    let mut found = std::collections::HashSet::new();
    for chunk in households.chunks(ROWS_PER_STATEMENT) {
        // Anonymous parameters on SQLite bind in textual order: the list, then `at` twice.
        let mut placeholders = Placeholders::new(Dialect::of(conn));
        let ids = placeholders.list(chunk.len());
        let sql = format!(
            "SELECT DISTINCT l.household_id FROM ledger l LEFT JOIN balances b ON b.household_id = l.household_id \
             WHERE l.household_id IN ({ids}) AND (b.household_id IS NULL OR l.serious = 1 \
                 OR l.reverses_seq IS NOT NULL OR l.created_at > b.updated_at \
                 OR (l.effective_from > b.updated_at AND l.effective_from <= {}) \
                 OR (l.expires_at > b.updated_at AND l.expires_at <= {}))",
            placeholders.one(),
            placeholders.one()
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        query = query.bind(at).bind(at);
        found.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// The multi-row INSERTs appending `rows` in the order given (their seq follows it), each
/// statement built as it is taken.
pub fn entry_inserts(dialect: Dialect, rows: &[LedgerRow]) -> impl Iterator<Item = Statement> + '_ {
    rows.chunks(ROWS_PER_STATEMENT).map(move |chunk| {
        let sql = format!(
            "INSERT INTO ledger (household_id, record_id, resident_id, delta, effective_from, expires_at, rule_code, \
             rule_version, category, serious, reverses_seq, created_at, prev_hash, hash) VALUES {}",
            values(dialect, chunk.len(), 14)
        );
        chunk.iter().fold(Statement::new(sql), |statement, row| {
            statement
                .bind(row.household_id.clone())
                .bind(row.record_id.clone())
                .bind(row.resident_id.clone())
                .bind(row.delta)
                .bind(row.effective_from)
                .bind(row.expires_at)
                .bind(row.rule_code.clone())
                .bind(row.rule_version)
                .bind(row.category)
                .bind(row.serious)
                .bind(row.reverses_seq)
                .bind(row.created_at)
                .bind(row.prev_hash.clone())
                .bind(row.hash.clone())
        })
    })
}

/// What grid totals gain, (grid, category, month) → (bonus, deduction, entries), keys unique:
/// the statements adding it (a batch's few hundred keys at most, so built at once).
pub fn grid_total_additions(
    dialect: Dialect,
    totals: &std::collections::BTreeMap<(String, i64, String), (i64, i64, i64)>,
) -> Vec<Statement> {
    let totals: Vec<_> = totals.iter().collect();
    totals
        .chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let sql = format!(
                "INSERT INTO grid_totals (grid_id, category, month, bonus_points, deduction_points, entries) VALUES {} \
             ON CONFLICT (grid_id, category, month) DO UPDATE SET \
             bonus_points = grid_totals.bonus_points + excluded.bonus_points, \
             deduction_points = grid_totals.deduction_points + excluded.deduction_points, \
             entries = grid_totals.entries + excluded.entries",
                values(dialect, chunk.len(), 6)
            );
            chunk.iter().fold(
                Statement::new(sql),
                |statement, ((grid, category, month), (bonus, deduction, entries))| {
                    statement
                        .bind(grid.clone())
                        .bind(*category)
                        .bind(month.clone())
                        .bind(*bonus)
                        .bind(*deduction)
                        .bind(*entries)
                },
            )
        })
        .collect()
}

/// A household's maintained balance and the moment it was computed for.
pub struct Balance {
    pub score: i64,
    pub tier: String,
    pub redeemable: i64,
    pub updated_at: i64,
}

/// Up to `limit` maintained balances of the households after `after`, in household order.
pub async fn balances_after<'c, E: Executor<'c, Database = Any>>(
    e: E,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, Balance)>> {
    let rows: Vec<(String, i64, String, i64, i64)> = sqlx::query_as(
        "SELECT household_id, score, tier, redeemable, updated_at FROM balances WHERE household_id > $1 \
         ORDER BY household_id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(e)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(household, score, tier, redeemable, updated_at)| {
            (household, Balance { score, tier, redeemable, updated_at })
        })
        .collect())
}

/// The maintained balances of `households`, by household (none for a household without one).
pub async fn balances_of(
    conn: &mut sqlx::AnyConnection,
    households: &[&str],
) -> sqlx::Result<std::collections::HashMap<String, Balance>> {
    let mut balances = std::collections::HashMap::new();
    for chunk in households.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT household_id, score, tier, redeemable, updated_at FROM balances WHERE household_id IN ({})",
            Placeholders::new(Dialect::of(conn)).list(chunk.len())
        );
        let mut query = sqlx::query_as::<_, (String, i64, String, i64, i64)>(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for (household, score, tier, redeemable, updated_at) in query.fetch_all(&mut *conn).await? {
            balances.insert(household, Balance { score, tier, redeemable, updated_at });
        }
    }
    Ok(balances)
}

/// Writes balances computed for the moment `at`: (household, score, tier, redeemable),
/// households unique. The statements, built as they are taken.
pub fn balance_upserts(
    dialect: Dialect,
    rows: &[(String, i64, String, i64)],
    at: i64,
) -> impl Iterator<Item = Statement> + '_ {
    rows.chunks(ROWS_PER_STATEMENT).map(move |chunk| {
        let sql = format!(
            "INSERT INTO balances (household_id, score, tier, redeemable, updated_at) VALUES {} \
             ON CONFLICT (household_id) DO UPDATE SET score = excluded.score, tier = excluded.tier, \
             redeemable = excluded.redeemable, updated_at = excluded.updated_at",
            values(dialect, chunk.len(), 5)
        );
        chunk.iter().fold(Statement::new(sql), |statement, (household, score, tier, redeemable)| {
            statement.bind(household.clone()).bind(*score).bind(tier.clone()).bind(*redeemable).bind(at)
        })
    })
}
