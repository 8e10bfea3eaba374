//! A household's records count from its pledge (主动承诺). Pledges' events say when a household
//! signed or withdrew; before a pledge its records are held (or, by policy, accepted), after a
//! revocation none are taken, and signing releases what was held.

use jiaxin_kit::{storage::Tx, time::now_micros};
use jiaxin_proto::{
    pledges::{PledgeRenewed, PledgeRevoked, PledgeSigned},
    points::{PledgeStatus, RecordReleased, RecordStatus},
};

use crate::{
    UnpledgedRecords,
    domain::score::DAY_MICROS,
    error::{PointsError, Result},
    ops::{Points, record_proto},
    store,
};

/// What happens to a new record of a household, by its pledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Counts,
    Hold,
}

/// Whether a new record of a household with pledge `status` (PledgeStatus, if pledges said
/// anything) counts, waits, or is refused (consent withdrawn).
pub(crate) fn gate(status: Option<i64>, unpledged: UnpledgedRecords) -> Result<Gate> {
    match status {
        Some(s) if s == PledgeStatus::InForce as i64 => Ok(Gate::Counts),
        Some(s) if s == PledgeStatus::Revoked as i64 => Err(PointsError::Precondition(
            "该户已撤回信用承诺,不再记录 / the household withdrew its pledge: no new records".into(),
        )),
        _ => Ok(match unpledged {
            UnpledgedRecords::Hold => Gate::Hold,
            UnpledgedRecords::Accept => Gate::Counts,
        }),
    }
}

fn micros(ts: &Option<prost_types::Timestamp>) -> i64 {
    ts.as_ref().map(jiaxin_kit::time::from_timestamp).unwrap_or_else(now_micros)
}

/// A stored pledge status (`None` where pledges has said nothing) as the API names it.
pub(crate) fn pledge_status_of(stored: Option<i64>) -> PledgeStatus {
    stored.and_then(|status| PledgeStatus::try_from(status as i32).ok()).unwrap_or(PledgeStatus::None)
}

impl Points {
    /// The household's pledge status now (for scores and explanations).
    pub(crate) async fn pledge_status(
        &self,
        conn: &mut sqlx::AnyConnection,
        household_id: &str,
    ) -> Result<PledgeStatus> {
        Ok(pledge_status_of(store::pledge(&mut *conn, household_id).await?.map(|(status, _)| status)))
    }

    pub(crate) async fn apply_signed(&self, tx: &mut Tx, signed: &PledgeSigned) -> Result<()> {
        store::set_pledge(&mut **tx, &signed.household_id, PledgeStatus::InForce as i64, micros(&signed.signed_at))
            .await?;
        self.release_held(tx, &signed.household_id).await
    }

    /// A renewal keeps the pledge in force (it may also be the first pledge points hears of, if
    /// the signing's event was parked as a dead letter).
    pub(crate) async fn apply_renewed(&self, tx: &mut Tx, renewed: &PledgeRenewed) -> Result<()> {
        if store::pledge(&mut **tx, &renewed.household_id).await?.is_none() {
            let since = micros(&renewed.signed_at);
            store::set_pledge(&mut **tx, &renewed.household_id, PledgeStatus::InForce as i64, since).await?;
        }
        self.release_held(tx, &renewed.household_id).await
    }

    /// From now on the household accrues nothing new; what was already recorded keeps its course.
    pub(crate) async fn apply_revoked(&self, tx: &mut Tx, revoked: &PledgeRevoked) -> Result<()> {
        let at = micros(&revoked.revoked_at);
        store::set_pledge(&mut **tx, &revoked.household_id, PledgeStatus::Revoked as i64, at).await?;
        Ok(())
    }

    /// Held records go on as if submitted now: to the council when their rule or a self-report
    /// asks for review, otherwise straight into the ledger.
    async fn release_held(&self, tx: &mut Tx, household_id: &str) -> Result<()> {
        let held = store::held_records(&mut **tx, household_id).await?;
        if held.is_empty() {
            return Ok(());
        }
        store::lock_household(&mut **tx, household_id).await?;
        let org_path: Vec<String> = match store::household_path(&mut **tx, household_id).await? {
            Some((path, _)) => crate::ops::path_ids(&path).into_iter().map(str::to_owned).collect(),
            None => Vec::new(),
        };
        for mut record in held {
            let rule = store::rule_version(&mut **tx, &record.rule_code, record.rule_version)
                .await?
                .ok_or(PointsError::NotFound("规则"))?;
            let now = now_micros();
            if record.needs_review == 1 {
                record.status = RecordStatus::PendingReview as i64;
            } else {
                record.status = RecordStatus::Effective as i64;
                record.effective_from = Some(now);
                record.expires_at = Some(now + rule.counts_days * DAY_MICROS);
            }
            store::release_record(&mut **tx, &record.id, record.status, record.effective_from, record.expires_at)
                .await?;
            let released = RecordReleased {
                record: Some(record_proto(&record)),
                needs_review: record.needs_review == 1,
                org_path: org_path.clone(),
                points_min: rule.points_min,
                points_max: rule.points_max,
                disclosure_days: rule.disclosure_days as i32,
                severity: rule.severity as i32,
                category: rule.category as i32,
            };
            self.outbox.write(tx, household_id, &released).await?;
            if record.needs_review == 0 {
                self.take_effect(tx, &record, &rule, now).await?;
            }
        }
        tracing::info!(household_id, "held records released on the household's pledge");
        Ok(())
    }
}
