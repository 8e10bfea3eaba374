//! What the council's objections (异议) and credit repairs (信用修复) do to a record. An objection
//! freezes it: an opposite entry stops it counting (from now, or from its own start if later).
//! The resolution re-applies it as it was or amended — for the rest of its original window — or
//! leaves it reversed. An approved repair ends a deduction's effect from now on. History is never
//! edited: each step is a new entry in the household's chain.

use jiaxin_kit::{storage::Tx, time::now_micros};
use jiaxin_proto::{
    council::{ObjectionFiled, ObjectionOutcome, ObjectionResolved, RepairApproved},
    points::{RecordEffective, RecordReversed, RecordStatus, RuleKind},
};

use crate::{
    error::{PointsError, Result},
    ops::{Points, chain_entry_until, record_proto},
    store::{self, RecordRow, RuleRow},
};

const RECORD: &str = "积分记录";

impl Points {
    async fn record_and_rule(&self, tx: &mut Tx, record_id: &str) -> Result<(RecordRow, RuleRow)> {
        let record = store::record(&mut **tx, record_id).await?.ok_or(PointsError::NotFound(RECORD))?;
        let rule = store::rule_version(&mut **tx, &record.rule_code, record.rule_version)
            .await?
            .ok_or(PointsError::NotFound("规则"))?;
        store::lock_household(&mut **tx, &record.household_id).await?;
        Ok((record, rule))
    }

    /// Cancels the record's live entry from now (or its own start, if later). False when nothing
    /// counts for it (rejected, pending, already cancelled).
    async fn cancel_live_entry(&self, tx: &mut Tx, record: &RecordRow, rule: &RuleRow) -> Result<bool> {
        let Some(live) = store::live_entry_of_record(&mut **tx, &record.household_id, &record.id).await? else {
            return Ok(false);
        };
        let from = live.effective_from.max(now_micros());
        self.append_entry(tx, record, rule, -live.delta, from, Some(&live)).await?;
        Ok(true)
    }

    pub(crate) async fn apply_objection_filed(&self, tx: &mut Tx, filed: &ObjectionFiled) -> Result<()> {
        let (record, rule) = self.record_and_rule(tx, &filed.record_id).await?;
        if record.frozen == 1 {
            return Ok(());
        }
        if !self.cancel_live_entry(tx, &record, &rule).await? {
            tracing::info!(record_id = %record.id, "objection to a record that does not count; nothing to freeze");
            return Ok(());
        }
        store::set_frozen(&mut **tx, &record.id, true).await?;
        self.refresh_balance(tx, &record.household_id, now_micros()).await?;
        Ok(())
    }

    pub(crate) async fn apply_objection_resolved(&self, tx: &mut Tx, resolved: &ObjectionResolved) -> Result<()> {
        let (mut record, rule) = self.record_and_rule(tx, &resolved.record_id).await?;
        if record.frozen == 0 {
            tracing::info!(record_id = %record.id, "objection resolved for a record not frozen; ignored");
            return Ok(());
        }
        store::set_frozen(&mut **tx, &record.id, false).await?;
        record.frozen = 0;
        let outcome = ObjectionOutcome::try_from(resolved.outcome).unwrap_or(ObjectionOutcome::Unspecified);
        let last = store::last_entry_of_record(&mut **tx, &record.household_id, &record.id)
            .await?
            .ok_or(PointsError::NotFound(RECORD))?;
        match outcome {
            ObjectionOutcome::Upheld | ObjectionOutcome::Amended => {
                let delta = if outcome == ObjectionOutcome::Amended {
                    let magnitude = resolved.amended_points;
                    if !(rule.points_min..=rule.points_max).contains(&magnitude) {
                        return Err(PointsError::invalid("amended_points", "outside the rule's range"));
                    }
                    if rule.kind == RuleKind::Deduction as i64 { -magnitude } else { magnitude }
                } else {
                    last.delta
                };
                // The rest of its original window: an objection does not lengthen a record's life.
                let from = last.effective_from.max(now_micros());
                let until = last.expires_at.max(from + 1);
                let prev = self.chain_head(tx, &record.household_id).await?;
                let entry = chain_entry_until(prev, &record, &rule, delta, (from, until), None);
                self.store_entry(tx, &entry).await?;
                if delta != record.points {
                    store::decide_record(
                        &mut **tx,
                        &record.id,
                        record.status,
                        delta,
                        record.effective_from,
                        record.expires_at,
                        &resolved.reason,
                    )
                    .await?;
                    record.points = delta;
                }
                let event = RecordEffective { record: Some(record_proto(&record)) };
                self.outbox.write(tx, &record.household_id, &event).await?;
            }
            ObjectionOutcome::Reversed | ObjectionOutcome::Unspecified => {
                // The freeze's opposite entry already cancelled it; it stays so.
                self.mark_reversed(tx, &mut record, &resolved.reason).await?;
            }
        }
        self.refresh_balance(tx, &record.household_id, now_micros()).await?;
        Ok(())
    }

    /// An approved repair: the deduction stops counting now.
    pub(crate) async fn apply_repair(&self, tx: &mut Tx, repair: &RepairApproved) -> Result<()> {
        let (mut record, rule) = self.record_and_rule(tx, &repair.record_id).await?;
        if record.frozen == 1 || !self.cancel_live_entry(tx, &record, &rule).await? {
            tracing::info!(record_id = %record.id, "repair for a record that does not count; nothing to end");
            return Ok(());
        }
        let reason = format!("信用修复 / credit repair: {}", repair.reason);
        self.mark_reversed(tx, &mut record, &reason).await?;
        self.refresh_balance(tx, &record.household_id, now_micros()).await?;
        Ok(())
    }

    async fn mark_reversed(&self, tx: &mut Tx, record: &mut RecordRow, reason: &str) -> Result<()> {
        store::decide_record(
            &mut **tx,
            &record.id,
            RecordStatus::Reversed as i64,
            record.points,
            record.effective_from,
            record.expires_at,
            reason,
        )
        .await?;
        record.status = RecordStatus::Reversed as i64;
        record.decision_reason = reason.to_owned();
        let event = RecordReversed { record: Some(record_proto(record)), reason: reason.to_owned() };
        self.outbox.write(tx, &record.household_id, &event).await?;
        Ok(())
    }
}
