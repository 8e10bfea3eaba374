//! The council's SQL. Functions take any executor so operations can run them in one transaction.

use jiaxin_kit::sql::{placeholders, subtree_range};
use sqlx::{Any, Executor};

// ---- identity's read model ----

pub use jiaxin_kit::orgmodel::upsert_org_node;

/// The council's tables that carry an org path, for `OrgNodeMoved`.
pub const PLACED_TABLES: &[&str] = &["org_nodes", "tasks"];

pub async fn org_node<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<(String, i64)>> {
    sqlx::query_as("SELECT path, kind FROM org_nodes WHERE id = $1").bind(id).fetch_optional(e).await
}

pub async fn upsert_household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, address: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO households (id, address) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET address = excluded.address")
        .bind(id)
        .bind(address)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn household_address<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT address FROM households WHERE id = $1").bind(id).fetch_optional(e).await
}

pub async fn add_membership<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO memberships (household_id, resident_id, current) VALUES ($1, $2, 1) \
         ON CONFLICT (household_id, resident_id) DO UPDATE SET current = 1",
    )
    .bind(household_id)
    .bind(resident_id)
    .execute(e)
    .await?;
    Ok(())
}

/// The resident left the household; the history stays (recusal still sees it).
pub async fn end_membership<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE memberships SET current = 0 WHERE household_id = $1 AND resident_id = $2")
        .bind(household_id)
        .bind(resident_id)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn is_current_member<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<bool> {
    let hit: Option<i64> = sqlx::query_scalar(
        "SELECT current FROM memberships WHERE household_id = $1 AND resident_id = $2 AND current = 1",
    )
    .bind(household_id)
    .bind(resident_id)
    .fetch_optional(e)
    .await?;
    Ok(hit.is_some())
}

pub async fn set_pledged<'c, E: Executor<'c, Database = Any>>(e: E, household_id: &str, at: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO household_pledges (household_id, signed_at) VALUES ($1, $2) \
         ON CONFLICT (household_id) DO UPDATE SET signed_at = excluded.signed_at",
    )
    .bind(household_id)
    .bind(at)
    .execute(e)
    .await?;
    Ok(())
}

/// When the household last signed its pledge.
pub async fn pledged_at<'c, E: Executor<'c, Database = Any>>(e: E, household_id: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT signed_at FROM household_pledges WHERE household_id = $1")
        .bind(household_id)
        .fetch_optional(e)
        .await
}

/// Whether `resident_id` ever belonged to the household, or ever shared a household with anyone
/// who ever belonged to it (family ties as household history records them).
pub async fn related<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<bool> {
    let hit: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(1 AS BIGINT) FROM memberships mine JOIN memberships kin ON kin.household_id = mine.household_id \
         WHERE mine.resident_id = $2 AND kin.resident_id IN \
         (SELECT resident_id FROM memberships WHERE household_id = $1) \
         UNION SELECT CAST(1 AS BIGINT) FROM memberships WHERE household_id = $1 AND resident_id = $2 LIMIT 1",
    )
    .bind(household_id)
    .bind(resident_id)
    .fetch_optional(e)
    .await?;
    Ok(hit.is_some())
}

// ---- councils ----

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CouncilRow {
    pub id: String,
    pub org_node_id: String,
    pub name: String,
    pub quorum: i64,
    pub majority_permille: i64,
    pub review_days: i64,
    pub repair_wait_days_minor: i64,
    pub repair_wait_days_general: i64,
    pub repair_wait_days_serious: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub account_id: String,
    pub display_name: String,
    pub kind: i64,
    pub term_from: String,
    pub term_to: String,
}

const COUNCIL_COLUMNS: &str = "id, org_node_id, name, quorum, majority_permille, review_days, \
     repair_wait_days_minor, repair_wait_days_general, repair_wait_days_serious";

pub async fn council_of_node<'c, E: Executor<'c, Database = Any>>(
    e: E,
    org_node_id: &str,
) -> sqlx::Result<Option<CouncilRow>> {
    sqlx::query_as(&format!("SELECT {COUNCIL_COLUMNS} FROM councils WHERE org_node_id = $1"))
        .bind(org_node_id)
        .fetch_optional(e)
        .await
}

