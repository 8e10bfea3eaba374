//! Identity's SQL. Functions take any executor, so the operations in `ops` can run them inside
//! one transaction; they check nothing beyond what the schema enforces.

use jiaxin_kit::{page::Page, time::now_micros};
use sqlx::{Any, Executor};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub kind: i64,
    pub name: String,
    pub code: String,
    pub path: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HouseholdRow {
    pub id: String,
    pub grid_id: String,
    pub address: String,
    pub head_resident_id: Option<String>,
    pub status: i64,
    pub created_at: i64,
    /// The path of the household's grid, for scope checks.
    pub grid_path: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResidentRow {
    pub id: String,
    pub name: String,
    pub gender: i64,
    pub birth_date: String,
    pub id_number_masked: String,
    pub phone_masked: String,
    pub death_date: Option<String>,
    pub household_id: Option<String>,
    pub relation: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub resident_id: String,
    pub household_id: String,
    pub relation: i64,
    pub joined_at: i64,
    pub join_reason: i64,
    pub left_at: Option<i64>,
    pub leave_reason: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub roles: String,
    pub org_node_id: String,
    pub resident_id: Option<String>,
    pub service_account: i64,
    pub password_hash: String,
    pub disabled: i64,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
}

/// A new resident, already validated and encrypted.
pub struct NewResidentRow<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub gender: i64,
    pub birth_date: &'a str,
    pub id_number_ct: Vec<u8>,
    pub id_number_bidx: &'a str,
    pub id_number_masked: &'a str,
    pub phone_ct: Option<Vec<u8>>,
    pub phone_masked: &'a str,
}

// ---- org tree ----

pub async fn org_node<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<OrgRow>> {
    sqlx::query_as("SELECT id, parent_id, kind, name, code, path, created_at FROM org_nodes WHERE id = $1")
        .bind(id)
        .fetch_optional(e)
        .await
}

pub async fn count_org_nodes<'c, E: Executor<'c, Database = Any>>(e: E) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM org_nodes").fetch_one(e).await
}

pub async fn insert_org_node<'c, E: Executor<'c, Database = Any>>(e: E, row: &OrgRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO org_nodes (id, parent_id, kind, name, code, path, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&row.id)
    .bind(&row.parent_id)
    .bind(row.kind)
    .bind(&row.name)
    .bind(&row.code)
    .bind(&row.path)
    .bind(row.created_at)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn rename_org_node<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, name: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE org_nodes SET name = $1 WHERE id = $2").bind(name).bind(id).execute(e).await?;
    Ok(())
}

/// Re-roots a whole subtree: every path that starts with `old_path` gets `new_path` instead.
pub async fn move_subtree<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    new_parent_id: &str,
    old_path: &str,
    new_path: &str,
) -> sqlx::Result<()> {
    let (lo, hi) = crate::domain::org::subtree_range(old_path);
    sqlx::query(
        "UPDATE org_nodes SET path = $1 || substr(path, CAST($2 AS INTEGER)), \
             parent_id = CASE WHEN id = $3 THEN $4 ELSE parent_id END \
         WHERE path >= $5 AND path < $6",
    )
    .bind(new_path)
    .bind(old_path.len() as i64 + 1)
    .bind(id)
    .bind(new_parent_id)
    .bind(lo)
    .bind(hi)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn org_children<'c, E: Executor<'c, Database = Any>>(
    e: E,
    parent_id: &str,
    page: &Page,
) -> sqlx::Result<Vec<OrgRow>> {
    sqlx::query_as(
        "SELECT id, parent_id, kind, name, code, path, created_at FROM org_nodes \
         WHERE parent_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(parent_id)
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.fetch_limit())
    .fetch_all(e)
    .await
}

// ---- households and residents ----

const HOUSEHOLD_COLUMNS: &str =
    "h.id, h.grid_id, h.address, h.head_resident_id, h.status, h.created_at, g.path AS grid_path";

pub async fn household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<HouseholdRow>> {
    sqlx::query_as(&format!(
        "SELECT {HOUSEHOLD_COLUMNS} FROM households h JOIN org_nodes g ON g.id = h.grid_id WHERE h.id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await
}

/// Active households whose grid lies in the subtree at `path`, by id.
pub async fn households_in<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path: &str,
    page: &Page,
) -> sqlx::Result<Vec<HouseholdRow>> {
    let (lo, hi) = crate::domain::org::subtree_range(path);
    sqlx::query_as(&format!(
        "SELECT {HOUSEHOLD_COLUMNS} FROM households h JOIN org_nodes g ON g.id = h.grid_id \
         WHERE g.path >= $1 AND g.path < $2 AND h.status = 1 AND h.id > $3 ORDER BY h.id LIMIT $4"
    ))
    .bind(lo)
    .bind(hi)
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.fetch_limit())
    .fetch_all(e)
    .await
}

/// Takes the household's row lock for the rest of the transaction, so two changes to one
/// household serialise (an UPDATE locks in PostgreSQL; SQLite's writer lock covers it already).
pub async fn lock_household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET status = status WHERE id = $1").bind(id).execute(e).await?;
    Ok(())
}

