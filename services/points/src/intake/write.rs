//! Writing a batch's accepted records with multi-row statements: the records, the ledger entries
//! of those that count at once (chained per household in batch order), the grids' totals, the
//! households' balances, and every event — in the order one-by-one submission would have
//! written them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiaxin_kit::{storage::Tx, time::now_micros};
use jiaxin_proto::{
    events::Envelope,
    points::{RecordEffective, RecordStatus, RecordSubmitted},
};

use super::Accepted;
use crate::{
    domain::ledger,
    error::Result,
    ops::{GridTotal, Points, chain_entry, entry_of, record_proto},
    store::{self, LedgerRow},
};

pub(crate) async fn write(points: &Points, tx: &mut Tx, accepted: &[Accepted]) -> Result<()> {
    if accepted.is_empty() {
        return Ok(());
    }
    let rows: Vec<&store::RecordRow> = accepted.iter().map(|a| &a.row).collect();
    store::insert_records(tx, &rows).await?;

    // The ledger: each household's new entries chained after its last one, in batch order.
    let effective: Vec<&Accepted> = accepted.iter().filter(|a| a.status == RecordStatus::Effective).collect();
    let households: Vec<&str> =
        effective.iter().map(|a| a.row.household_id.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut heads = store::last_hashes(tx, &households).await?;
    let mut entries: HashMap<String, Vec<LedgerRow>> = HashMap::new();
    for entry in store::entries_of_households(tx, &households).await? {
        entries.entry(entry.household_id.clone()).or_default().push(entry);
    }
    let mut new_entries = Vec::with_capacity(effective.len());
    let mut totals: BTreeMap<(String, i64, String), (i64, i64, i64)> = BTreeMap::new();
    for item in &effective {
        let prev = heads.remove(&item.row.household_id).unwrap_or_else(|| ledger::GENESIS.to_owned());
        let from = item.row.effective_from.unwrap_or(item.row.submitted_at);
        let entry = chain_entry(prev, &item.row, &item.rule, item.row.points, from, None);
        heads.insert(entry.household_id.clone(), entry.hash.clone());
        let total = GridTotal::of(&entry);
        let sums = totals.entry((item.grid_id.clone(), entry.category, total.month)).or_default();
        sums.0 += total.bonus;
        sums.1 += total.deduction;
        sums.2 += total.entries;
        entries.entry(entry.household_id.clone()).or_default().push(entry.clone());
        new_entries.push(entry);
    }
    store::insert_entries(tx, &new_entries).await?;
    store::add_grid_totals(tx, &totals).await?;

    // Events, per record as one-by-one submission writes them; then one ScoreChanged per
    // household whose balance moved.
    let mut envelopes: Vec<Envelope> = Vec::with_capacity(accepted.len() * 2 + households.len());
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
    // Now, not the request's start: the entries just chained exist from their creation on.
    let at = now_micros();
    let before = store::balances_of(tx, &households).await?;
    let mut changed = Vec::new();
    for household in &households {
        let ledger: Vec<_> =
            entries.get(*household).map(|rows| rows.iter().map(entry_of).collect()).unwrap_or_default();
        let after = points.tiers.evaluate(&ledger, at);
        let (write, event) = points.balance_change(household, before.get(*household).cloned(), &after, at);
        if write {
            changed.push((household.to_string(), after.score, after.tier.clone(), after.redeemable));
        }
        if let Some(event) = event {
            envelopes.push(points.outbox.envelope(household, &event)?);
        }
    }
    store::upsert_balances(tx, &changed).await?;
    points.outbox.write_all(tx, &envelopes).await?;
    Ok(())
}