/// The council of the village or community on `path` (only those have councils).
pub async fn council_on_path<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path: &[&str],
) -> sqlx::Result<Option<CouncilRow>> {
    if path.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {COUNCIL_COLUMNS} FROM councils WHERE org_node_id IN ({}) LIMIT 1",
        placeholders(1, path.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in path {
        query = query.bind(*id);
    }
    query.fetch_optional(e).await
}

pub async fn save_council<'c, E: Executor<'c, Database = Any>>(e: E, c: &CouncilRow, at: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO councils (id, org_node_id, name, quorum, majority_permille, review_days, \
         repair_wait_days_minor, repair_wait_days_general, repair_wait_days_serious, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $8, $9, $10, $7) ON CONFLICT (org_node_id) DO UPDATE SET name = excluded.name, \
         quorum = excluded.quorum, majority_permille = excluded.majority_permille, \
         review_days = excluded.review_days, repair_wait_days_minor = excluded.repair_wait_days_minor, \
         repair_wait_days_general = excluded.repair_wait_days_general, \
         repair_wait_days_serious = excluded.repair_wait_days_serious, updated_at = excluded.updated_at",
    )
    .bind(&c.id)
    .bind(&c.org_node_id)
    .bind(&c.name)
    .bind(c.quorum)
    .bind(c.majority_permille)
    .bind(c.review_days)
    .bind(at)
    .bind(c.repair_wait_days_minor)
    .bind(c.repair_wait_days_general)
    .bind(c.repair_wait_days_serious)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn members<'c, E: Executor<'c, Database = Any>>(e: E, council_id: &str) -> sqlx::Result<Vec<MemberRow>> {
    sqlx::query_as(
        "SELECT account_id, display_name, kind, term_from, term_to FROM council_members WHERE council_id = $1 \
         ORDER BY account_id",
    )
    .bind(council_id)
    .fetch_all(e)
    .await
}

pub async fn seat_member<'c, E: Executor<'c, Database = Any>>(
    e: E,
    council_id: &str,
    m: &MemberRow,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO council_members (council_id, account_id, display_name, kind, term_from, term_to) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (council_id, account_id) DO UPDATE SET \
         display_name = excluded.display_name, kind = excluded.kind, term_from = excluded.term_from, \
         term_to = excluded.term_to",
    )
    .bind(council_id)
    .bind(&m.account_id)
    .bind(&m.display_name)
    .bind(m.kind)
    .bind(&m.term_from)
    .bind(&m.term_to)
    .execute(e)
    .await?;
    Ok(())
}

// ---- tasks and votes ----

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    pub kind: i64,
    pub case_id: String,
    pub record_id: String,
    pub household_id: String,
    pub path: String,
    pub record: Vec<u8>,
    pub recorded_by: String,
    pub rule_code: String,
    pub points: i64,
    pub points_min: i64,
    pub points_max: i64,
    pub disclosure_days: i64,
    pub severity: i64,
    pub status: i64,
    pub opened_at: i64,
    pub due_at: i64,
    pub outcome: i64,
    pub amended_points: i64,
    pub reason: String,
    pub decided_at: Option<i64>,
    pub disclosed_until: Option<i64>,
}

const TASK_COLUMNS: &str = "id, kind, case_id, record_id, household_id, path, record, recorded_by, rule_code, points, \
     points_min, points_max, disclosure_days, severity, status, opened_at, due_at, outcome, amended_points, reason, \
     decided_at, disclosed_until";

/// Opens a task; false when the record's review task already exists (a redelivered event).
pub async fn insert_task<'c, E: Executor<'c, Database = Any>>(e: E, t: &TaskRow) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO tasks (id, kind, case_id, record_id, household_id, path, record, recorded_by, rule_code, points, \
         points_min, points_max, disclosure_days, severity, status, opened_at, due_at) \
         VALUES ($1, $15, $16, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $17, $12, $13, $14) \
         ON CONFLICT (record_id) WHERE kind = 1 DO NOTHING",
    )
    .bind(&t.id)
    .bind(&t.record_id)
    .bind(&t.household_id)
    .bind(&t.path)
    .bind(&t.record)
    .bind(&t.recorded_by)
    .bind(&t.rule_code)
    .bind(t.points)
    .bind(t.points_min)
    .bind(t.points_max)
    .bind(t.disclosure_days)
    .bind(t.status)
    .bind(t.opened_at)
    .bind(t.due_at)
    .bind(t.kind)
    .bind(&t.case_id)
    .bind(t.severity)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn task<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<TaskRow>> {
    sqlx::query_as(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1")).bind(id).fetch_optional(e).await
}

/// Serialises votes on one task (a row lock in PostgreSQL; SQLite's writer lock already does).
pub async fn lock_task<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE tasks SET status = status WHERE id = $1").bind(id).execute(e).await?;
    Ok(())
}

