//! Writing a batch's accepted records with multi-row statements: the records, the ledger entries
//! of those that count at once (chained per household in batch order), the grids' totals, the
//! households' balances, and every event — in the order one-by-one submission would have
//! written them.
//!
//! What the writes depend on (chain heads, balances, which households need their whole ledger
//! evaluated) is read first, and the entries are chained; then the writes go through a
//! [`pipeline`]: each statement runs on the connection while the next one is prepared (values
//! bound, events encoded), so the database and this task work at the same time instead of taking
//! turns.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiaxin_kit::{
    pipeline::pipeline,
    storage::{Dialect, Tx},
    time::now_micros,
};
use jiaxin_proto::{
    events::Envelope,
    points::{RecordEffective, RecordStatus, RecordSubmitted},
};

use super::Accepted;
use crate::{
    domain::{
        ledger,
        score::{Entry, Evaluation},
    },
    error::{PointsError, Result},
    ops::{GridTotal, Points, chain_entry, entry_of, record_proto},
    store::{self, LedgerRow},
};

pub(crate) async fn write(points: &Points, tx: &mut Tx, accepted: &[Accepted]) -> Result<()> {
    if accepted.is_empty() {
        return Ok(());
    }
    let dialect = Dialect::of(tx);
    let effective: Vec<&Accepted> = accepted.iter().filter(|a| a.status == RecordStatus::Effective).collect();
    let households: Vec<&str> =
        effective.iter().map(|a| a.row.household_id.as_str()).collect::<BTreeSet<_>>().into_iter().collect();

    // The ledger: each household's new entries chained after its last one, in batch order.
    let heads = store::heads_of(tx, &households).await?;
    let (new_entries, totals) = chain(&effective, heads);
    // The moment the balances are computed for: now, not the request's start, for the entries
    // just chained exist from their creation on. Asked before the new entries are written, so
    // the question is about the books as they stood.
    let at = now_micros();
    let whole = store::households_needing_whole_ledger(tx, &households, at).await?;
    let before = store::balances_of(tx, &households).await?;

    // Everything read: the writes go through the pipeline, each prepared while the one before
    // it runs.
    let (entries, totals) = (&new_entries, &totals);
    pipeline(tx, |queue| async move {
        let rows: Vec<&store::RecordRow> = accepted.iter().map(|a| &a.row).collect();
        queue.push_all(store::record_inserts(dialect, &rows)).await;
        queue.push_all(store::entry_inserts(dialect, entries)).await;
        // Each household's head moves past its new entries, in the same transaction.
        let mut moves: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
        for entry in entries {
            let (appended, last) = moves.entry(entry.household_id.as_str()).or_default();
            (*appended, *last) = (*appended + 1, entry.hash.as_str());
        }
        let moves: Vec<(&str, i64, &str)> =
            moves.into_iter().map(|(household, (n, hash))| (household, n, hash)).collect();
        queue.push_all(store::head_advances(dialect, &moves)).await;
        queue.push_all(store::grid_total_additions(dialect, totals)).await;
        // A slice's events are built while the statement before them runs.
        for slice in accepted.chunks(RECORDS_PER_SLICE) {
            let envelopes = record_events(points, slice)?;
            queue.push_all(points.outbox.inserts(dialect, &envelopes)).await;
        }
        Ok::<_, PointsError>(())
    })
    .await?;

    // Balances: the maintained one carried forward by the new entries where the books allow it
    // (`Tiers::advance`), else the household's whole ledger evaluated again.
    let mut added: HashMap<&str, Vec<Entry>> = HashMap::new();
    for entry in &new_entries {
        added.entry(entry.household_id.as_str()).or_default().push(entry_of(entry));
    }
    let new_of = |household: &str| added.get(household).map(Vec::as_slice).unwrap_or_default();
    let mut after: HashMap<&str, Evaluation> = HashMap::with_capacity(households.len());
    for household in &households {
        let carried = match before.get(*household) {
            _ if whole.contains(*household) => None,
            Some(balance) if balance.updated_at > at => None,
            Some(balance) => points.tiers.advance(balance.score, balance.redeemable, new_of(household), at),
            // No balance and (`whole` says) no entries yet: the base.
            None => points.tiers.advance(points.tiers.base, 0, new_of(household), at),
        };
        if let Some(evaluation) = carried {
            after.insert(household, evaluation);
        }
    }
    let uncarried: Vec<&str> = households.iter().copied().filter(|h| !after.contains_key(h)).collect();
    let mut ledgers: HashMap<String, Vec<Entry>> = HashMap::new();
    for row in store::entries_of_households(tx, &uncarried).await? {
        ledgers.entry(row.household_id.clone()).or_default().push(entry_of(&row));
    }
    // Read after the new entries were written, so the ledgers hold them.
    for household in uncarried {
        let ledger = ledgers.remove(household).unwrap_or_default();
        after.insert(household, points.tiers.evaluate(&ledger, at));
    }

    // One ScoreChanged per household whose balance moved, after its records' events.
    let mut changed = Vec::new();
    let mut envelopes = Vec::new();
    for household in &households {
        let after = &after[household];
        let before = before.get(*household).map(|b| (b.score, b.tier.clone(), b.redeemable));
        let (write, event) = points.balance_change(household, before, after, at);
        if write {
            changed.push((household.to_string(), after.score, after.tier.clone(), after.redeemable));
        }
        if let Some(event) = event {
            envelopes.push(points.outbox.envelope(household, &event)?);
        }
    }
    pipeline(tx, |queue| async move {
        queue.push_all(store::balance_upserts(dialect, &changed, at)).await;
        queue.push_all(points.outbox.inserts(dialect, &envelopes)).await;
        Ok::<_, PointsError>(())
    })
    .await
}