pub async fn insert_household<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    grid_id: &str,
    address: &str,
    head: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO households (id, grid_id, address, head_resident_id, status, created_at) VALUES ($1, $2, $3, $4, 1, $5)",
    )
    .bind(id)
    .bind(grid_id)
    .bind(address)
    .bind(head)
    .bind(now_micros())
    .execute(e)
    .await?;
    Ok(())
}

pub async fn set_head<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    head: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET head_resident_id = $1 WHERE id = $2")
        .bind(head)
        .bind(household_id)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn dissolve_household<'c, E: Executor<'c, Database = Any>>(e: E, household_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET status = 2, head_resident_id = NULL, dissolved_at = $1 WHERE id = $2")
        .bind(now_micros())
        .bind(household_id)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn insert_resident<'c, E: Executor<'c, Database = Any>>(e: E, r: &NewResidentRow<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO residents (id, name, gender, birth_date, id_number_ct, id_number_bidx, id_number_masked, phone_ct, phone_masked, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(r.id)
    .bind(r.name)
    .bind(r.gender)
    .bind(r.birth_date)
    .bind(r.id_number_ct.clone())
    .bind(r.id_number_bidx)
    .bind(r.id_number_masked)
    .bind(r.phone_ct.clone())
    .bind(r.phone_masked)
    .bind(now_micros())
    .execute(e)
    .await?;
    Ok(())
}

const RESIDENT_COLUMNS: &str = "r.id, r.name, r.gender, r.birth_date, r.id_number_masked, r.phone_masked, r.death_date, \
     m.household_id AS household_id, m.relation AS relation";

pub async fn resident<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<ResidentRow>> {
    sqlx::query_as(&format!(
        "SELECT {RESIDENT_COLUMNS} FROM residents r \
         LEFT JOIN memberships m ON m.resident_id = r.id AND m.left_at IS NULL WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await
}

pub async fn resident_id_by_index<'c, E: Executor<'c, Database = Any>>(
    e: E,
    bidx: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT id FROM residents WHERE id_number_bidx = $1").bind(bidx).fetch_optional(e).await
}

/// The current members of a household, head first, then by age.
pub async fn members<'c, E: Executor<'c, Database = Any>>(e: E, household_id: &str) -> sqlx::Result<Vec<ResidentRow>> {
    sqlx::query_as(&format!(
        "SELECT {RESIDENT_COLUMNS} FROM memberships m JOIN residents r ON r.id = m.resident_id \
         WHERE m.household_id = $1 AND m.left_at IS NULL ORDER BY m.relation, r.birth_date, r.id"
    ))
    .bind(household_id)
    .fetch_all(e)
    .await
}

pub async fn join_household<'c, E: Executor<'c, Database = Any>>(
    e: E,
    resident_id: &str,
    household_id: &str,
    relation: i64,
    reason: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO memberships (resident_id, household_id, relation, joined_at, join_reason) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(resident_id)
    .bind(household_id)
    .bind(relation)
    .bind(now_micros())
    .bind(reason)
    .execute(e)
    .await?;
    Ok(())
}

/// Closes the resident's current membership; returns whether there was one.
pub async fn leave_household<'c, E: Executor<'c, Database = Any>>(
    e: E,
    resident_id: &str,
    reason: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE memberships SET left_at = $1, leave_reason = $2 WHERE resident_id = $3 AND left_at IS NULL",
    )
    .bind(now_micros())
    .bind(reason)
    .bind(resident_id)
    .execute(e)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn set_relation<'c, E: Executor<'c, Database = Any>>(
    e: E,
    resident_id: &str,
    relation: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE memberships SET relation = $1 WHERE resident_id = $2 AND left_at IS NULL")
        .bind(relation)
        .bind(resident_id)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn record_death<'c, E: Executor<'c, Database = Any>>(
    e: E,
    resident_id: &str,
    date: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE residents SET death_date = $1 WHERE id = $2").bind(date).bind(resident_id).execute(e).await?;
    Ok(())
}

const MEMBERSHIP_COLUMNS: &str = "resident_id, household_id, relation, joined_at, join_reason, left_at, leave_reason";

pub async fn history_of_household<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
) -> sqlx::Result<Vec<MembershipRow>> {
    sqlx::query_as(&format!("SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE household_id = $1 ORDER BY id"))
        .bind(household_id)
        .fetch_all(e)
        .await
}

pub async fn history_of_resident<'c, E: Executor<'c, Database = Any>>(
    e: E,
    resident_id: &str,
) -> sqlx::Result<Vec<MembershipRow>> {
    sqlx::query_as(&format!("SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE resident_id = $1 ORDER BY id"))
        .bind(resident_id)
        .fetch_all(e)
        .await
}

// ---- accounts and tokens ----

const ACCOUNT_COLUMNS: &str = "id, username, display_name, roles, org_node_id, resident_id, service_account, password_hash, \
     disabled, failed_logins, locked_until, created_at";

pub async fn account<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<AccountRow>> {
    sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1")).bind(id).fetch_optional(e).await
}

pub async fn account_by_username<'c, E: Executor<'c, Database = Any>>(
    e: E,
    username: &str,
) -> sqlx::Result<Option<AccountRow>> {
    sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username = $1"))
        .bind(username)
        .fetch_optional(e)
        .await
}

pub async fn count_accounts<'c, E: Executor<'c, Database = Any>>(e: E) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(e).await
}

pub async fn insert_account<'c, E: Executor<'c, Database = Any>>(e: E, a: &AccountRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO accounts (id, username, display_name, roles, org_node_id, resident_id, service_account, password_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&a.id)
    .bind(&a.username)
    .bind(&a.display_name)
    .bind(&a.roles)
    .bind(&a.org_node_id)
    .bind(&a.resident_id)
    .bind(a.service_account)
    .bind(&a.password_hash)
    .bind(a.created_at)
    .execute(e)
    .await?;
    Ok(())
}

/// Accounts whose org node lies in the subtree at `path`.
pub async fn accounts_in<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path: &str,
    page: &Page,
) -> sqlx::Result<Vec<AccountRow>> {
    let (lo, hi) = crate::domain::org::subtree_range(path);
    let columns = ACCOUNT_COLUMNS.split(", ").map(|c| format!("a.{}", c.trim())).collect::<Vec<_>>().join(", ");
    sqlx::query_as(&format!(
        "SELECT {columns} FROM accounts a JOIN org_nodes o ON o.id = a.org_node_id \
         WHERE o.path >= $1 AND o.path < $2 AND a.id > $3 ORDER BY a.id LIMIT $4"
    ))
    .bind(lo)
    .bind(hi)
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.fetch_limit())
    .fetch_all(e)
    .await
}

/// Disables an account and revokes its refresh tokens (two statements: run it in a transaction).
pub async fn disable_account(tx: &mut jiaxin_kit::storage::Tx, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE accounts SET disabled = 1 WHERE id = $1").bind(id).execute(&mut **tx).await?;
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL")
        .bind(now_micros())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn set_password<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2").bind(hash).bind(id).execute(e).await?;
    Ok(())
}

pub async fn record_login_failure<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    locked_until: Option<i64>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE accounts SET failed_logins = failed_logins + 1, locked_until = COALESCE($1, locked_until) WHERE id = $2")
        .bind(locked_until)
        .bind(id)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn record_login_success<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = $1").bind(id).execute(e).await?;
    Ok(())
}