/// The review task of a record.
pub async fn review_of_record<'c, E: Executor<'c, Database = Any>>(
    e: E,
    record_id: &str,
) -> sqlx::Result<Option<TaskRow>> {
    sqlx::query_as(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE record_id = $1 AND kind = 1"))
        .bind(record_id)
        .fetch_optional(e)
        .await
}

/// Tasks under a village's path, by id (time order), optionally of one status; `desc` for newest first.
pub async fn tasks_under<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path_prefix: &str,
    status: i64,
    after: Option<&str>,
    limit: i64,
    desc: bool,
) -> sqlx::Result<Vec<TaskRow>> {
    let (from, to) = subtree_range(path_prefix);
    let (cmp, order) = if desc { ("<", "DESC") } else { (">", "ASC") };
    sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE path >= $1 AND path < $2 AND ($3 = 0 OR status = $3) \
         AND ($4 = '' OR id {cmp} $4) ORDER BY id {order} LIMIT $5"
    ))
    .bind(from)
    .bind(to)
    .bind(status)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(e)
    .await
}

pub async fn household_tasks<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    except: &str,
    limit: i64,
) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE household_id = $1 AND id <> $2 ORDER BY opened_at DESC LIMIT $3"
    ))
    .bind(household_id)
    .bind(except)
    .bind(limit)
    .fetch_all(e)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VoteRow {
    pub account_id: String,
    pub choice: i64,
    pub amended_points: i64,
    pub reason: String,
    pub cast_at: i64,
}

pub async fn votes<'c, E: Executor<'c, Database = Any>>(e: E, task_id: &str) -> sqlx::Result<Vec<VoteRow>> {
    sqlx::query_as(
        "SELECT account_id, choice, amended_points, reason, cast_at FROM votes WHERE task_id = $1 ORDER BY cast_at, account_id",
    )
    .bind(task_id)
    .fetch_all(e)
    .await
}

pub async fn insert_vote<'c, E: Executor<'c, Database = Any>>(e: E, task_id: &str, v: &VoteRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO votes (task_id, account_id, choice, amended_points, reason, cast_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(task_id)
    .bind(&v.account_id)
    .bind(v.choice)
    .bind(v.amended_points)
    .bind(&v.reason)
    .bind(v.cast_at)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn decide_task<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    outcome: i64,
    amended_points: i64,
    reason: &str,
    decided_at: i64,
    disclosed_until: Option<i64>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tasks SET status = 2, outcome = $2, amended_points = $3, reason = $4, decided_at = $5, \
         disclosed_until = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(outcome)
    .bind(amended_points)
    .bind(reason)
    .bind(decided_at)
    .bind(disclosed_until)
    .execute(e)
    .await?;
    Ok(())
}

/// Open tasks past their deadline not yet reminded of; marks them reminded.
pub async fn take_overdue<'c, E: Executor<'c, Database = Any>>(e: E, now: i64) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(&format!(
        "UPDATE tasks SET reminded = 1 WHERE status = 1 AND reminded = 0 AND due_at < $1 RETURNING {TASK_COLUMNS}"
    ))
    .bind(now)
    .fetch_all(e)
    .await
}

/// Decided tasks whose disclosure period ended, not yet closed; marks them closed.
pub async fn take_closed_disclosures<'c, E: Executor<'c, Database = Any>>(
    e: E,
    now: i64,
) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(&format!(
        "UPDATE tasks SET disclosure_closed = 1 WHERE disclosure_closed = 0 AND disclosed_until IS NOT NULL \
         AND disclosed_until <= $1 RETURNING {TASK_COLUMNS}"
    ))
    .bind(now)
    .fetch_all(e)
    .await
}

/// Tasks of a village on its disclosure list at `now`.
pub async fn disclosed_under<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path_prefix: &str,
    now: i64,
) -> sqlx::Result<Vec<TaskRow>> {
    let (from, to) = subtree_range(path_prefix);
    sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE path >= $1 AND path < $2 AND disclosed_until > $3 \
         AND decided_at <= $3 ORDER BY decided_at, id"
    ))
    .bind(from)
    .bind(to)
    .bind(now)
    .fetch_all(e)
    .await
}

// ---- objections and repairs ----

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ObjectionRow {
    pub id: String,
    pub record_id: String,
    pub household_id: String,
    pub path: String,
    pub reason: String,
    pub filed_by: String,
    pub filed_at: i64,
    pub due_at: i64,
    pub escalated: i64,
    pub task_id: String,
    pub status: i64,
    pub outcome: i64,
    pub amended_points: i64,
    pub resolved_at: Option<i64>,
}

