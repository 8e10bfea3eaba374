//! Consents, the queries made under them, and loan events.

use jiaxin_kit::{
    sql::{placeholders, values},
    storage::Dialect,
};
use sqlx::{Any, AnyConnection, Executor};

use super::readmodel::StandingRow;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsentRow {
    pub id: String,
    pub household_id: String,
    pub institution_id: String,
    pub purpose: i64,
    pub valid_until: String,
    pub channel: i64,
    pub scan_reference: String,
    pub granted_by: String,
    pub entered_by: String,
    pub granted_at: i64,
    pub revoked_at: Option<i64>,
}

const CONSENT_COLUMNS: &str = "id, household_id, institution_id, purpose, valid_until, channel, scan_reference, \
     granted_by, entered_by, granted_at, revoked_at";

pub async fn consent<'c, E: Executor<'c, Database = Any>>(e: E, id: &str) -> sqlx::Result<Option<ConsentRow>> {
    sqlx::query_as(&format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE id = $1")).bind(id).fetch_optional(e).await
}

/// What a credit report starts from: the consent, if its household is still current (not
/// dissolved) — the only consents a report may rest on — and the household's standing, if any
/// score or pledge has reached the bank yet. One statement: a report's cost is its round trips.
pub async fn report_subject<'c, E: Executor<'c, Database = Any>>(
    e: E,
    consent_id: &str,
) -> sqlx::Result<Option<(ConsentRow, Option<StandingRow>)>> {
    #[derive(sqlx::FromRow)]
    struct SubjectRow {
        #[sqlx(flatten)]
        consent: ConsentRow,
        score: Option<i64>,
        tier: Option<String>,
        pledged_at: Option<i64>,
        pledge_revoked_at: Option<i64>,
        credit_household_year: Option<i64>,
    }
    let row: Option<SubjectRow> = sqlx::query_as(&format!(
        "SELECT {}, s.score, s.tier, s.pledged_at, s.revoked_at AS pledge_revoked_at, s.credit_household_year \
         FROM consents c JOIN households h ON h.id = c.household_id AND h.dissolved = 0 \
         LEFT JOIN standings s ON s.household_id = c.household_id WHERE c.id = $1",
        qualified_consent_columns()
    ))
    .bind(consent_id)
    .fetch_optional(e)
    .await?;
    Ok(row.map(|row| {
        let standing = match (row.score, row.tier) {
            (Some(score), Some(tier)) => Some(StandingRow {
                score,
                tier,
                pledged_at: row.pledged_at,
                revoked_at: row.pledge_revoked_at,
                credit_household_year: row.credit_household_year.unwrap_or_default(),
            }),
            _ => None,
        };
        (row.consent, standing)
    }))
}

/// The same for many consents at once; the ones missing or of a dissolved household are left out.
pub async fn consents_of_current_households(conn: &mut AnyConnection, ids: &[&str]) -> sqlx::Result<Vec<ConsentRow>> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT {} FROM consents c JOIN households h ON h.id = c.household_id AND h.dissolved = 0 \
             WHERE c.id IN ({})",
            qualified_consent_columns(),
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_as(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

fn qualified_consent_columns() -> String {
    CONSENT_COLUMNS.split(", ").map(|column| format!("c.{column}")).collect::<Vec<_>>().join(", ")
}

pub async fn insert_consent<'c, E: Executor<'c, Database = Any>>(e: E, c: &ConsentRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO consents ({CONSENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&c.id)
    .bind(&c.household_id)
    .bind(&c.institution_id)
    .bind(c.purpose)
    .bind(&c.valid_until)
    .bind(c.channel)
    .bind(&c.scan_reference)
    .bind(&c.granted_by)
    .bind(&c.entered_by)
    .bind(c.granted_at)
    .bind(c.revoked_at)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn revoke<'c, E: Executor<'c, Database = Any>>(e: E, id: &str, at: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE consents SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(at)
        .execute(e)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn consents_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    household_id: &str,
) -> sqlx::Result<Vec<ConsentRow>> {
    sqlx::query_as(&format!(
        "SELECT {CONSENT_COLUMNS} FROM consents WHERE household_id = $1 ORDER BY granted_at DESC, id"
    ))
    .bind(household_id)
    .fetch_all(e)
    .await
}

/// Consents of an institution for a purpose, not revoked and not past `today`, of households
/// under a path: (consent id, household id).
pub async fn usable_in(
    conn: &mut AnyConnection,
    institution_id: &str,
    purpose: i64,
    today: &str,
    (from, to): (&str, &str),
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT c.id, c.household_id FROM consents c JOIN households h ON h.id = c.household_id \
         WHERE c.institution_id = $1 AND c.purpose = $2 AND c.revoked_at IS NULL AND c.valid_until >= $3 \
         AND h.dissolved = 0 AND h.path >= $4 AND h.path < $5 ORDER BY c.household_id, c.id",
    )
    .bind(institution_id)
    .bind(purpose)
    .bind(today)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await
}

/// Whether a household has a consent in force to an institution, for any purpose.
pub async fn any_usable<'c, E: Executor<'c, Database = Any>>(
    e: E,
    institution_id: &str,
    household_id: &str,
    today: &str,
) -> sqlx::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM consents WHERE institution_id = $1 AND household_id = $2 AND revoked_at IS NULL \
         AND valid_until >= $3 LIMIT 1",
    )
    .bind(institution_id)
    .bind(household_id)
    .bind(today)
    .fetch_optional(e)
    .await?;
    Ok(found.is_some())
}

/// A query under a consent, as the household will read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueryRow {
    pub id: String,
    pub consent_id: String,
    pub institution_id: String,
    pub officer_account_id: String,
    pub purpose: i64,
    pub at: i64,
    pub returned: String,
}

