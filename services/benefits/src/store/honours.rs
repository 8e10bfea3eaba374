//! The annual evaluation: its inputs read set-wise from the read models, and its results.

use jiaxin_kit::{sql::values, storage::Dialect};
use sqlx::{Any, AnyConnection, Executor};

/// Current households under a path: (id, path).
pub async fn households_under(conn: &mut AnyConnection, from: &str, to: &str) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT id, path FROM households WHERE dissolved = 0 AND path >= $1 AND path < $2")
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await
}

/// Pledge moments of households under a path: (id, pledged_at, revoked_at).
pub async fn pledges_under(
    conn: &mut AnyConnection,
    from: &str,
    to: &str,
) -> sqlx::Result<Vec<(String, Option<i64>, Option<i64>)>> {
    sqlx::query_as(
        "SELECT s.household_id, s.pledged_at, s.revoked_at FROM standings s JOIN households h ON h.id = s.household_id \
         WHERE h.dissolved = 0 AND h.path >= $1 AND h.path < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await
}

/// Score changes before `end` of households under a path, in no particular order (sorting half
/// a million rows is the caller's cheaper job, per household): (household, at, score, tier).
pub async fn history_under(
    conn: &mut AnyConnection,
    from: &str,
    to: &str,
    end: i64,
) -> sqlx::Result<Vec<(String, i64, i64, String)>> {
    sqlx::query_as(
        "SELECT s.household_id, s.at, s.score, s.tier FROM score_history s JOIN households h ON h.id = s.household_id \
         WHERE h.dissolved = 0 AND h.path >= $1 AND h.path < $2 AND s.at < $3",
    )
    .bind(from)
    .bind(to)
    .bind(end)
    .fetch_all(&mut *conn)
    .await
}

/// Loans disbursed to current households under a path: (household path, bad).
pub async fn loans_under(conn: &mut AnyConnection, from: &str, to: &str) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT h.path, l.bad FROM loans l JOIN households h ON h.id = l.household_id \
         WHERE l.disbursed = 1 AND h.dissolved = 0 AND h.path >= $1 AND h.path < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await
}

/// Households under a path with a serious deduction counting at some moment of [start, end),
/// not reversed.
pub async fn serious_under(
    conn: &mut AnyConnection,
    from: &str,
    to: &str,
    start: i64,
    end: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT d.household_id FROM serious_deductions d JOIN households h ON h.id = d.household_id \
         WHERE h.path >= $1 AND h.path < $2 AND d.reversed_at IS NULL AND d.effective_from IS NOT NULL \
         AND d.effective_from < $4 AND d.expires_at > $3",
    )
    .bind(from)
    .bind(to)
    .bind(start)
    .bind(end)
    .fetch_all(&mut *conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EvaluationRow {
    pub id: String,
    pub year: i64,
    pub org_node_id: String,
    pub path: String,
    pub status: i64,
    pub households: i64,
    pub credit_households: i64,
    pub villages: i64,
    pub credit_villages: i64,
    pub criteria: String,
    pub computed_at: i64,
    pub published_by: String,
    pub published_at: Option<i64>,
}

const EVALUATION_COLUMNS: &str = "id, year, org_node_id, path, status, households, credit_households, villages, \
     credit_villages, criteria, computed_at, published_by, published_at";

pub async fn evaluation<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<EvaluationRow>> {
    sqlx::query_as(&format!("SELECT {EVALUATION_COLUMNS} FROM evaluations WHERE id = $1"))
        .bind(id)
        .fetch_optional(e)
        .await
}

pub async fn evaluation_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    year: i64,
    org_node_id: &str,
) -> sqlx::Result<Option<EvaluationRow>> {
    sqlx::query_as(&format!("SELECT {EVALUATION_COLUMNS} FROM evaluations WHERE year = $1 AND org_node_id = $2"))
        .bind(year)
        .bind(org_node_id)
        .fetch_optional(e)
        .await
}