const OBJECTION_COLUMNS: &str = "id, record_id, household_id, path, reason, filed_by, filed_at, due_at, escalated, \
     task_id, status, outcome, amended_points, resolved_at";

pub async fn insert_objection<'c, E: Executor<'c, Database = Any>>(e: E, o: &ObjectionRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO objections ({OBJECTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&o.id)
    .bind(&o.record_id)
    .bind(&o.household_id)
    .bind(&o.path)
    .bind(&o.reason)
    .bind(&o.filed_by)
    .bind(o.filed_at)
    .bind(o.due_at)
    .bind(o.escalated)
    .bind(&o.task_id)
    .bind(o.status)
    .bind(o.outcome)
    .bind(o.amended_points)
    .bind(o.resolved_at)
    .execute(e)
    .await?;
    Ok(())
}

/// Every objection to a record, newest first.
pub async fn objections_of_record<'c, E: Executor<'c, Database = Any>>(
    e: E,
    record_id: &str,
) -> sqlx::Result<Vec<ObjectionRow>> {
    sqlx::query_as(&format!("SELECT {OBJECTION_COLUMNS} FROM objections WHERE record_id = $1 ORDER BY filed_at DESC"))
        .bind(record_id)
        .fetch_all(e)
        .await
}

pub async fn objections_under<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path_prefix: &str,
    status: i64,
) -> sqlx::Result<Vec<ObjectionRow>> {
    let (from, to) = subtree_range(path_prefix);
    sqlx::query_as(&format!(
        "SELECT {OBJECTION_COLUMNS} FROM objections WHERE path >= $1 AND path < $2 AND ($3 = 0 OR status = $3) \
         ORDER BY id LIMIT 1000"
    ))
    .bind(from)
    .bind(to)
    .bind(status)
    .fetch_all(e)
    .await
}

pub async fn resolve_objection<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    outcome: i64,
    amended_points: i64,
    at: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE objections SET status = 2, outcome = $2, amended_points = $3, resolved_at = $4 WHERE id = $1")
        .bind(id)
        .bind(outcome)
        .bind(amended_points)
        .bind(at)
        .execute(e)
        .await?;
    Ok(())
}

/// Open objections past their deadline not yet escalated; marks them escalated.
pub async fn take_overdue_objections<'c, E: Executor<'c, Database = Any>>(
    e: E,
    now: i64,
) -> sqlx::Result<Vec<ObjectionRow>> {
    sqlx::query_as(&format!(
        "UPDATE objections SET escalated = 1 WHERE status = 1 AND escalated = 0 AND due_at < $1 \
         RETURNING {OBJECTION_COLUMNS}"
    ))
    .bind(now)
    .fetch_all(e)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RepairRow {
    pub id: String,
    pub record_id: String,
    pub household_id: String,
    pub statement: String,
    pub evidence: String,
    pub applied_by: String,
    pub applied_at: i64,
    pub task_id: String,
    pub status: i64,
    pub approved: i64,
    pub decided_at: Option<i64>,
}

const REPAIR_COLUMNS: &str =
    "id, record_id, household_id, statement, evidence, applied_by, applied_at, task_id, status, approved, decided_at";

pub async fn insert_repair<'c, E: Executor<'c, Database = Any>>(e: E, r: &RepairRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO repairs ({REPAIR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&r.id)
    .bind(&r.record_id)
    .bind(&r.household_id)
    .bind(&r.statement)
    .bind(&r.evidence)
    .bind(&r.applied_by)
    .bind(r.applied_at)
    .bind(&r.task_id)
    .bind(r.status)
    .bind(r.approved)
    .bind(r.decided_at)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn repairs_of_record<'c, E: Executor<'c, Database = Any>>(
    e: E,
    record_id: &str,
) -> sqlx::Result<Vec<RepairRow>> {
    sqlx::query_as(&format!("SELECT {REPAIR_COLUMNS} FROM repairs WHERE record_id = $1 ORDER BY applied_at DESC"))
        .bind(record_id)
        .fetch_all(e)
        .await
}

pub async fn decide_repair<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    approved: bool,
    at: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE repairs SET status = 2, approved = $2, decided_at = $3 WHERE id = $1")
        .bind(id)
        .bind(i64::from(approved))
        .bind(at)
        .execute(e)
        .await?;
    Ok(())
}
