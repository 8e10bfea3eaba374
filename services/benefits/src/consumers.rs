//! Events benefits keeps read models of: identity's org tree, households and members (scope,
//! villages, who is a household's member); pledges' signings and revocations (the honours'
//! pledge criterion); points' score changes (the standing every check reads) and serious
//! deductions (the honours' criterion); the bank's loan outcomes (a village's non-performing
//! ratio).

use async_trait::async_trait;
use jiaxin_kit::{
    events,
    inbox::{EventHandler, HandlerError},
    sql::path_of,
    storage::Tx,
    time::from_timestamp,
};
use jiaxin_proto::{
    bank::{LoanEventKind, LoanEventReported},
    events::Envelope,
    identity::{HouseholdDissolved, HouseholdRegistered, MemberJoined, MemberLeft, OrgNodeCreated, OrgNodeMoved},
    pledges::{PledgeRenewed, PledgeRevoked, PledgeSigned},
    points::{Record, RecordEffective, RecordReleased, RecordReversed, RecordSubmitted, ScoreChanged, Severity},
};

use crate::{
    error::BenefitsError,
    store::readmodel::{self, LoanChange},
};

fn failed(error: impl std::fmt::Display) -> HandlerError {
    HandlerError::new(error.to_string())
}

/// Everything benefits consumes, as one consumer group `jiaxin.benefits`.
pub struct BenefitsEvents;

#[async_trait]
impl EventHandler for BenefitsEvents {
    async fn handle(&self, tx: &mut Tx, envelope: &Envelope) -> Result<(), HandlerError> {
        match envelope.producer.as_str() {
            "identity" => identity(tx, envelope).await.map_err(failed),
            "pledges" => pledges(tx, envelope).await.map_err(failed),
            "points" => points(tx, envelope).await.map_err(failed),
            "bank" => bank(tx, envelope).await.map_err(failed),
            _ => Ok(()),
        }
    }
}

async fn identity(tx: &mut Tx, envelope: &Envelope) -> Result<(), BenefitsError> {
    if let Some(created) = events::payload::<OrgNodeCreated>(envelope)? {
        if let Some(node) = created.org_node {
            readmodel::upsert_org_node(&mut **tx, &node.id, &path_of(&node.path), i64::from(node.kind)).await?;
        }
    } else if let Some(moved) = events::payload::<OrgNodeMoved>(envelope)? {
        jiaxin_kit::orgmodel::apply_move(tx, readmodel::PLACED_TABLES, &moved.org_node_id, &path_of(&moved.path))
            .await?;
    } else if let Some(registered) = events::payload::<HouseholdRegistered>(envelope)? {
        readmodel::upsert_household(&mut **tx, &registered.household_id, &path_of(&registered.org_path)).await?;
    } else if let Some(dissolved) = events::payload::<HouseholdDissolved>(envelope)? {
        readmodel::dissolve_household(&mut **tx, &dissolved.household_id).await?;
    } else if let Some(joined) = events::payload::<MemberJoined>(envelope)? {
        readmodel::set_membership(&mut **tx, &joined.household_id, &joined.resident_id, true).await?;
    } else if let Some(left) = events::payload::<MemberLeft>(envelope)? {
        readmodel::set_membership(&mut **tx, &left.household_id, &left.resident_id, false).await?;
    }
    Ok(())
}

/// A pledge without a signing time counts from when the event was written.
fn moment(at: Option<&prost_types::Timestamp>, envelope: &Envelope) -> i64 {
    at.or(envelope.occurred_at.as_ref()).map(from_timestamp).unwrap_or_default()
}

async fn pledges(tx: &mut Tx, envelope: &Envelope) -> Result<(), BenefitsError> {
    if let Some(signed) = events::payload::<PledgeSigned>(envelope)? {
        readmodel::set_pledged(tx, &signed.household_id, moment(signed.signed_at.as_ref(), envelope)).await?;
    } else if let Some(renewed) = events::payload::<PledgeRenewed>(envelope)? {
        readmodel::set_pledged(tx, &renewed.household_id, moment(renewed.signed_at.as_ref(), envelope)).await?;
    } else if let Some(revoked) = events::payload::<PledgeRevoked>(envelope)? {
        readmodel::set_revoked(tx, &revoked.household_id, moment(revoked.revoked_at.as_ref(), envelope)).await?;
    }
    Ok(())
}

fn serious_deduction(record: &Option<Record>, severity: i32) -> Option<&Record> {
    record.as_ref().filter(|r| severity == Severity::Serious as i32 && r.points < 0)
}

async fn points(tx: &mut Tx, envelope: &Envelope) -> Result<(), BenefitsError> {
    if let Some(changed) = events::payload::<ScoreChanged>(envelope)? {
        let at = moment(changed.at.as_ref(), envelope);
        readmodel::apply_score(
            tx,
            &changed.household_id,
            changed.new_score,
            &changed.new_tier,
            changed.redeemable_points,
            at,
        )
        .await?;
    } else if let Some(submitted) = events::payload::<RecordSubmitted>(envelope)? {
        if let Some(record) = serious_deduction(&submitted.record, submitted.severity) {
            readmodel::note_serious(&mut **tx, &record.id, &record.household_id).await?;
        }
    } else if let Some(released) = events::payload::<RecordReleased>(envelope)? {
        if let Some(record) = serious_deduction(&released.record, released.severity) {
            readmodel::note_serious(&mut **tx, &record.id, &record.household_id).await?;
        }
    } else if let Some(effective) = events::payload::<RecordEffective>(envelope)? {
        if let Some(record) = effective.record
            && let (Some(from), Some(until)) = (record.effective_from.as_ref(), record.expires_at.as_ref())
        {
            readmodel::serious_effective(&mut **tx, &record.id, from_timestamp(from), from_timestamp(until)).await?;
        }
    } else if let Some(reversed) = events::payload::<RecordReversed>(envelope)?
        && let Some(record) = reversed.record
    {
        readmodel::serious_reversed(&mut **tx, &record.id, moment(None, envelope)).await?;
    }
    Ok(())
}

/// Loans and their outcomes, for a village's non-performing ratio.
async fn bank(tx: &mut Tx, envelope: &Envelope) -> Result<(), BenefitsError> {
    if let Some(reported) = events::payload::<LoanEventReported>(envelope)?
        && let Some(event) = reported.event
    {
        let change = match LoanEventKind::try_from(event.kind).unwrap_or(LoanEventKind::Unspecified) {
            LoanEventKind::Disbursed => LoanChange::Disbursed,
            LoanEventKind::Overdue | LoanEventKind::WrittenOff => LoanChange::Bad,
            LoanEventKind::RepaidOnTime => LoanChange::Repaid,
            LoanEventKind::LineGranted | LoanEventKind::Unspecified => return Ok(()),
        };
        readmodel::apply_loan_event(&mut **tx, &event.institution_id, &event.loan_ref, &event.household_id, change)
            .await?;
    }
    Ok(())
}
