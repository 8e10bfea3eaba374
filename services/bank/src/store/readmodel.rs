//! The read models the bank keeps of other services' events: identity's org tree, households
//! (with their head) and members; pledges; points' scores and records; benefits' credit
//! households.

use jiaxin_kit::sql::subtree_range;
use sqlx::{Any, AnyConnection, Executor};

pub async fn upsert_household<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    path: &str,
    head: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO households (id, path, head_resident_id) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET \
         path = excluded.path, head_resident_id = excluded.head_resident_id, dissolved = 0",
    )
    .bind(id)
    .bind(path)
    .bind(head)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn set_head<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, head: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET head_resident_id = $2 WHERE id = $1").bind(id).bind(head).execute(e).await?;
    Ok(())
}

pub async fn dissolve_household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET dissolved = 1 WHERE id = $1").bind(id).execute(e).await?;
    Ok(())
}

/// A member's birth date (from identity's `MemberJoined`).
pub async fn set_birth_date<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
    birth_date: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE memberships SET birth_date = $3 WHERE household_id = $1 AND resident_id = $2")
        .bind(household_id)
        .bind(resident_id)
        .bind(birth_date)
        .execute(e)
        .await?;
    Ok(())
}

/// A current member's birth date and whether the head authorised them for consents.
pub async fn member<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<Option<(String, bool)>> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT birth_date, authorised FROM memberships WHERE household_id = $1 AND resident_id = $2 AND current = 1",
    )
    .bind(household_id)
    .bind(resident_id)
    .fetch_optional(e)
    .await?;
    Ok(row.map(|(birth, authorised)| (birth, authorised == 1)))
}

pub async fn set_authorised<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
    authorised: bool,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE memberships SET authorised = $3 WHERE household_id = $1 AND resident_id = $2")
        .bind(household_id)
        .bind(resident_id)
        .bind(i64::from(authorised))
        .execute(e)
        .await?;
    Ok(())
}

/// A current household: (path, head resident).
pub async fn household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as("SELECT path, head_resident_id FROM households WHERE id = $1 AND dissolved = 0")
        .bind(id)
        .fetch_optional(e)
        .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StandingRow {
    pub score: i64,
    pub tier: String,
    pub pledged_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub credit_household_year: i64,
}

impl StandingRow {
    pub fn base() -> Self {
        Self {
            score: jiaxin_kit::tiers::BASE_SCORE,
            tier: jiaxin_kit::tiers::of_score(jiaxin_kit::tiers::BASE_SCORE).to_owned(),
            pledged_at: None,
            revoked_at: None,
            credit_household_year: 0,
        }
    }

    /// Whether the pledge is in force now: signed, and not revoked since.
    pub fn pledged(&self) -> bool {
        match (self.pledged_at, self.revoked_at) {
            (Some(signed), Some(revoked)) => revoked < signed,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

async fn ensure_standing(conn: &mut AnyConnection, household_id: &str) -> sqlx::Result<()> {
    let base = StandingRow::base();
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

/// Applies points' `ScoreChanged`: the standing, and a line of history at `at`.
pub async fn apply_score(
    conn: &mut AnyConnection,
    household_id: &str,
    score: i64,
    tier: &str,
    at: i64,
) -> sqlx::Result<()> {
    ensure_standing(conn, household_id).await?;
    sqlx::query("UPDATE standings SET score = $2, tier = $3, as_of = $4 WHERE household_id = $1")
        .bind(household_id)
        .bind(score)
        .bind(tier)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    jiaxin_kit::orgmodel::record_score(&mut *conn, household_id, at, score, tier).await
}

/// Sets a pledge moment: `pledged_at` on signing, `revoked_at` on revocation.
pub async fn set_pledge_moment(
    conn: &mut AnyConnection,
    household_id: &str,
    column: PledgeMoment,
    at: i64,
) -> sqlx::Result<()> {
    ensure_standing(conn, household_id).await?;
    let column = match column {
        PledgeMoment::Signed => "pledged_at",
        PledgeMoment::Revoked => "revoked_at",
    };
    sqlx::query(&format!("UPDATE standings SET {column} = $2 WHERE household_id = $1"))
        .bind(household_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub enum PledgeMoment {
    Signed,
    Revoked,
}

/// Named a credit household in a published evaluation of `year` (the latest year wins).
pub async fn set_credit_household(conn: &mut AnyConnection, household_id: &str, year: i64) -> sqlx::Result<()> {
    ensure_standing(conn, household_id).await?;
    sqlx::query(
        "UPDATE standings SET credit_household_year = $2 WHERE household_id = $1 AND credit_household_year < $2",
    )
    .bind(household_id)
    .bind(year)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A record points accepted: its category, class and sign.
pub async fn note_record<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    household_id: &str,
    category: i64,
    severity: i64,
    bonus: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO records (id, household_id, category, severity, bonus) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(household_id)
    .bind(category)
    .bind(severity)
    .bind(i64::from(bonus))
    .execute(e)
    .await?;
    Ok(())
}

pub async fn record_effective<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    from: i64,
    until: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE records SET effective_from = $2, expires_at = $3 WHERE id = $1")
        .bind(id)
        .bind(from)
        .bind(until)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn record_reversed<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE records SET reversed = 1 WHERE id = $1").bind(id).execute(e).await?;
    Ok(())
}

/// The current households of a village and their standing: (id, score, tier); the base for a
/// household no change has reached.
pub async fn village_standings(
    conn: &mut AnyConnection,
    village_path: &str,
) -> sqlx::Result<Vec<(String, i64, String)>> {
    let (from, to) = subtree_range(village_path);
    let base = StandingRow::base();
    sqlx::query_as(
        "SELECT h.id, COALESCE(s.score, $3), COALESCE(s.tier, $4) FROM households h \
         LEFT JOIN standings s ON s.household_id = h.id \
         WHERE h.dissolved = 0 AND h.path >= $1 AND h.path < $2 ORDER BY h.id",
    )
    .bind(from)
    .bind(to)
    .bind(base.score)
    .bind(base.tier)
    .fetch_all(&mut *conn)
    .await
}

pub use jiaxin_kit::orgmodel::{is_member, org_path, set_membership, upsert_org_node};

/// This service's tables that carry an org path, for `OrgNodeMoved`.
pub const PLACED_TABLES: &[&str] = &["org_nodes", "households"];
