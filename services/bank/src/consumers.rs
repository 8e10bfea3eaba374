//! Events the bank keeps read models of: identity's org tree, households (with their head) and
//! members; pledges' signings and revocations; points' score changes and records (category,
//! class, window; a repair or reversal takes a record off the report); benefits' credit
//! households.

use async_trait::async_trait;
use jiaxin_kit::{
    events,
    inbox::{EventHandler, HandlerError},
    sql::path_of,
    storage::Tx,
    time::from_timestamp,
};
use jiaxin_proto::{
    benefits::HouseholdHonoured,
    events::Envelope,
    identity::{
        HouseholdDissolved, HouseholdHeadChanged, HouseholdRegistered, MemberJoined, MemberLeft, OrgNodeCreated,
        OrgNodeMoved,
    },
    pledges::{PledgeRenewed, PledgeRevoked, PledgeSigned},
    points::{Record, RecordEffective, RecordReleased, RecordReversed, RecordSubmitted, ScoreChanged},
};

use crate::{
    error::BankError,
    store::readmodel::{self, PledgeMoment},
};

fn failed(error: impl std::fmt::Display) -> HandlerError {
    HandlerError::new(error.to_string())
}

/// Everything the bank consumes, as one consumer group `jiaxin.bank`.
pub struct BankEvents;

#[async_trait]
impl EventHandler for BankEvents {
    async fn handle(&self, tx: &mut Tx, envelope: &Envelope) -> Result<(), HandlerError> {
        match envelope.producer.as_str() {
            "identity" => identity(tx, envelope).await.map_err(failed),
            "pledges" => pledges(tx, envelope).await.map_err(failed),
            "points" => points(tx, envelope).await.map_err(failed),
            "benefits" => benefits(tx, envelope).await.map_err(failed),
            _ => Ok(()),
        }
    }
}

async fn identity(tx: &mut Tx, envelope: &Envelope) -> Result<(), BankError> {
    if let Some(created) = events::payload::<OrgNodeCreated>(envelope)? {
        if let Some(node) = created.org_node {
            readmodel::upsert_org_node(&mut **tx, &node.id, &path_of(&node.path), i64::from(node.kind)).await?;
        }
    } else if let Some(moved) = events::payload::<OrgNodeMoved>(envelope)? {
        jiaxin_kit::orgmodel::apply_move(tx, readmodel::PLACED_TABLES, &moved.org_node_id, &path_of(&moved.path))
            .await?;
    } else if let Some(registered) = events::payload::<HouseholdRegistered>(envelope)? {
        let path = path_of(&registered.org_path);
        readmodel::upsert_household(&mut **tx, &registered.household_id, &path, &registered.head_resident_id).await?;
        // The head's own MemberJoined follows; taking the head now means a household the bank
        // knows is one whose head can already grant consent.
        if !registered.head_birth_date.is_empty() {
            let (household, head) = (&registered.household_id, &registered.head_resident_id);
            readmodel::set_membership(&mut **tx, household, head, true).await?;
            readmodel::set_birth_date(&mut **tx, household, head, &registered.head_birth_date).await?;
        }
    } else if let Some(changed) = events::payload::<HouseholdHeadChanged>(envelope)? {
        readmodel::set_head(&mut **tx, &changed.household_id, &changed.head_resident_id).await?;
    } else if let Some(dissolved) = events::payload::<HouseholdDissolved>(envelope)? {
        readmodel::dissolve_household(&mut **tx, &dissolved.household_id).await?;
    } else if let Some(joined) = events::payload::<MemberJoined>(envelope)? {
        readmodel::set_membership(&mut **tx, &joined.household_id, &joined.resident_id, true).await?;
        readmodel::set_birth_date(&mut **tx, &joined.household_id, &joined.resident_id, &joined.birth_date).await?;
    } else if let Some(left) = events::payload::<MemberLeft>(envelope)? {
        readmodel::set_membership(&mut **tx, &left.household_id, &left.resident_id, false).await?;
        // An authorisation ends with the membership.
        readmodel::set_authorised(&mut **tx, &left.household_id, &left.resident_id, false).await?;
    }
    Ok(())
}

/// A moment an event names, or when it was written.
fn moment(at: Option<&prost_types::Timestamp>, envelope: &Envelope) -> i64 {
    at.or(envelope.occurred_at.as_ref()).map(from_timestamp).unwrap_or_default()
}

async fn pledges(tx: &mut Tx, envelope: &Envelope) -> Result<(), BankError> {
    if let Some(signed) = events::payload::<PledgeSigned>(envelope)? {
        let at = moment(signed.signed_at.as_ref(), envelope);
        readmodel::set_pledge_moment(tx, &signed.household_id, PledgeMoment::Signed, at).await?;
    } else if let Some(renewed) = events::payload::<PledgeRenewed>(envelope)? {
        let at = moment(renewed.signed_at.as_ref(), envelope);
        readmodel::set_pledge_moment(tx, &renewed.household_id, PledgeMoment::Signed, at).await?;
    } else if let Some(revoked) = events::payload::<PledgeRevoked>(envelope)? {
        let at = moment(revoked.revoked_at.as_ref(), envelope);
        readmodel::set_pledge_moment(tx, &revoked.household_id, PledgeMoment::Revoked, at).await?;
    }
    Ok(())
}

async fn note(tx: &mut Tx, record: Option<&Record>, category: i32, severity: i32) -> Result<(), BankError> {
    if let Some(r) = record {
        readmodel::note_record(
            &mut **tx,
            &r.id,
            &r.household_id,
            i64::from(category),
            i64::from(severity),
            r.points > 0,
        )
        .await?;
    }
    Ok(())
}

async fn points(tx: &mut Tx, envelope: &Envelope) -> Result<(), BankError> {
    if let Some(changed) = events::payload::<ScoreChanged>(envelope)? {
        let at = moment(changed.at.as_ref(), envelope);
        readmodel::apply_score(tx, &changed.household_id, changed.new_score, &changed.new_tier, at).await?;
    } else if let Some(submitted) = events::payload::<RecordSubmitted>(envelope)? {
        note(tx, submitted.record.as_ref(), submitted.category, submitted.severity).await?;
    } else if let Some(released) = events::payload::<RecordReleased>(envelope)? {
        note(tx, released.record.as_ref(), released.category, released.severity).await?;
    } else if let Some(effective) = events::payload::<RecordEffective>(envelope)? {
        if let Some(record) = effective.record
            && let (Some(from), Some(until)) = (record.effective_from.as_ref(), record.expires_at.as_ref())
        {
            readmodel::record_effective(&mut **tx, &record.id, from_timestamp(from), from_timestamp(until)).await?;
        }
    } else if let Some(reversed) = events::payload::<RecordReversed>(envelope)?
        && let Some(record) = reversed.record
    {
        // Reversed by the council, on objection, or ended by a credit repair: off the report.
        readmodel::record_reversed(&mut **tx, &record.id).await?;
    }
    Ok(())
}

async fn benefits(tx: &mut Tx, envelope: &Envelope) -> Result<(), BankError> {
    if let Some(honoured) = events::payload::<HouseholdHonoured>(envelope)? {
        readmodel::set_credit_household(tx, &honoured.household_id, i64::from(honoured.year)).await?;
    }
    Ok(())
}
