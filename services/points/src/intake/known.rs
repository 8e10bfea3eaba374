//! What a batch needs to know, read with a few set queries before any item is checked: the
//! rules, the households with their paths and pledges, the members the batch names, the caller's
//! earlier request ids, and what each household has used of the capped rules' yearly caps. The
//! batch's households are locked first (a row lock in PostgreSQL; SQLite's writer lock already
//! holds), so nothing read here changes before the batch commits.

use std::collections::{HashMap, HashSet};

use jiaxin_kit::{
    auth::Caller,
    storage::{Dialect, Tx},
    writes::Placeholders,
};
use jiaxin_proto::points::RecordInput;
use sqlx::Any;

use super::{Accepted, IDS_PER_QUERY};
use crate::store::{self, RecordRow, RuleRow};

pub(crate) struct Household {
    pub path: String,
    pub grid_id: String,
    pub active: bool,
}

pub(crate) struct Known {
    /// Current version of every rule, retired ones included, by code.
    pub rules: HashMap<String, RuleRow>,
    pub households: HashMap<String, Household>,
    /// (household, resident) of current members, for the residents the batch names.
    pub members: HashSet<(String, String)>,
    /// The caller's records by request id (earlier calls, and this batch's accepted items).
    pub earlier: HashMap<String, RecordRow>,
    /// Points used per (household, rule, year) toward the rule's yearly cap (capped rules the batch
    /// names only).
    pub used: HashMap<(String, String, i64), i64>,
    /// PledgeStatus per household, where pledges has said anything.
    pub pledges: HashMap<String, i64>,
}

/// Runs `sql` (with `{ids}` standing for the list) over `ids` in chunks, collecting rows.
async fn in_chunks<T>(tx: &mut Tx, sql: &str, ids: &[&str]) -> sqlx::Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    in_chunks_with(tx, sql, ids, &[]).await
}

/// The same with a second, short list (`{extra}`) bound whole into every chunk's statement.
async fn in_chunks_with<T>(tx: &mut Tx, sql: &str, ids: &[&str], extra: &[&str]) -> sqlx::Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let mut rows = Vec::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        // `{ids}` comes first in the text, and anonymous parameters bind in textual order.
        let mut placeholders = Placeholders::new(Dialect::of(tx));
        let ids = placeholders.list(chunk.len());
        let statement = sql.replace("{ids}", &ids).replace("{extra}", &placeholders.list(extra.len()));
        let mut query = sqlx::query_as::<Any, T>(&statement);
        for id in chunk.iter().chain(extra) {
            query = query.bind(*id);
        }
        rows.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

impl Known {
    pub async fn load(tx: &mut Tx, caller: &Caller, inputs: &[RecordInput]) -> sqlx::Result<Self> {
        let mut household_ids: Vec<&str> = inputs.iter().map(|i| i.household_id.as_str()).collect();
        household_ids.sort_unstable();
        household_ids.dedup();
        let mut request_ids: Vec<&str> = inputs.iter().map(|i| i.request_id.as_str()).collect();
        request_ids.sort_unstable();
        request_ids.dedup();

        // Residents the checks ask about: members named in items, and a self-reporting caller.
        let mut resident_ids: Vec<&str> =
            inputs.iter().map(|i| i.resident_id.as_str()).filter(|r| !r.is_empty()).collect();
        resident_ids.extend(caller.0.rid.as_deref());
        resident_ids.sort_unstable();
        resident_ids.dedup();

        // Lock first, in id order, then read what the checks depend on. SQLite needs no row
        // locks: the transaction holds the database's one writer lock from BEGIN IMMEDIATE, and
        // the no-op update would rewrite every household row for nothing.
        let row_locks = Dialect::of(tx) == Dialect::Postgres;
        for chunk in household_ids.chunks(IDS_PER_QUERY).filter(|_| row_locks) {
            let statement = format!(
                "UPDATE households SET active = active WHERE id IN ({})",
                Placeholders::new(Dialect::Postgres).list(chunk.len())
            );
            let mut query = sqlx::query(&statement);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }

        let rules: HashMap<String, RuleRow> =
            store::current_rules(&mut **tx, 0, true).await?.into_iter().map(|r| (r.code.clone(), r)).collect();
        // The household's place and its pledge in one read.
        let households: Vec<(String, String, String, i64, Option<i64>)> = in_chunks(
            tx,
            "SELECT h.id, o.path, h.grid_id, h.active, p.status FROM households h \
             JOIN org_nodes o ON o.id = h.grid_id LEFT JOIN pledges p ON p.household_id = h.id \
             WHERE h.id IN ({ids})",
            &household_ids,
        )
        .await?;
        let members: Vec<(String, String)> =
            in_chunks(tx, "SELECT household_id, resident_id FROM members WHERE resident_id IN ({ids})", &resident_ids)
                .await?;
        // Use toward caps, for the capped rules the batch names only: a household's other rules
        // would be rows read for nothing.
        let mut capped: Vec<&str> = inputs
            .iter()
            .filter_map(|i| rules.get(i.rule_code.trim()))
            .filter(|r| r.yearly_cap > 0)
            .map(|r| r.code.as_str())
            .collect();
        capped.sort_unstable();
        capped.dedup();
        let used: Vec<(String, String, i64, i64)> = if capped.is_empty() {
            Vec::new()
        } else {
            in_chunks_with(
                tx,
                "SELECT household_id, rule_code, year, \
                 CAST(SUM(CASE WHEN points < 0 THEN -points ELSE points END) AS BIGINT) FROM records \
                 WHERE household_id IN ({ids}) AND rule_code IN ({extra}) AND status IN (1, 2, 3, 6) \
                 GROUP BY household_id, rule_code, year",
                &household_ids,
                &capped,
            )
            .await?
        };
        let mut earlier = HashMap::new();
        let dialect = Dialect::of(tx);
        for chunk in request_ids.chunks(IDS_PER_QUERY) {
            for row in store::records_by_requests(&mut **tx, dialect, caller.account_id(), chunk).await? {
                earlier.insert(row.request_id.clone(), row);
            }
        }
        Ok(Self {
            rules,
            pledges: households.iter().filter_map(|(id, .., pledge)| Some((id.clone(), (*pledge)?))).collect(),
            households: households
                .into_iter()
                .map(|(id, path, grid_id, active, _)| (id, Household { path, grid_id, active: active == 1 }))
                .collect(),
            members: members.into_iter().collect(),
            earlier,
            used: used.into_iter().map(|(h, rule, year, points)| ((h, rule, year), points)).collect(),
        })
    }

    pub fn is_member(&self, household_id: &str, resident_id: &str) -> bool {
        self.members.contains(&(household_id.to_owned(), resident_id.to_owned()))
    }

    pub fn used(&self, household_id: &str, rule_code: &str, year: i64) -> i64 {
        self.used.get(&(household_id.to_owned(), rule_code.to_owned(), year)).copied().unwrap_or(0)
    }

    /// Counts an accepted item toward its cap and its request id, for the items after it.
    pub fn note(&mut self, item: &Accepted) {
        let key = (item.row.household_id.clone(), item.row.rule_code.clone(), item.row.year);
        *self.used.entry(key).or_default() += item.row.points.abs();
        self.earlier.insert(item.row.request_id.clone(), item.row.clone());
    }
}