pub async fn insert_queries(conn: &mut AnyConnection, rows: &[QueryRow]) -> sqlx::Result<()> {
    let dialect = Dialect::of(conn);
    for chunk in rows.chunks(500) {
        let sql = format!(
            "INSERT INTO consent_queries (id, consent_id, institution_id, officer_account_id, purpose, at, returned) VALUES {}",
            values(dialect, chunk.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for q in chunk {
            query = query
                .bind(&q.id)
                .bind(&q.consent_id)
                .bind(&q.institution_id)
                .bind(&q.officer_account_id)
                .bind(q.purpose)
                .bind(q.at)
                .bind(&q.returned);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

pub async fn queries_of<'c, E: Executor<'c, Database = Any>>(e: E, consent_id: &str) -> sqlx::Result<Vec<QueryRow>> {
    sqlx::query_as(
        "SELECT id, consent_id, institution_id, officer_account_id, purpose, at, returned FROM consent_queries \
         WHERE consent_id = $1 ORDER BY at, id",
    )
    .bind(consent_id)
    .fetch_all(e)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoanEventRow {
    pub id: String,
    pub institution_id: String,
    pub household_id: String,
    pub loan_ref: String,
    pub kind: i64,
    pub amount_fen: i64,
    pub occurred_on: String,
    pub reported_by: String,
    pub reported_at: i64,
    pub client_key: String,
    pub business_id: String,
}

const LOAN_COLUMNS: &str = "id, institution_id, household_id, loan_ref, kind, amount_fen, occurred_on, reported_by, \
     reported_at, client_key, business_id";

pub async fn loan_event_by_key<'c, E: Executor<'c, Database = Any>>(
    e: E,
    reported_by: &str,
    client_key: &str,
) -> sqlx::Result<Option<LoanEventRow>> {
    sqlx::query_as(&format!("SELECT {LOAN_COLUMNS} FROM loan_events WHERE reported_by = $1 AND client_key = $2"))
        .bind(reported_by)
        .bind(client_key)
        .fetch_optional(e)
        .await
}

pub async fn insert_loan_event<'c, E: Executor<'c, Database = Any>>(e: E, l: &LoanEventRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO loan_events ({LOAN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&l.id)
    .bind(&l.institution_id)
    .bind(&l.household_id)
    .bind(&l.loan_ref)
    .bind(l.kind)
    .bind(l.amount_fen)
    .bind(&l.occurred_on)
    .bind(&l.reported_by)
    .bind(l.reported_at)
    .bind(&l.client_key)
    .bind(&l.business_id)
    .execute(e)
    .await?;
    Ok(())
}
