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
    domain::{
        ledger,
        score::{Entry, Evaluation},
    },
    error::Result,
    ops::{GridTotal, Points, chain_entry, entry_of, record_proto},
    store,
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
    let mut heads: HashMap<String, String> =
        store::heads_of(tx, &households).await?.into_iter().map(|(household, head)| (household, head.hash)).collect();
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
        new_entries.push(entry);
    }
    // The moment the balances are computed for: now, not the request's start, for the entries
    // just chained exist from their creation on. Asked before the new entries are written, so
    // the question is about the books as they stood.
    let at = now_micros();
    let whole = store::households_needing_whole_ledger(tx, &households, at).await?;
    store::insert_entries(tx, &new_entries).await?;
    // Each household's head moves past its new entries, in the same transaction.
    let mut moves: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
    for entry in &new_entries {
        let (appended, last) = moves.entry(entry.household_id.as_str()).or_default();
        (*appended, *last) = (*appended + 1, entry.hash.as_str());
    }
    let moves: Vec<(&str, i64, &str)> = moves.into_iter().map(|(household, (n, hash))| (household, n, hash)).collect();
    store::advance_heads(tx, &moves).await?;
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
    // Balances: the maintained one carried forward by the new entries where the books allow it
    // (`Tiers::advance`), else the household's whole ledger evaluated again.
    let before = store::balances_of(tx, &households).await?;
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

    let mut changed = Vec::new();
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
    store::upsert_balances(tx, &changed, at).await?;
    points.outbox.write_all(tx, &envelopes).await?;
    Ok(())
}