pub async fn insert_refresh_token<'c, E: Executor<'c, Database = Any>>(
    e: E,
    hash: &str,
    account_id: &str,
    expires_at: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, account_id, expires_at, created_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(account_id)
        .bind(expires_at)
        .bind(now_micros())
        .execute(e)
        .await?;
    Ok(())
}

/// Spends a refresh token: returns its account when it was live, and revokes it either way.
pub async fn spend_refresh_token<'c, E: Executor<'c, Database = Any>>(
    e: E,
    hash: &str,
) -> sqlx::Result<Option<String>> {
    let now = now_micros();
    sqlx::query_scalar(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL AND expires_at > $1 \
         RETURNING account_id",
    )
    .bind(now)
    .bind(hash)
    .fetch_optional(e)
    .await
}

// ---- signing keys ----

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub private_key_ct: Vec<u8>,
    pub active: i64,
    pub created_at: i64,
}

pub async fn signing_keys<'c, E: Executor<'c, Database = Any>>(e: E) -> sqlx::Result<Vec<SigningKeyRow>> {
    sqlx::query_as("SELECT kid, public_key, private_key_ct, active, created_at FROM signing_keys ORDER BY created_at")
        .fetch_all(e)
        .await
}

pub async fn deactivate_signing_keys<'c, E: Executor<'c, Database = Any>>(e: E) -> sqlx::Result<()> {
    sqlx::query("UPDATE signing_keys SET active = 0 WHERE active = 1").execute(e).await?;
    Ok(())
}

