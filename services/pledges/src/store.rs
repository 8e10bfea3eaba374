//! Pledges' SQL. Functions take any executor so operations can run them in one transaction.

use jiaxin_kit::sql::{placeholders, subtree_range};
use sqlx::{Any, AnyConnection, Executor};

use crate::domain::state::Counts;

// ---- org tree (read model) ----

pub async fn upsert_org_node<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    parent_id: &str,
    path: &str,
    kind: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO org_nodes (id, parent_id, path, kind) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET parent_id = excluded.parent_id, path = excluded.path, \
         kind = CASE WHEN excluded.kind = 0 THEN org_nodes.kind ELSE excluded.kind END",
    )
    .bind(id)
    .bind(parent_id)
    .bind(path)
    .bind(kind)
    .execute(e)
    .await?;
    Ok(())
}

/// A node's path and kind.
pub async fn org_node<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<(String, i64)>> {
    sqlx::query_as("SELECT path, kind FROM org_nodes WHERE id = $1").bind(id).fetch_optional(e).await
}

/// Re-roots every node, household and campaign node under `old_path`.
pub async fn move_subtree(conn: &mut AnyConnection, old_path: &str, new_path: &str) -> sqlx::Result<()> {
    let (from, to) = subtree_range(old_path);
    for table in ["org_nodes", "households", "campaign_nodes"] {
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

// ---- households and members (read model) ----

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HouseholdRow {
    pub id: String,
    pub path: String,
    pub address: String,
    pub head_resident_id: String,
    pub active: i64,
    pub state: i64,
    pub signature_id: Option<String>,
    pub template_id: Option<String>,
    pub signed_version: i64,
}

const HOUSEHOLD_COLUMNS: &str =
    "id, path, address, head_resident_id, active, state, signature_id, template_id, signed_version";

/// Adds an unsigned household; false when it was already there (a redelivered event).
pub async fn insert_household<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    grid_id: &str,
    path: &str,
    address: &str,
    head_resident_id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO households (id, grid_id, path, address, head_resident_id, active, state) \
         VALUES ($1, $2, $3, $4, $5, 1, 1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(grid_id)
    .bind(path)
    .bind(address)
    .bind(head_resident_id)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<HouseholdRow>> {
    sqlx::query_as(&format!("SELECT {HOUSEHOLD_COLUMNS} FROM households WHERE id = $1"))
        .bind(id)
        .fetch_optional(e)
        .await
}

/// Serialises changes to one household's pledge (a row lock in PostgreSQL; SQLite's writer lock
/// already serialises).
pub async fn lock_household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET state = state WHERE id = $1").bind(id).execute(e).await?;
    Ok(())
}

pub async fn set_standing<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    state: i64,
    signature_id: Option<&str>,
    template_id: Option<&str>,
    signed_version: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE households SET state = $2, signature_id = $3, template_id = $4, signed_version = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(signature_id)
    .bind(template_id)
    .bind(signed_version)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn deactivate_household<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET active = 0 WHERE id = $1").bind(id).execute(e).await?;
    Ok(())
}

pub async fn set_head<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, head: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE households SET head_resident_id = $2 WHERE id = $1").bind(id).bind(head).execute(e).await?;
    Ok(())
}

/// Active households under a path (for an org move; rare and bounded by the moved subtree).
pub async fn households_under<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path_prefix: &str,
) -> sqlx::Result<Vec<HouseholdRow>> {
    let (from, to) = subtree_range(path_prefix);
    sqlx::query_as(&format!("SELECT {HOUSEHOLD_COLUMNS} FROM households WHERE path >= $1 AND path < $2 AND active = 1"))
        .bind(from)
        .bind(to)
        .fetch_all(e)
        .await
}

/// A page of a grid's households in the given states, door to door (address, then id).
pub async fn visit_list<'c, E: Executor<'c, Database = Any>>(
    e: E,
    grid_id: &str,
    states: &[i64],
    after: Option<(&str, &str)>,
    limit: i64,
) -> sqlx::Result<Vec<HouseholdRow>> {
    let (after_address, after_id) = after.unwrap_or(("", ""));
    let sql = format!(
        "SELECT {HOUSEHOLD_COLUMNS} FROM households WHERE grid_id = $1 AND active = 1 AND state IN ({}) \
         AND (address > $2 OR (address = $2 AND id > $3)) ORDER BY address, id LIMIT $4",
        placeholders(5, states.len())
    );
    let mut query = sqlx::query_as(&sql).bind(grid_id).bind(after_address).bind(after_id).bind(limit);
    for state in states {
        query = query.bind(*state);
    }
    query.fetch_all(e).await
}

