//! Verifying the ledger: every household's chain recomputed from its entries and compared with
//! the household's chain head.
//!
//! The links catch an entry changed, removed from the middle or moved (the next entry no longer
//! chains after it); the head catches what links cannot — a chain cut short at its end, down to
//! every entry removed — and a head that itself was removed.

use std::collections::HashMap;

use jiaxin_kit::auth::Caller;
use jiaxin_proto::points::{LedgerBreak, VerifyLedgerResponse};

use crate::{
    domain::{access, ledger},
    error::{PointsError, Result},
    ops::{HOUSEHOLD, Points, path_ids},
    store::{self, Head, LedgerRow},
};

/// Households verified per round trip: their heads and entries are read in one query each.
const HOUSEHOLDS_PER_PAGE: i64 = 500;

impl Points {
    /// Recomputes every hash of one household's chain, or of every chain in the caller's scope
    /// (a page of households at a time), and checks each chain ends at its head.
    pub async fn verify(&self, caller: &Caller, household_id: &str) -> Result<VerifyLedgerResponse> {
        caller.require_any_role(access::VERIFIERS).map_err(|_| PointsError::PermissionDenied)?;
        // Only chains within the caller's scope: how many entries another town's household has is
        // not theirs to learn, and a household outside reads like one that does not exist.
        let scope = if household_id.is_empty() {
            store::org_node_path(self.db.pool(), caller.scope()).await?.ok_or(PointsError::PermissionDenied)?
        } else {
            let (path, _) =
                store::household_path(self.db.pool(), household_id).await?.ok_or(PointsError::NotFound(HOUSEHOLD))?;
            if !caller.covers(&path_ids(&path)) {
                return Err(PointsError::NotFound(HOUSEHOLD));
            }
            path
        };
        let mut response = VerifyLedgerResponse { intact: true, ..Default::default() };
        let mut after = String::new();
        loop {
            let households = if household_id.is_empty() {
                store::households_under(self.db.pool(), &scope, &after, HOUSEHOLDS_PER_PAGE).await?
            } else if after.is_empty() {
                vec![household_id.to_owned()]
            } else {
                Vec::new()
            };
            let Some(last) = households.last().cloned() else { return Ok(response) };
            let page: Vec<&str> = households.iter().map(String::as_str).collect();
            // Heads and entries from one snapshot: an append between two reads would otherwise
            // look like a chain that does not end at its head.
            let mut snapshot = self.db.begin_read().await?;
            let mut heads = store::heads_of(&mut snapshot, &page).await?;
            let mut chains: HashMap<String, Vec<LedgerRow>> = HashMap::new();
            for row in store::entries_of_households(&mut snapshot, &page).await? {
                chains.entry(row.household_id.clone()).or_default().push(row);
            }
            snapshot.commit().await?;
            for household in &households {
                let chain = chains.remove(household).unwrap_or_default();
                let head = heads.remove(household);
                if chain.is_empty() && head.is_none() {
                    // No entries were ever appended: no chain to check.
                    continue;
                }
                response.entries_checked += chain.len() as i64;
                if let Some(broken) = first_break(&chain, head.as_ref()) {
                    response.intact = false;
                    response.broken_entry_seq = broken.seq;
                    response.broken_household_id = household.clone();
                    response.broken = broken.kind as i32;
                    response.missing_entries = broken.missing;
                    return Ok(response);
                }
                response.households_checked += 1;
            }
            after = last;
        }
    }
}

/// How a household's chain fails: what is wrong, the entry named, and for a chain that does not
/// end at its head, how many entries the head counts that the chain lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Break {
    pub kind: LedgerBreak,
    pub seq: i64,
    pub missing: i64,
}

