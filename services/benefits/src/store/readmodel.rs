//! The read models benefits keeps of other services' events: identity's org tree, households and
//! members; pledges' signatures; points' scores and serious deductions.

use sqlx::{Any, AnyConnection, Executor};

pub async fn upsert_household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, path: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO households (id, path) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET path = excluded.path, dissolved = 0",
    )
    .bind(id)
    .bind(path)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn dissolve_household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET dissolved = 1 WHERE id = $1").bind(id).execute(e).await?;
    Ok(())
}

/// A current household's org path (dissolved households are no longer served).
pub async fn household_path<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT path FROM households WHERE id = $1 AND dissolved = 0").bind(id).fetch_optional(e).await
}

/// A household's standing as maintained here.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StandingRow {
    pub household_id: String,
    pub score: i64,
    pub tier: String,
    pub redeemable_earned: i64,
    pub redeemable_spent: i64,
    pub as_of: Option<i64>,
    pub pledged_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl StandingRow {
    /// The standing of a household no event has moved yet.
    pub fn base(household_id: &str) -> Self {
        Self {
            household_id: household_id.to_owned(),
            score: jiaxin_kit::tiers::BASE_SCORE,
            tier: jiaxin_kit::tiers::of_score(jiaxin_kit::tiers::BASE_SCORE).to_owned(),
            redeemable_earned: 0,
            redeemable_spent: 0,
            as_of: None,
            pledged_at: None,
            revoked_at: None,
        }
    }

    /// Whether the household's pledge was in force at `at`: signed by then, and not revoked
    /// between that signing and `at`.
    pub fn pledged_at_moment(&self, at: i64) -> bool {
        match (self.pledged_at, self.revoked_at) {
            (Some(signed), Some(revoked)) => signed <= at && (revoked < signed || revoked > at),
            (Some(signed), None) => signed <= at,
            (None, _) => false,
        }
    }
}

const STANDING_COLUMNS: &str =
    "household_id, score, tier, redeemable_earned, redeemable_spent, as_of, pledged_at, revoked_at";

pub async fn standing<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
) -> sqlx::Result<Option<StandingRow>> {
    sqlx::query_as(&format!("SELECT {STANDING_COLUMNS} FROM standings WHERE household_id = $1"))
        .bind(household_id)
        .fetch_optional(e)
        .await
}

