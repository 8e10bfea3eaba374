//! Institutions and their officers, branches and the villages they serve, loan products.

use std::collections::HashMap;

use jiaxin_kit::sql::placeholders;
use sqlx::{Any, AnyConnection, Executor};

/// Replaces the rows of `table` keyed by `key_column = key` with one row per value.
async fn replace_list(
    conn: &mut AnyConnection,
    table: &str,
    key_column: &str,
    value_column: &str,
    key: &str,
    values: &[String],
) -> sqlx::Result<()> {
    sqlx::query(&format!("DELETE FROM {table} WHERE {key_column} = $1")).bind(key).execute(&mut *conn).await?;
    for value in values {
        sqlx::query(&format!("INSERT INTO {table} ({key_column}, {value_column}) VALUES ($1, $2)"))
            .bind(key)
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn list<'c, E: Executor<'c, Database = Any>>(
    e: E,
    table: &str,
    key_column: &str,
    value_column: &str,
    key: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(&format!("SELECT {value_column} FROM {table} WHERE {key_column} = $1 ORDER BY {value_column}"))
        .bind(key)
        .fetch_all(e)
        .await
}

pub async fn institution_name<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT name FROM institutions WHERE id = $1").bind(id).fetch_optional(e).await
}

pub async fn save_institution(
    conn: &mut AnyConnection,
    id: &str,
    name: &str,
    officers: &[String],
    at: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO institutions (id, name, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
    )
    .bind(id)
    .bind(name)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    replace_list(conn, "officers", "institution_id", "account_id", id, officers).await
}

pub async fn officers<'c, E: Executor<'c, Database = Any>>(e: E, institution_id: &str) -> sqlx::Result<Vec<String>> {
    list(e, "officers", "institution_id", "account_id", institution_id).await
}

/// The institution an officer's account acts for (one per account).
pub async fn institution_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    account_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT institution_id FROM officers WHERE account_id = $1 ORDER BY institution_id LIMIT 1")
        .bind(account_id)
        .fetch_optional(e)
        .await
}

/// Another institution already naming this account as an officer, if any.
pub async fn officer_elsewhere<'c, E: Executor<'c, Database = Any>>(
    e: E,
    account_id: &str,
    institution_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT institution_id FROM officers WHERE account_id = $1 AND institution_id <> $2 LIMIT 1")
        .bind(account_id)
        .bind(institution_id)
        .fetch_optional(e)
        .await
}

/// (institution, name) of a branch.
pub async fn branch<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as("SELECT institution_id, name FROM branches WHERE id = $1").bind(id).fetch_optional(e).await
}

pub async fn save_branch(
    conn: &mut AnyConnection,
    id: &str,
    institution_id: &str,
    name: &str,
    villages: &[String],
    officers: &[String],
    at: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO branches (id, institution_id, name, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
    )
    .bind(id)
    .bind(institution_id)
    .bind(name)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    replace_list(conn, "branch_villages", "branch_id", "village_id", id, villages).await?;
    replace_list(conn, "branch_officers", "branch_id", "account_id", id, officers).await
}

pub async fn branch_villages<'c, E: Executor<'c, Database = Any>>(e: E, branch_id: &str) -> sqlx::Result<Vec<String>> {
    list(e, "branch_villages", "branch_id", "village_id", branch_id).await
}

