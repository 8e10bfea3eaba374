//! Consents, the queries made under them, and loan events.

use std::collections::HashMap;

use jiaxin_kit::{sql::placeholders, storage::Dialect, writes::Writes};
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

const QUERY_COLUMNS: &str = "id, consent_id, institution_id, officer_account_id, purpose, at, returned";

/// The consents a report may rest on: those of a household still current (not dissolved).
const CURRENT_CONSENTS: &str = "consents c JOIN households h ON h.id = c.household_id AND h.dissolved = 0";

const QUALIFIED_CONSENT_COLUMNS: &str = "c.id, c.household_id, c.institution_id, c.purpose, c.valid_until, c.channel, \
     c.scan_reference, c.granted_by, c.entered_by, c.granted_at, c.revoked_at";

/// Everything a credit report reads about its subject.
pub struct ReportSubject {
    pub consent: ConsentRow,
    /// `None` until a score or a pledge of the household has reached the bank.
    pub standing: Option<StandingRow>,
    /// The household's score changes, oldest first: (at, score, tier).
    pub history: Vec<(i64, i64, String)>,
    /// Its records that took effect and were not reversed.
    pub records: Vec<EffectiveRecord>,
}

/// A record as a report counts it: its category and class, and the window it counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveRecord {
    pub category: i64,
    pub severity: i64,
    pub bonus: bool,
    pub effective_from: i64,
    pub expires_at: i64,
}

/// The statement of [`report_subjects`], for `n` consents. A record without an end (points always
/// sets one) counts until points says otherwise.
fn report_subjects_sql(n: usize) -> String {
    format!(
        "SELECT {QUALIFIED_CONSENT_COLUMNS}, s.score, s.tier, s.pledged_at, s.revoked_at AS pledge_revoked_at, \
         s.credit_household_year, \
         (SELECT string_agg(sh.at || ' ' || sh.score || ' ' || sh.tier, ',' ORDER BY sh.at) \
          FROM score_history sh WHERE sh.household_id = c.household_id) AS history, \
         (SELECT string_agg(r.category || ' ' || r.severity || ' ' || r.bonus || ' ' || r.effective_from || ' ' \
          || COALESCE(r.expires_at, {}), ',') \
          FROM records r WHERE r.household_id = c.household_id AND r.reversed = 0 AND r.effective_from IS NOT NULL) \
          AS records \
         FROM {CURRENT_CONSENTS} LEFT JOIN standings s ON s.household_id = c.household_id WHERE c.id IN ({})",
        i64::MAX,
        placeholders(1, n)
    )
}

/// What credit reports rest on and read, by consent id: the consent (if its household is still
/// current — the only consents a report may rest on; the others are left out), the household's
/// standing, its score history and its effective records. One statement per 500 consents, each
/// consent one row: the history and the records come as one aggregated text column each, in the
/// forms [`parse_history`] and [`parse_records`] read.
pub async fn report_subjects(
    conn: &mut AnyConnection,
    consent_ids: &[&str],
) -> sqlx::Result<HashMap<String, ReportSubject>> {
    #[derive(sqlx::FromRow)]
    struct SubjectRow {
        #[sqlx(flatten)]
        consent: ConsentRow,
        score: Option<i64>,
        tier: Option<String>,
        pledged_at: Option<i64>,
        pledge_revoked_at: Option<i64>,
        credit_household_year: Option<i64>,
        history: Option<String>,
        records: Option<String>,
    }
    let mut subjects = HashMap::with_capacity(consent_ids.len());
    for chunk in consent_ids.chunks(500) {
        let sql = report_subjects_sql(chunk.len());
        let mut query = sqlx::query_as::<_, SubjectRow>(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
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
            let subject = ReportSubject {
                standing,
                history: parse_history(row.history.as_deref().unwrap_or_default())?,
                records: parse_records(row.records.as_deref().unwrap_or_default())?,
                consent: row.consent,
            };
            subjects.insert(subject.consent.id.clone(), subject);
        }
    }
    Ok(subjects)
}