/// Where one household's chain (its entries in seq order) breaks, if it does: the first entry
/// that does not chain after the one before it or whose hash does not cover its fields; else a
/// chain that does not end at its head (entries cut from its end, down to all of them, or the
/// last ones replaced), or has entries and no head.
pub(crate) fn first_break(chain: &[LedgerRow], head: Option<&Head>) -> Option<Break> {
    let mut prev = ledger::GENESIS;
    for row in chain {
        if row.prev_hash != prev || row.hash != ledger::hash(prev, &row.chained()) {
            return Some(Break { kind: LedgerBreak::Entry, seq: row.seq, missing: 0 });
        }
        prev = &row.hash;
    }
    let last_seq = chain.last().map_or(0, |row| row.seq);
    let length = chain.len() as i64;
    match head {
        Some(head) if head.hash != prev || head.entries != length => {
            Some(Break { kind: LedgerBreak::HeadMismatch, seq: last_seq, missing: head.entries - length })
        }
        None if !chain.is_empty() => Some(Break { kind: LedgerBreak::HeadMissing, seq: last_seq, missing: 0 }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A household's chain of `n` entries, seqs 10, 20, …, correctly linked.
    fn chain(n: i64) -> Vec<LedgerRow> {
        let mut rows: Vec<LedgerRow> = Vec::new();
        for i in 1..=n {
            let prev = rows.last().map(|r| r.hash.clone()).unwrap_or_else(|| ledger::GENESIS.to_owned());
            let mut row = LedgerRow {
                seq: i * 10,
                household_id: "h".into(),
                record_id: format!("r{i}"),
                resident_id: String::new(),
                delta: i,
                effective_from: 1,
                expires_at: 2,
                rule_code: "A04".into(),
                rule_version: 1,
                category: 1,
                serious: 0,
                reverses_seq: None,
                created_at: i,
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            row.hash = ledger::hash(&prev, &row.chained());
            rows.push(row);
        }
        rows
    }

    fn head_of(rows: &[LedgerRow]) -> Head {
        Head { entries: rows.len() as i64, hash: rows[rows.len() - 1].hash.clone() }
    }

    fn at_entry(seq: i64) -> Option<Break> {
        Some(Break { kind: LedgerBreak::Entry, seq, missing: 0 })
    }

    #[test]
    fn an_intact_chain_ending_at_its_head_passes() {
        let rows = chain(3);
        assert_eq!(first_break(&rows, Some(&head_of(&rows))), None);
        assert_eq!(first_break(&[], None), None, "no entries, no head: nothing appended yet");
    }

    #[test]
    fn a_changed_removed_or_moved_entry_breaks_the_links() {
        let rows = chain(4);
        let head = head_of(&rows);
        let mut changed = rows.clone();
        changed[1].delta = 30;
        assert_eq!(first_break(&changed, Some(&head)), at_entry(20));
        let mut without_first = rows.clone();
        without_first.remove(0);
        assert_eq!(first_break(&without_first, Some(&head)), at_entry(20));
        let mut without_middle = rows.clone();
        without_middle.remove(1);
        assert_eq!(first_break(&without_middle, Some(&head)), at_entry(30));
        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        assert_eq!(first_break(&swapped, Some(&head)), at_entry(30));
    }

    #[test]
    fn a_chain_cut_short_or_without_its_head_is_caught_by_the_head() {
        let rows = chain(3);
        let head = head_of(&rows);
        let mismatch = |seq, missing| Some(Break { kind: LedgerBreak::HeadMismatch, seq, missing });
        assert_eq!(first_break(&rows[..2], Some(&head)), mismatch(20, 1), "the last entry removed");
        assert_eq!(first_break(&[], Some(&head)), mismatch(0, 3), "every entry removed");
        let recounted = Head { entries: 4, ..head.clone() };
        assert_eq!(first_break(&rows, Some(&recounted)), mismatch(30, 1), "a head counting another chain");
        let earlier = Head { hash: rows[1].hash.clone(), ..head.clone() };
        assert_eq!(first_break(&rows, Some(&earlier)), mismatch(30, 0), "a head naming another entry");
        let missing_head = Some(Break { kind: LedgerBreak::HeadMissing, seq: 30, missing: 0 });
        assert_eq!(first_break(&rows, None), missing_head, "the head removed");
    }
}
