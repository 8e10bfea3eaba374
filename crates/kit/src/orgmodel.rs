//! The part of identity's world every consuming service keeps a copy of: the org tree (id,
//! materialised path, kind) and who currently belongs to which household — and, for the
//! services that answer with scores, the history of points' score changes. Each service owns its
//! tables — `org_nodes (id, path, kind)` and `memberships (household_id, resident_id, current)`
//! by this convention — and feeds them from identity's events through these functions, so the
//! SQL is written once.

use sqlx::{Any, AnyConnection, Executor};

use crate::sql::subtree_range;

/// Creates or updates a node; a kind of 0 (unknown, from a move that arrived first) keeps the
/// kind already known.
pub async fn upsert_org_node<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    path: &str,
    kind: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO org_nodes (id, path, kind) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET \
         path = excluded.path, kind = CASE WHEN excluded.kind = 0 THEN org_nodes.kind ELSE excluded.kind END",
    )
    .bind(id)
    .bind(path)
    .bind(kind)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn org_path<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT path FROM org_nodes WHERE id = $1").bind(id).fetch_optional(e).await
}

/// Re-roots every `path` under `old_path` in each of `tables` (the service's tables that carry
/// an org path: `org_nodes` and whatever else it keeps by place).
pub async fn move_subtree(
    conn: &mut AnyConnection,
    tables: &[&str],
    old_path: &str,
    new_path: &str,
) -> sqlx::Result<()> {
    let (from, to) = subtree_range(old_path);
    for table in tables {
        sqlx::query(&format!(
            "UPDATE {table} SET path = $1 || substr(path, CAST($2 AS INTEGER)) WHERE path >= $3 AND path < $4"
        ))
        .bind(new_path)
        .bind(old_path.len() as i64 + 1)
        .bind(&from)
        .bind(&to)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Applies `OrgNodeMoved`: the node's subtree moves, or the node becomes known at its new place.
pub async fn apply_move(conn: &mut AnyConnection, tables: &[&str], node_id: &str, new_path: &str) -> sqlx::Result<()> {
    match org_path(&mut *conn, node_id).await? {
        Some(old_path) => move_subtree(conn, tables, &old_path, new_path).await,
        None => upsert_org_node(&mut *conn, node_id, new_path, 0).await,
    }
}

/// Records that a resident joined (`current`) or left a household.
pub async fn set_membership<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
    current: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO memberships (household_id, resident_id, current) VALUES ($1, $2, $3) \
         ON CONFLICT (household_id, resident_id) DO UPDATE SET current = excluded.current",
    )
    .bind(household_id)
    .bind(resident_id)
    .bind(i64::from(current))
    .execute(e)
    .await?;
    Ok(())
}

/// Whether the resident currently belongs to the household.
pub async fn is_member<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM memberships WHERE household_id = $1 AND resident_id = $2 AND current = 1")
            .bind(household_id)
            .bind(resident_id)
            .fetch_optional(e)
            .await?;
    Ok(found.is_some())
}

/// Records a household's score change at `at` in the service's `score_history (household_id,
/// at, score, tier)` table — the copy of points' `ScoreChanged` that benefits and the bank keep
/// to answer "as of" questions. A second change at the same moment replaces the first (one
/// household's events arrive in order).
pub async fn record_score<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    at: i64,
    score: i64,
    tier: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO score_history (household_id, at, score, tier) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (household_id, at) DO UPDATE SET score = excluded.score, tier = excluded.tier",
    )
    .bind(household_id)
    .bind(at)
    .bind(score)
    .bind(tier)
    .execute(e)
    .await?;
    Ok(())
}