/// Standings of many households at once (batch checks), by household id.
pub async fn standings_of(
    conn: &mut AnyConnection,
    household_ids: &[String],
) -> sqlx::Result<std::collections::HashMap<String, StandingRow>> {
    let mut found = std::collections::HashMap::new();
    for chunk in household_ids.chunks(500) {
        let sql = format!(
            "SELECT {STANDING_COLUMNS} FROM standings WHERE household_id IN ({})",
            jiaxin_kit::sql::placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_as::<_, StandingRow>(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            found.insert(row.household_id.clone(), row);
        }
    }
    Ok(found)
}

/// Current paths of many households at once (dissolved ones are absent).
pub async fn household_paths(
    conn: &mut AnyConnection,
    household_ids: &[String],
) -> sqlx::Result<std::collections::HashMap<String, String>> {
    let mut found = std::collections::HashMap::new();
    for chunk in household_ids.chunks(500) {
        let sql = format!(
            "SELECT id, path FROM households WHERE dissolved = 0 AND id IN ({})",
            jiaxin_kit::sql::placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_as::<_, (String, String)>(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        found.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// Makes sure a standing row exists (at the base) so later updates have a row to change.
async fn ensure_standing(conn: &mut AnyConnection, household_id: &str) -> sqlx::Result<()> {
    let base = StandingRow::base(household_id);
    sqlx::query(
        "INSERT INTO standings (household_id, score, tier) VALUES ($1, $2, $3) ON CONFLICT (household_id) DO NOTHING",
    )
    .bind(household_id)
    .bind(base.score)
    .bind(&base.tier)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies points' `ScoreChanged`: the new standing, and a line in the history at `at`.
pub async fn apply_score(
    conn: &mut AnyConnection,
    household_id: &str,
    score: i64,
    tier: &str,
    redeemable_earned: i64,
    at: i64,
) -> sqlx::Result<()> {
    ensure_standing(conn, household_id).await?;
    sqlx::query(
        "UPDATE standings SET score = $2, tier = $3, redeemable_earned = $4, as_of = $5 WHERE household_id = $1",
    )
    .bind(household_id)
    .bind(score)
    .bind(tier)
    .bind(redeemable_earned)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    jiaxin_kit::orgmodel::record_score(&mut *conn, household_id, at, score, tier).await
}

/// The last score change at or before `at`: (when, score, tier).
pub async fn score_at<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    at: i64,
) -> sqlx::Result<Option<(i64, i64, String)>> {
    sqlx::query_as(
        "SELECT at, score, tier FROM score_history WHERE household_id = $1 AND at <= $2 ORDER BY at DESC LIMIT 1",
    )
    .bind(household_id)
    .bind(at)
    .fetch_optional(e)
    .await
}

pub async fn set_pledged(conn: &mut AnyConnection, household_id: &str, at: i64) -> sqlx::Result<()> {
    ensure_standing(conn, household_id).await?;
    sqlx::query("UPDATE standings SET pledged_at = $2 WHERE household_id = $1")
        .bind(household_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_revoked(conn: &mut AnyConnection, household_id: &str, at: i64) -> sqlx::Result<()> {
    ensure_standing(conn, household_id).await?;
    sqlx::query("UPDATE standings SET revoked_at = $2 WHERE household_id = $1")
        .bind(household_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A serious deduction points accepted; it counts once `effective` says when.
pub async fn note_serious<'c, E: Executor<'c, Database = Any>>(
    e: E,
    record_id: &str,
    household_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO serious_deductions (record_id, household_id) VALUES ($1, $2) ON CONFLICT (record_id) DO NOTHING",
    )
    .bind(record_id)
    .bind(household_id)
    .execute(e)
    .await?;
    Ok(())
}

/// Sets a serious deduction's counting window (only records noted as serious are touched).
pub async fn serious_effective<'c, E: Executor<'c, Database = Any>>(
    e: E,
    record_id: &str,
    from: i64,
    until: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE serious_deductions SET effective_from = $2, expires_at = $3 WHERE record_id = $1")
        .bind(record_id)
        .bind(from)
        .bind(until)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn serious_reversed<'c, E: Executor<'c, Database = Any>>(e: E, record_id: &str, at: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE serious_deductions SET reversed_at = $2 WHERE record_id = $1 AND reversed_at IS NULL")
        .bind(record_id)
        .bind(at)
        .execute(e)
        .await?;
    Ok(())
}

/// A loan outcome the bank reported: disbursal marks it counted; overdue or written off marks
/// it bad, repaid on time good again.
pub async fn apply_loan_event<'c, E: Executor<'c, Database = Any>>(
    e: E,
    institution_id: &str,
    loan_ref: &str,
    household_id: &str,
    change: LoanChange,
) -> sqlx::Result<()> {
    let (disbursed, bad) = match change {
        LoanChange::Disbursed => ("1", "loans.bad"),
        LoanChange::Bad => ("loans.disbursed", "1"),
        LoanChange::Repaid => ("loans.disbursed", "0"),
    };
    sqlx::query(&format!(
        "INSERT INTO loans (institution_id, loan_ref, household_id, disbursed, bad) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (institution_id, loan_ref) DO UPDATE SET disbursed = {disbursed}, bad = {bad}"
    ))
    .bind(institution_id)
    .bind(loan_ref)
    .bind(household_id)
    .bind(i64::from(matches!(change, LoanChange::Disbursed)))
    .bind(i64::from(matches!(change, LoanChange::Bad)))
    .execute(e)
    .await?;
    Ok(())
}

pub enum LoanChange {
    Disbursed,
    Bad,
    Repaid,
}

pub use jiaxin_kit::orgmodel::{is_member, org_path, set_membership, upsert_org_node};

/// This service's tables that carry an org path, for `OrgNodeMoved`.
pub const PLACED_TABLES: &[&str] = &["org_nodes", "households", "providers", "benefits"];