/// Records per slice of the events handed to the pipeline: about one outbox statement's worth,
/// so each slice is built while the statement before it runs.
const RECORDS_PER_SLICE: usize = 500;

/// Grid totals gained: (grid, category, month) → (bonus, deduction, entries).
type Totals = BTreeMap<(String, i64, String), (i64, i64, i64)>;

/// Chains each household's new entries after its head (`heads`), in batch order; returns the
/// entries and what they add to their grids' totals.
fn chain(effective: &[&Accepted], heads: HashMap<String, store::Head>) -> (Vec<LedgerRow>, Totals) {
    let mut heads: HashMap<String, String> =
        heads.into_iter().map(|(household, head)| (household, head.hash)).collect();
    let mut new_entries = Vec::with_capacity(effective.len());
    let mut totals = Totals::new();
    for item in effective {
        let prev = heads.remove(&item.row.household_id).unwrap_or_else(|| ledger::GENESIS.to_owned());
        let from = item.row.effective_from.unwrap_or(item.row.submitted_at);
        let entry = chain_entry(prev, &item.row, &item.rule, item.row.points, from, None);
        heads.insert(entry.household_id.clone(), entry.hash.clone());
        let total = GridTotal::of(&entry);
        let sums = totals.entry((item.grid_id.clone(), entry.category, total.month)).or_default();
        sums.0 += total.bonus;
        sums.1 += total.deduction;
        sums.2 += total.entries;
        new_entries.push(entry);
    }
    (new_entries, totals)
}

/// Each record's events, as one-by-one submission writes them: submitted, and effective where it
/// counts at once.
fn record_events(points: &Points, accepted: &[Accepted]) -> Result<Vec<Envelope>> {
    let mut envelopes = Vec::with_capacity(accepted.len() * 2);
    for item in accepted {
        let submitted = RecordSubmitted {
            record: Some(record_proto(&item.row)),
            // The council opens a task now only for a record that is not held.
            needs_review: item.status == RecordStatus::PendingReview,
            org_path: item.org_path.clone(),
            points_min: item.rule.points_min,
            points_max: item.rule.points_max,
            disclosure_days: item.rule.disclosure_days as i32,
            severity: item.rule.severity as i32,
            category: item.rule.category as i32,
        };
        envelopes.push(points.outbox.envelope(&item.row.household_id, &submitted)?);
        if item.status == RecordStatus::Effective {
            let event = RecordEffective { record: Some(record_proto(&item.row)) };
            envelopes.push(points.outbox.envelope(&item.row.household_id, &event)?);
        }
    }
    Ok(envelopes)
}