pub async fn branch_officers<'c, E: Executor<'c, Database = Any>>(e: E, branch_id: &str) -> sqlx::Result<Vec<String>> {
    list(e, "branch_officers", "branch_id", "account_id", branch_id).await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProductRow {
    pub id: String,
    pub institution_id: String,
    pub name: String,
    pub purpose: String,
    pub limits: String,
    pub term_months: i64,
    pub rate_note: String,
    pub updated_at: i64,
}

const PRODUCT_COLUMNS: &str = "id, institution_id, name, purpose, limits, term_months, rate_note, updated_at";

pub async fn product<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<ProductRow>> {
    sqlx::query_as(&format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1")).bind(id).fetch_optional(e).await
}

pub async fn products_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    institution_id: &str,
) -> sqlx::Result<Vec<ProductRow>> {
    sqlx::query_as(&format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE institution_id = $1 ORDER BY id"))
        .bind(institution_id)
        .fetch_all(e)
        .await
}

/// An officer's institution (as [`institution_of`] picks it) with its products: (id, limit table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficerProducts {
    pub institution_id: String,
    pub products: Vec<(String, String)>,
}

/// [`OfficerProducts`] of each of `accounts` that is an institution's officer (the others are
/// left out), in one statement per 500 accounts: the report journal reads a batch's officers at
/// once, beside its writes.
pub async fn officers_products(
    conn: &mut AnyConnection,
    accounts: &[&str],
) -> sqlx::Result<HashMap<String, OfficerProducts>> {
    let mut found: HashMap<String, OfficerProducts> = HashMap::with_capacity(accounts.len());
    for chunk in accounts.chunks(500) {
        let sql = format!(
            "SELECT o.account_id, o.institution_id, p.id, p.limits FROM officers o \
             LEFT JOIN products p ON p.institution_id = o.institution_id \
             WHERE o.account_id IN ({}) ORDER BY o.account_id, o.institution_id, p.id",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_as::<_, (String, String, Option<String>, Option<String>)>(&sql);
        for account in chunk {
            query = query.bind(*account);
        }
        for (account, institution_id, product, limits) in query.fetch_all(&mut *conn).await? {
            // Rows come by institution: the first one an account has is the one it acts for.
            let officer = found
                .entry(account)
                .or_insert_with(|| OfficerProducts { institution_id: institution_id.clone(), products: Vec::new() });
            if officer.institution_id == institution_id
                && let (Some(product), Some(limits)) = (product, limits)
            {
                officer.products.push((product, limits));
            }
        }
    }
    Ok(found)
}

pub async fn save_product<'c, E: Executor<'c, Database = Any>>(e: E, p: &ProductRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO products ({PRODUCT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET \
         name = excluded.name, purpose = excluded.purpose, limits = excluded.limits, term_months = excluded.term_months, \
         rate_note = excluded.rate_note, updated_at = excluded.updated_at"
    ))
    .bind(&p.id)
    .bind(&p.institution_id)
    .bind(&p.name)
    .bind(&p.purpose)
    .bind(&p.limits)
    .bind(p.term_months)
    .bind(&p.rate_note)
    .bind(p.updated_at)
    .execute(e)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BusinessRow {
    pub id: String,
    pub name: String,
    pub kind: i64,
    pub household_id: String,
    pub credit_code: String,
    pub scale_mu: i64,
    pub registered_by: String,
    pub updated_at: i64,
}

const BUSINESS_COLUMNS: &str = "id, name, kind, household_id, credit_code, scale_mu, registered_by, updated_at";

pub async fn business<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<BusinessRow>> {
    sqlx::query_as(&format!("SELECT {BUSINESS_COLUMNS} FROM businesses WHERE id = $1")).bind(id).fetch_optional(e).await
}

pub async fn save_business<'c, E: Executor<'c, Database = Any>>(e: E, b: &BusinessRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO businesses ({BUSINESS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET \
         name = excluded.name, kind = excluded.kind, household_id = excluded.household_id, \
         credit_code = excluded.credit_code, scale_mu = excluded.scale_mu, registered_by = excluded.registered_by, \
         updated_at = excluded.updated_at"
    ))
    .bind(&b.id)
    .bind(&b.name)
    .bind(b.kind)
    .bind(&b.household_id)
    .bind(&b.credit_code)
    .bind(b.scale_mu)
    .bind(&b.registered_by)
    .bind(b.updated_at)
    .execute(e)
    .await?;
    Ok(())
}
