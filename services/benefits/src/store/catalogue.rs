//! Providers and the benefit catalogue.

use sqlx::{Any, AnyConnection, Executor};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProviderRow {
    pub id: String,
    pub name: String,
    pub kind: i64,
    pub org_node_id: String,
    pub path: String,
    pub updated_at: i64,
}

pub async fn provider<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<ProviderRow>> {
    sqlx::query_as("SELECT id, name, kind, org_node_id, path, updated_at FROM providers WHERE id = $1")
        .bind(id)
        .fetch_optional(e)
        .await
}

/// Writes a provider and replaces its accounts.
pub async fn save_provider(conn: &mut AnyConnection, row: &ProviderRow, accounts: &[String]) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO providers (id, name, kind, org_node_id, path, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, org_node_id = excluded.org_node_id, \
         path = excluded.path, updated_at = excluded.updated_at",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(row.kind)
    .bind(&row.org_node_id)
    .bind(&row.path)
    .bind(row.updated_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM provider_accounts WHERE provider_id = $1").bind(&row.id).execute(&mut *conn).await?;
    for account in accounts {
        sqlx::query("INSERT INTO provider_accounts (provider_id, account_id) VALUES ($1, $2)")
            .bind(&row.id)
            .bind(account)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The providers an account acts for.
pub async fn providers_of<'c, E: Executor<'c, Database = Any>>(e: E, account_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT provider_id FROM provider_accounts WHERE account_id = $1")
        .bind(account_id)
        .fetch_all(e)
        .await
}

pub async fn acts_for<'c, E: Executor<'c, Database = Any>>(
    e: E,
    account_id: &str,
    provider_id: &str,
) -> sqlx::Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM provider_accounts WHERE account_id = $1 AND provider_id = $2")
            .bind(account_id)
            .bind(provider_id)
            .fetch_optional(e)
            .await?;
    Ok(found.is_some())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BenefitRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub scene: i64,
    pub kind: i64,
    pub provider_id: String,
    pub org_node_id: String,
    pub path: String,
    pub min_tier: String,
    pub min_score: i64,
    pub policy_basis: String,
    pub valid_from: String,
    pub valid_until: String,
    pub cost_points: i64,
    pub stock: i64,
    pub stock_left: i64,
    pub per_household_yearly: i64,
    pub retired: i64,
    pub updated_at: i64,
}

const BENEFIT_COLUMNS: &str = "id, name, description, scene, kind, provider_id, org_node_id, path, min_tier, \
     min_score, policy_basis, valid_from, valid_until, cost_points, stock, stock_left, per_household_yearly, \
     retired, updated_at";

pub async fn benefit<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<BenefitRow>> {
    sqlx::query_as(&format!("SELECT {BENEFIT_COLUMNS} FROM benefits WHERE id = $1")).bind(id).fetch_optional(e).await
}

pub async fn save_benefit<'c, E: Executor<'c, Database = Any>>(e: E, b: &BenefitRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO benefits ({BENEFIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
         description = excluded.description, scene = excluded.scene, kind = excluded.kind, \
         provider_id = excluded.provider_id, org_node_id = excluded.org_node_id, path = excluded.path, \
         min_tier = excluded.min_tier, min_score = excluded.min_score, policy_basis = excluded.policy_basis, \
         valid_from = excluded.valid_from, valid_until = excluded.valid_until, cost_points = excluded.cost_points, \
         stock = excluded.stock, stock_left = excluded.stock_left, per_household_yearly = excluded.per_household_yearly, \
         retired = excluded.retired, updated_at = excluded.updated_at"
    ))
    .bind(&b.id)
    .bind(&b.name)
    .bind(&b.description)
    .bind(b.scene)
    .bind(b.kind)
    .bind(&b.provider_id)
    .bind(&b.org_node_id)
    .bind(&b.path)
    .bind(&b.min_tier)
    .bind(b.min_score)
    .bind(&b.policy_basis)
    .bind(&b.valid_from)
    .bind(&b.valid_until)
    .bind(b.cost_points)
    .bind(b.stock)
    .bind(b.stock_left)
    .bind(b.per_household_yearly)
    .bind(b.retired)
    .bind(b.updated_at)
    .execute(e)
    .await?;
    Ok(())
}

/// What a list may show: everything (in a subtree), or only one provider set's benefits.
pub enum Visible<'a> {
    Subtree {
        from: &'a str,
        to: &'a str,
    },
    Providers(&'a [String]),
    /// Benefits in force (not retired) anywhere: what residents may browse.
    InForce,
}

/// A page of benefits ordered by id.
pub async fn list_benefits(
    conn: &mut AnyConnection,
    visible: &Visible<'_>,
    scene: i64,
    include_retired: bool,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<BenefitRow>> {
    let mut sql = format!("SELECT {BENEFIT_COLUMNS} FROM benefits WHERE id > $1 AND ($2 = 0 OR scene = $2)");
    if !include_retired || matches!(visible, Visible::InForce) {
        sql.push_str(" AND retired = 0");
    }
    match visible {
        Visible::Subtree { .. } => sql.push_str(" AND path >= $4 AND path < $5"),
        Visible::Providers(ids) => {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(&format!(" AND provider_id IN ({})", jiaxin_kit::sql::placeholders(4, ids.len())));
        }
        Visible::InForce => {}
    }
    sql.push_str(" ORDER BY id LIMIT $3");
    let mut query = sqlx::query_as::<_, BenefitRow>(&sql).bind(after).bind(scene).bind(limit);
    match visible {
        Visible::Subtree { from, to } => query = query.bind(*from).bind(*to),
        Visible::Providers(ids) => {
            for id in *ids {
                query = query.bind(id);
            }
        }
        Visible::InForce => {}
    }
    query.fetch_all(&mut *conn).await
}

/// Takes `quantity` from a limited stock; false when not enough is left. Unlimited stock (0)
/// always gives.
pub async fn take_stock<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, quantity: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE benefits SET stock_left = CASE WHEN stock = 0 THEN 0 ELSE stock_left - $2 END \
         WHERE id = $1 AND (stock = 0 OR stock_left >= $2)",
    )
    .bind(id)
    .bind(quantity)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn return_stock<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, quantity: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE benefits SET stock_left = stock_left + $2 WHERE id = $1 AND stock > 0")
        .bind(id)
        .bind(quantity)
        .execute(e)
        .await?;
    Ok(())
}