/// Replaces a draft's results: the evaluation row, then its households and villages.
pub async fn replace_evaluation(
    conn: &mut AnyConnection,
    row: &EvaluationRow,
    households: &[HouseholdResult],
    villages: &[VillageResult],
) -> sqlx::Result<()> {
    for table in ["honour_households", "honour_villages"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE evaluation_id = $1")).bind(&row.id).execute(&mut *conn).await?;
    }
    sqlx::query("DELETE FROM evaluations WHERE id = $1").bind(&row.id).execute(&mut *conn).await?;
    sqlx::query(&format!(
        "INSERT INTO evaluations ({EVALUATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&row.id)
    .bind(row.year)
    .bind(&row.org_node_id)
    .bind(&row.path)
    .bind(row.status)
    .bind(row.households)
    .bind(row.credit_households)
    .bind(row.villages)
    .bind(row.credit_villages)
    .bind(&row.criteria)
    .bind(row.computed_at)
    .bind(&row.published_by)
    .bind(row.published_at)
    .execute(&mut *conn)
    .await?;
    let dialect = Dialect::of(conn);
    for chunk in households.chunks(500) {
        let sql = format!(
            "INSERT INTO honour_households (evaluation_id, household_id, village_id, path, honoured, lowest_tier, \
             serious, pledged, score_end) VALUES {}",
            values(dialect, chunk.len(), 9)
        );
        let mut query = sqlx::query(&sql);
        for h in chunk {
            query = query
                .bind(&row.id)
                .bind(&h.household_id)
                .bind(&h.village_id)
                .bind(&h.path)
                .bind(h.honoured)
                .bind(&h.lowest_tier)
                .bind(h.serious)
                .bind(h.pledged)
                .bind(h.score_end);
        }
        query.execute(&mut *conn).await?;
    }
    for chunk in villages.chunks(500) {
        let sql = format!(
            "INSERT INTO honour_villages (evaluation_id, village_id, path, households, pledged, credit_households, \
             average_score, loans, bad_loans, honoured) VALUES {}",
            values(dialect, chunk.len(), 10)
        );
        let mut query = sqlx::query(&sql);
        for v in chunk {
            query = query
                .bind(&row.id)
                .bind(&v.village_id)
                .bind(&v.path)
                .bind(v.households)
                .bind(v.pledged)
                .bind(v.credit_households)
                .bind(v.average_score)
                .bind(v.loans)
                .bind(v.bad_loans)
                .bind(v.honoured);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

pub async fn publish<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, by: &str, at: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE evaluations SET status = 2, published_by = $2, published_at = $3 WHERE id = $1 AND status = 1",
    )
    .bind(id)
    .bind(by)
    .bind(at)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One household's result (flags are 0/1 as stored).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HouseholdResult {
    pub household_id: String,
    pub village_id: String,
    pub path: String,
    pub honoured: i64,
    pub lowest_tier: String,
    pub serious: i64,
    pub pledged: i64,
    pub score_end: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VillageResult {
    pub village_id: String,
    pub path: String,
    pub households: i64,
    pub pledged: i64,
    pub credit_households: i64,
    pub average_score: i64,
    pub loans: i64,
    pub bad_loans: i64,
    pub honoured: i64,
}

pub async fn household_result<'c, E: Executor<'c, Database = Any>>(
    e: E,
    evaluation_id: &str,
    household_id: &str,
) -> sqlx::Result<Option<HouseholdResult>> {
    sqlx::query_as(
        "SELECT household_id, village_id, path, honoured, lowest_tier, serious, pledged, score_end \
         FROM honour_households WHERE evaluation_id = $1 AND household_id = $2",
    )
    .bind(evaluation_id)
    .bind(household_id)
    .fetch_optional(e)
    .await
}

pub async fn village_result<'c, E: Executor<'c, Database = Any>>(
    e: E,
    evaluation_id: &str,
    village_id: &str,
) -> sqlx::Result<Option<VillageResult>> {
    sqlx::query_as(
        "SELECT village_id, path, households, pledged, credit_households, average_score, loans, bad_loans, honoured \
         FROM honour_villages WHERE evaluation_id = $1 AND village_id = $2",
    )
    .bind(evaluation_id)
    .bind(village_id)
    .fetch_optional(e)
    .await
}

/// The evaluations of a year, newest first: a subject is looked up in the one that covers it.
pub async fn evaluations_of_year<'c, E: Executor<'c, Database = Any>>(
    e: E,
    year: i64,
) -> sqlx::Result<Vec<EvaluationRow>> {
    sqlx::query_as(&format!("SELECT {EVALUATION_COLUMNS} FROM evaluations WHERE year = $1 ORDER BY computed_at DESC"))
        .bind(year)
        .fetch_all(e)
        .await
}

/// Honoured households under a path, by id, a page at a time.
pub async fn honoured_households(
    conn: &mut AnyConnection,
    evaluation_id: &str,
    (from, to): (&str, &str),
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT household_id, village_id FROM honour_households WHERE evaluation_id = $1 AND honoured = 1 \
         AND path >= $2 AND path < $3 AND household_id > $4 ORDER BY household_id LIMIT $5",
    )
    .bind(evaluation_id)
    .bind(from)
    .bind(to)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

/// Villages under a path, by id, a page at a time; `honoured_only` for the honours list.
pub async fn villages(
    conn: &mut AnyConnection,
    evaluation_id: &str,
    (from, to): (&str, &str),
    honoured_only: bool,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<VillageResult>> {
    sqlx::query_as(
        "SELECT village_id, path, households, pledged, credit_households, average_score, loans, bad_loans, honoured \
         FROM honour_villages WHERE evaluation_id = $1 AND ($2 = 0 OR honoured = 1) \
         AND path >= $3 AND path < $4 AND village_id > $5 ORDER BY village_id LIMIT $6",
    )
    .bind(evaluation_id)
    .bind(i64::from(honoured_only))
    .bind(from)
    .bind(to)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

/// Every honoured household of an evaluation with its village (for the published events).
pub async fn honoured_household_ids<'c, E: Executor<'c, Database = Any>>(
    e: E,
    evaluation_id: &str,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT household_id, village_id FROM honour_households WHERE evaluation_id = $1 AND honoured = 1 \
         ORDER BY household_id",
    )
    .bind(evaluation_id)
    .fetch_all(e)
    .await
}

/// The ids of the honoured villages of an evaluation (for the published event).
pub async fn honoured_village_ids<'c, E: Executor<'c, Database = Any>>(
    e: E,
    evaluation_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT village_id FROM honour_villages WHERE evaluation_id = $1 AND honoured = 1 ORDER BY village_id",
    )
    .bind(evaluation_id)
    .fetch_all(e)
    .await
}
