//! The points shop: redemptions and the spending they put on a household's standing.

use sqlx::{Any, Executor};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RedemptionRow {
    pub id: String,
    pub benefit_id: String,
    pub household_id: String,
    pub quantity: i64,
    pub points: i64,
    pub status: i64,
    pub client_key: String,
    pub redeemed_by: String,
    pub redeemed_at: i64,
    pub year: i64,
    pub cancelled_by: String,
    pub cancelled_at: Option<i64>,
    pub cancel_reason: String,
}

const COLUMNS: &str = "id, benefit_id, household_id, quantity, points, status, client_key, redeemed_by, \
     redeemed_at, year, cancelled_by, cancelled_at, cancel_reason";

pub async fn redemption<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<RedemptionRow>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM redemptions WHERE id = $1")).bind(id).fetch_optional(e).await
}

/// An earlier redemption by the same account under the same client key.
pub async fn by_client_key<'c, E: Executor<'c, Database = Any>>(
    e: E,
    redeemed_by: &str,
    client_key: &str,
) -> sqlx::Result<Option<RedemptionRow>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM redemptions WHERE redeemed_by = $1 AND client_key = $2"))
        .bind(redeemed_by)
        .bind(client_key)
        .fetch_optional(e)
        .await
}

pub async fn insert<'c, E: Executor<'c, Database = Any>>(e: E, r: &RedemptionRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO redemptions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&r.id)
    .bind(&r.benefit_id)
    .bind(&r.household_id)
    .bind(r.quantity)
    .bind(r.points)
    .bind(r.status)
    .bind(&r.client_key)
    .bind(&r.redeemed_by)
    .bind(r.redeemed_at)
    .bind(r.year)
    .bind(&r.cancelled_by)
    .bind(r.cancelled_at)
    .bind(&r.cancel_reason)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn cancel<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    by: &str,
    at: i64,
    reason: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE redemptions SET status = 2, cancelled_by = $2, cancelled_at = $3, cancel_reason = $4 \
         WHERE id = $1 AND status = 1",
    )
    .bind(id)
    .bind(by)
    .bind(at)
    .bind(reason)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Spends `points` of a household's redeemable points, only if that many are available. The
/// UPDATE takes the standing's row lock, so concurrent redemptions for one household queue
/// behind each other and none can spend what another already has.
pub async fn spend<'c, E: Executor<'c, Database = Any>>(e: E, household_id: &str, points: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE standings SET redeemable_spent = redeemable_spent + $2 \
         WHERE household_id = $1 AND redeemable_earned - redeemable_spent >= $2",
    )
    .bind(household_id)
    .bind(points)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn refund<'c, E: Executor<'c, Database = Any>>(e: E, household_id: &str, points: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE standings SET redeemable_spent = redeemable_spent - $2 WHERE household_id = $1")
        .bind(household_id)
        .bind(points)
        .execute(e)
        .await?;
    Ok(())
}

/// How many of a benefit a household has redeemed (not cancelled) in a year.
pub async fn redeemed_in_year<'c, E: Executor<'c, Database = Any>>(
    e: E,
    benefit_id: &str,
    household_id: &str,
    year: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM redemptions WHERE benefit_id = $1 AND household_id = $2 \
         AND year = $3 AND status = 1",
    )
    .bind(benefit_id)
    .bind(household_id)
    .bind(year)
    .fetch_one(e)
    .await
}

/// Points spent by a household as of `at` (redeemed by then and not cancelled by then).
pub async fn spent_at<'c, E: Executor<'c, Database = Any>>(e: E, household_id: &str, at: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM redemptions WHERE household_id = $1 AND redeemed_at <= $2 \
         AND (cancelled_at IS NULL OR cancelled_at > $2)",
    )
    .bind(household_id)
    .bind(at)
    .fetch_one(e)
    .await
}

/// A household's redemptions, newest first, a page at a time (continuing after `(at, id)`).
pub async fn list<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    before: Option<(i64, String)>,
    limit: i64,
) -> sqlx::Result<Vec<RedemptionRow>> {
    let (at, id) = before.unwrap_or((i64::MAX, String::new()));
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM redemptions WHERE household_id = $1 AND (redeemed_at < $2 OR (redeemed_at = $2 AND id < $3) \
         OR $3 = '') ORDER BY redeemed_at DESC, id DESC LIMIT $4"
    ))
    .bind(household_id)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(e)
    .await
}