/// Signed households of a template on a version before `version`, counted by grid path.
pub async fn signed_before_by_path<'c, E: Executor<'c, Database = Any>>(
    e: E,
    template_id: &str,
    version: i64,
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT path, COUNT(*) FROM households WHERE template_id = $1 AND state = 2 AND signed_version < $2 \
         AND active = 1 GROUP BY path",
    )
    .bind(template_id)
    .bind(version)
    .fetch_all(e)
    .await
}

pub async fn mark_renewal_due<'c, E: Executor<'c, Database = Any>>(
    e: E,
    template_id: &str,
    version: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE households SET state = 3 WHERE template_id = $1 AND state = 2 AND signed_version < $2 AND active = 1",
    )
    .bind(template_id)
    .bind(version)
    .execute(e)
    .await?;
    Ok(done.rows_affected())
}

pub async fn upsert_member<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
    birth_date: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO members (household_id, resident_id, birth_date) VALUES ($1, $2, $3) \
         ON CONFLICT (household_id, resident_id) DO UPDATE SET birth_date = excluded.birth_date",
    )
    .bind(household_id)
    .bind(resident_id)
    .bind(birth_date)
    .execute(e)
    .await?;
    Ok(())
}

/// A member leaves: their authorisation to sign goes with them.
pub async fn remove_member(conn: &mut AnyConnection, household_id: &str, resident_id: &str) -> sqlx::Result<()> {
    for table in ["members", "authorised_signers"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE household_id = $1 AND resident_id = $2"))
            .bind(household_id)
            .bind(resident_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A current member's date of birth (empty when unknown); None when not a member.
pub async fn member_birth_date<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT birth_date FROM members WHERE household_id = $1 AND resident_id = $2")
        .bind(household_id)
        .bind(resident_id)
        .fetch_optional(e)
        .await
}

pub async fn authorise_signer<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    resident_id: &str,
    by: &str,
    at: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO authorised_signers (household_id, resident_id, authorised_by, authorised_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (household_id, resident_id) DO NOTHING",
    )
    .bind(household_id)
    .bind(resident_id)
    .bind(by)
    .bind(at)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn authorised_signers<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT resident_id FROM authorised_signers WHERE household_id = $1 ORDER BY resident_id")
        .bind(household_id)
        .fetch_all(e)
        .await
}

// ---- templates ----

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRow {
    pub id: String,
    pub version: i64,
    pub org_node_id: String,
    pub kind: i64,
    pub title: String,
    pub body: String,
    pub consent_clause: String,
    pub effective_on: String,
    pub adopted_by: String,
    pub adopted_on: String,
    pub requires_resign: i64,
    pub published_at: i64,
    pub published_by: String,
}

const TEMPLATE_COLUMNS: &str = "id, version, org_node_id, kind, title, body, consent_clause, effective_on, \
     adopted_by, adopted_on, requires_resign, published_at, published_by";

pub async fn insert_template<'c, E: Executor<'c, Database = Any>>(e: E, t: &TemplateRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO templates ({TEMPLATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&t.id)
    .bind(t.version)
    .bind(&t.org_node_id)
    .bind(t.kind)
    .bind(&t.title)
    .bind(&t.body)
    .bind(&t.consent_clause)
    .bind(&t.effective_on)
    .bind(&t.adopted_by)
    .bind(&t.adopted_on)
    .bind(t.requires_resign)
    .bind(t.published_at)
    .bind(&t.published_by)
    .execute(e)
    .await?;
    Ok(())
}

/// A node's template at `version`, or its latest when `version` is 0.
pub async fn template_of_node<'c, E: Executor<'c, Database = Any>>(
    e: E,
    org_node_id: &str,
    version: i64,
) -> sqlx::Result<Option<TemplateRow>> {
    sqlx::query_as(&format!(
        "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE org_node_id = $1 AND ($2 = 0 OR version = $2) \
         ORDER BY version DESC LIMIT 1"
    ))
    .bind(org_node_id)
    .bind(version)
    .fetch_optional(e)
    .await
}

/// The latest version of the template that applies along `path` (a village or community on
/// it; only those hold templates).
pub async fn template_on_path<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path: &[&str],
) -> sqlx::Result<Option<TemplateRow>> {
    if path.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE org_node_id IN ({}) ORDER BY version DESC LIMIT 1",
        placeholders(1, path.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in path {
        query = query.bind(*id);
    }
    query.fetch_optional(e).await
}

/// Every version of a template, oldest first.
pub async fn template_versions<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Vec<TemplateRow>> {
    sqlx::query_as(&format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = $1 ORDER BY version"))
        .bind(id)
        .fetch_all(e)
        .await
}

/// The latest version that asks for re-signing; signatures before it are due for renewal.
pub async fn resign_from<'c, E: Executor<'c, Database = Any>>(e: E, template_id: &str) -> sqlx::Result<i64> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM templates WHERE id = $1 AND requires_resign = 1")
            .bind(template_id)
            .fetch_one(e)
            .await?;
    Ok(version.unwrap_or(1))
}

// ---- signatures ----

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SignatureRow {
    pub id: String,
    pub household_id: String,
    pub template_id: String,
    pub template_version: i64,
    pub signer_resident_id: String,
    pub channel: i64,
    pub scan_reference: String,
    pub campaign_id: String,
    pub signed_at: i64,
    pub collected_by: String,
    pub recorded_at: i64,
    pub status: i64,
    pub revoked_at: Option<i64>,
    pub revoke_reason: String,
    pub revoked_by: String,
}

pub const IN_FORCE: i64 = 1;
pub const RENEWED: i64 = 2;
pub const REVOKED: i64 = 3;

const SIGNATURE_COLUMNS: &str = "id, household_id, template_id, template_version, signer_resident_id, channel, \
     scan_reference, campaign_id, signed_at, collected_by, recorded_at, status, revoked_at, revoke_reason, revoked_by";

pub async fn insert_signature<'c, E: Executor<'c, Database = Any>>(e: E, s: &SignatureRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO signatures ({SIGNATURE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(&s.id)
    .bind(&s.household_id)
    .bind(&s.template_id)
    .bind(s.template_version)
    .bind(&s.signer_resident_id)
    .bind(s.channel)
    .bind(&s.scan_reference)
    .bind(&s.campaign_id)
    .bind(s.signed_at)
    .bind(&s.collected_by)
    .bind(s.recorded_at)
    .bind(s.status)
    .bind(s.revoked_at)
    .bind(&s.revoke_reason)
    .bind(&s.revoked_by)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn signature<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<SignatureRow>> {
    sqlx::query_as(&format!("SELECT {SIGNATURE_COLUMNS} FROM signatures WHERE id = $1"))
        .bind(id)
        .fetch_optional(e)
        .await
}

/// The household's pledge in force on a template.
pub async fn in_force<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
    template_id: &str,
) -> sqlx::Result<Option<SignatureRow>> {
    sqlx::query_as(&format!(
        "SELECT {SIGNATURE_COLUMNS} FROM signatures WHERE household_id = $1 AND template_id = $2 AND status = 1"
    ))
    .bind(household_id)
    .bind(template_id)
    .fetch_optional(e)
    .await
}

pub async fn signature_history<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
) -> sqlx::Result<Vec<SignatureRow>> {
    sqlx::query_as(&format!(
        "SELECT {SIGNATURE_COLUMNS} FROM signatures WHERE household_id = $1 ORDER BY recorded_at DESC, id DESC"
    ))
    .bind(household_id)
    .fetch_all(e)
    .await
}

pub async fn mark_renewed<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE signatures SET status = $2 WHERE id = $1").bind(id).bind(RENEWED).execute(e).await?;
    Ok(())
}

pub async fn mark_revoked<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    at: i64,
    reason: &str,
    by: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE signatures SET status = $5, revoked_at = $2, revoke_reason = $3, revoked_by = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(at)
    .bind(reason)
    .bind(by)
    .bind(REVOKED)
    .execute(e)
    .await?;
    Ok(())
}

// ---- campaigns ----

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CampaignRow {
    pub id: String,
    pub name: String,
    pub moment: i64,
    pub starts_on: String,
    pub ends_on: String,
    pub created_by: String,
    pub created_at: i64,
    pub collected: i64,
}

const CAMPAIGN_COLUMNS: &str = "id, name, moment, starts_on, ends_on, created_by, created_at, collected";

pub async fn insert_campaign<'c, E: Executor<'c, Database = Any>>(e: E, c: &CampaignRow) -> sqlx::Result<()> {
    sqlx::query(&format!("INSERT INTO campaigns ({CAMPAIGN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        .bind(&c.id)
        .bind(&c.name)
        .bind(c.moment)
        .bind(&c.starts_on)
        .bind(&c.ends_on)
        .bind(&c.created_by)
        .bind(c.created_at)
        .bind(c.collected)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn insert_campaign_node<'c, E: Executor<'c, Database = Any>>(
    e: E,
    campaign_id: &str,
    org_node_id: &str,
    path: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO campaign_nodes (campaign_id, org_node_id, path) VALUES ($1, $2, $3)")
        .bind(campaign_id)
        .bind(org_node_id)
        .bind(path)
        .execute(e)
        .await?;
    Ok(())
}

pub async fn campaign<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<CampaignRow>> {
    sqlx::query_as(&format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1")).bind(id).fetch_optional(e).await
}

/// A campaign's villages and communities with their current paths.
pub async fn campaign_nodes<'c, E: Executor<'c, Database = Any>>(
    e: E,
    campaign_id: &str,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT org_node_id, path FROM campaign_nodes WHERE campaign_id = $1 ORDER BY org_node_id")
        .bind(campaign_id)
        .fetch_all(e)
        .await
}

pub async fn count_collected<'c, E: Executor<'c, Database = Any>>(e: E, campaign_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE campaigns SET collected = collected + 1 WHERE id = $1").bind(campaign_id).execute(e).await?;
    Ok(())
}

/// Campaigns with a node under `path_prefix`, newest first (ids are time-ordered), after `after`.
pub async fn campaigns_under<'c, E: Executor<'c, Database = Any>>(
    e: E,
    path_prefix: &str,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<CampaignRow>> {
    let (from, to) = subtree_range(path_prefix);
    sqlx::query_as(&format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id IN \
         (SELECT campaign_id FROM campaign_nodes WHERE path >= $1 AND path < $2) \
         AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(from)
    .bind(to)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(e)
    .await
}

// ---- coverage ----

pub async fn add_coverage<'c, E: Executor<'c, Database = Any>>(
    e: E,
    org_node_id: &str,
    delta: &Counts,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO coverage (org_node_id, households, signed, renewal_due, revoked) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (org_node_id) DO UPDATE SET households = coverage.households + excluded.households, \
         signed = coverage.signed + excluded.signed, renewal_due = coverage.renewal_due + excluded.renewal_due, \
         revoked = coverage.revoked + excluded.revoked",
    )
    .bind(org_node_id)
    .bind(delta.households)
    .bind(delta.signed)
    .bind(delta.renewal_due)
    .bind(delta.revoked)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn coverage<'c, E: Executor<'c, Database = Any>>(e: E, org_node_id: &str) -> sqlx::Result<Counts> {
    let row: Option<(i64, i64, i64, i64)> =
        sqlx::query_as("SELECT households, signed, renewal_due, revoked FROM coverage WHERE org_node_id = $1")
            .bind(org_node_id)
            .fetch_optional(e)
            .await?;
    Ok(row
        .map(|(households, signed, renewal_due, revoked)| Counts { households, signed, renewal_due, revoked })
        .unwrap_or_default())
}

/// Coverage of a node's children that have households, by child id.
pub async fn children_coverage<'c, E: Executor<'c, Database = Any>>(
    e: E,
    parent_id: &str,
) -> sqlx::Result<Vec<(String, Counts)>> {
    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT c.org_node_id, c.households, c.signed, c.renewal_due, c.revoked FROM coverage c \
         JOIN org_nodes o ON o.id = c.org_node_id WHERE o.parent_id = $1 AND c.households > 0 ORDER BY c.org_node_id",
    )
    .bind(parent_id)
    .fetch_all(e)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, households, signed, renewal_due, revoked)| (id, Counts { households, signed, renewal_due, revoked }))
        .collect())
}