/// `at score tier` items, comma-separated (a tier is letters only).
fn parse_history(text: &str) -> sqlx::Result<Vec<(i64, i64, String)>> {
    aggregated_items(text)
        .map(|item| {
            let mut fields = item.split(' ');
            let (Some(at), Some(score), Some(tier), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(malformed("score history", item));
            };
            Ok((number(at, "score history")?, number(score, "score history")?, tier.to_owned()))
        })
        .collect()
}

/// `category severity bonus effective_from expires_at` items, comma-separated.
fn parse_records(text: &str) -> sqlx::Result<Vec<EffectiveRecord>> {
    aggregated_items(text)
        .map(|item| {
            let fields = item.split(' ').map(|field| number(field, "records")).collect::<sqlx::Result<Vec<_>>>()?;
            match fields[..] {
                [category, severity, bonus, effective_from, expires_at] => {
                    Ok(EffectiveRecord { category, severity, bonus: bonus == 1, effective_from, expires_at })
                }
                _ => Err(malformed("records", item)),
            }
        })
        .collect()
}

fn aggregated_items(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').filter(|item| !item.is_empty())
}

fn number(field: &str, what: &str) -> sqlx::Result<i64> {
    field.parse().map_err(|_| malformed(what, field))
}

fn malformed(what: &str, item: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("malformed {what} item in a credit report's read: {item:?}").into())
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

/// Adds the INSERT of `rows` to `writes`, to go with the transaction's other writes in one
/// round trip. At most 500 rows (3,500 parameters), well inside SQLite's per-statement limit.
pub fn write_queries<'q>(writes: &mut Writes<'q>, rows: &'q [QueryRow]) -> sqlx::Result<()> {
    writes.statement(|p| format!("INSERT INTO consent_queries ({QUERY_COLUMNS}) VALUES {}", p.rows(rows.len(), 7)));
    for q in rows {
        writes.bind(&q.id)?;
        writes.bind(&q.consent_id)?;
        writes.bind(&q.institution_id)?;
        writes.bind(&q.officer_account_id)?;
        writes.bind(q.purpose)?;
        writes.bind(q.at)?;
        writes.bind(&q.returned)?;
    }
    Ok(())
}

pub async fn insert_queries(conn: &mut AnyConnection, rows: &[QueryRow]) -> sqlx::Result<()> {
    let mut writes = Writes::new(Dialect::of(conn));
    for chunk in rows.chunks(500) {
        write_queries(&mut writes, chunk)?;
    }
    writes.execute(conn).await?;
    Ok(())
}

pub async fn queries_of<'c, E: Executor<'c, Database = Any>>(e: E, consent_id: &str) -> sqlx::Result<Vec<QueryRow>> {
    sqlx::query_as(&format!("SELECT {QUERY_COLUMNS} FROM consent_queries WHERE consent_id = $1 ORDER BY at, id"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qualified_columns_are_the_consent_columns() {
        let qualified: Vec<String> = CONSENT_COLUMNS.split(", ").map(|column| format!("c.{column}")).collect();
        assert_eq!(QUALIFIED_CONSENT_COLUMNS, qualified.join(", "));
    }

    #[test]
    fn aggregated_history_and_records_read_back_in_order() {
        assert_eq!(
            parse_history("100 1000 A,200 1060 AA").unwrap(),
            [(100, 1000, "A".to_owned()), (200, 1060, "AA".to_owned())]
        );
        let record = |category, severity, bonus, effective_from, expires_at| EffectiveRecord {
            category,
            severity,
            bonus,
            effective_from,
            expires_at,
        };
        assert_eq!(
            parse_records("3 2 0 10 20,1 0 1 -5 9223372036854775807").unwrap(),
            [record(3, 2, false, 10, 20), record(1, 0, true, -5, i64::MAX)]
        );
        assert!(parse_history("").unwrap().is_empty(), "a household without history");
        assert!(parse_records("").unwrap().is_empty());
    }

    #[test]
    fn a_malformed_aggregate_is_an_error_not_a_wrong_report() {
        for bad in ["100 1000", "100 1000 A extra", "x 1000 A"] {
            assert!(matches!(parse_history(bad), Err(sqlx::Error::Decode(_))), "{bad}");
        }
        for bad in ["1 2 3 4", "1 2 3 4 5 6", "1 2 3 4 five"] {
            assert!(matches!(parse_records(bad), Err(sqlx::Error::Decode(_))), "{bad}");
        }
    }
}