pub async fn insert_signing_key<'c, E: Executor<'c, Database = Any>>(e: E, row: &SigningKeyRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, public_key, private_key_ct, active, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&row.kid)
    .bind(row.public_key.clone())
    .bind(row.private_key_ct.clone())
    .bind(row.active)
    .bind(row.created_at)
    .execute(e)
    .await?;
    Ok(())
}

// ---- idempotency ----

/// The result of an earlier request with this id: `(request_hash, result_id)`.
pub async fn idempotent_result<'c, E: Executor<'c, Database = Any>>(
    e: E,
    operation: &str,
    request_id: &str,
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as("SELECT request_hash, result_id FROM idempotency_keys WHERE operation = $1 AND request_id = $2")
        .bind(operation)
        .bind(request_id)
        .fetch_optional(e)
        .await
}

pub async fn remember_idempotent<'c, E: Executor<'c, Database = Any>>(
    e: E,
    operation: &str,
    request_id: &str,
    request_hash: &str,
    result_id: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO idempotency_keys (operation, request_id, request_hash, result_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(operation)
        .bind(request_id)
        .bind(request_hash)
        .bind(result_id)
        .bind(now_micros())
        .execute(e)
        .await?;
    Ok(())
}

/// The grid path of the resident's latest household (current, or the last one they left): what
/// decides who may see the resident.
pub async fn resident_scope_path<'c, E: Executor<'c, Database = Any>>(
    e: E,
    resident_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT g.path FROM memberships m JOIN households h ON h.id = m.household_id JOIN org_nodes g ON g.id = h.grid_id \
         WHERE m.resident_id = $1 ORDER BY m.id DESC LIMIT 1",
    )
    .bind(resident_id)
    .fetch_optional(e)
    .await
}

/// Grids with this administrative code inside the subtree at `path` (the import accepts a
/// grid's code in place of its id; codes are unique within a county, not across counties).
pub async fn grids_by_code_in<'c, E: Executor<'c, Database = Any>>(
    e: E,
    code: &str,
    path: &str,
) -> sqlx::Result<Vec<OrgRow>> {
    let (lo, hi) = crate::domain::org::subtree_range(path);
    sqlx::query_as(
        "SELECT id, parent_id, kind, name, code, path, created_at FROM org_nodes \
         WHERE code = $1 AND kind = 8 AND path >= $2 AND path < $3 LIMIT 2",
    )
    .bind(code)
    .bind(lo)
    .bind(hi)
    .fetch_all(e)
    .await
}
