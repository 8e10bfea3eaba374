//! Events the council acts on: identity's org tree, households and memberships (for scope,
//! masked addresses and recusal), points' records that need review, and pledges' signings (a
//! repair needs a fresh pledge).

use std::sync::Arc;

use async_trait::async_trait;
use jiaxin_kit::{
    events,
    inbox::{EventHandler, HandlerError},
    storage::Tx,
};
use jiaxin_proto::{
    events::Envelope,
    identity::{HouseholdRegistered, MemberJoined, MemberLeft, OrgNodeCreated, OrgNodeMoved},
    pledges::{PledgeRenewed, PledgeSigned},
    points::{RecordReleased, RecordSubmitted},
};

use crate::{
    error::CouncilError,
    ops::{Council, path_of},
    store,
};

fn failed(error: impl std::fmt::Display) -> HandlerError {
    HandlerError::new(error.to_string())
}

/// Everything the council consumes, as one consumer group `jiaxin.council`.
pub struct CouncilEvents(pub Arc<Council>);

#[async_trait]
impl EventHandler for CouncilEvents {
    async fn handle(&self, tx: &mut Tx, envelope: &Envelope) -> Result<(), HandlerError> {
        match envelope.producer.as_str() {
            "identity" => identity(tx, envelope).await.map_err(failed),
            "points" => self.points(tx, envelope).await.map_err(failed),
            "pledges" => pledges(tx, envelope).await.map_err(failed),
            _ => Ok(()),
        }
    }
}

impl CouncilEvents {
    async fn points(&self, tx: &mut Tx, envelope: &Envelope) -> Result<(), CouncilError> {
        use crate::ops::Submitted;
        if let Some(submitted) = events::payload::<RecordSubmitted>(envelope)? {
            if submitted.needs_review
                && let Some(record) = &submitted.record
            {
                let task = Submitted {
                    record,
                    org_path: &submitted.org_path,
                    points_min: submitted.points_min,
                    points_max: submitted.points_max,
                    disclosure_days: i64::from(submitted.disclosure_days),
                    severity: i64::from(submitted.severity),
                };
                self.0.open_task(tx, task).await?;
            }
        } else if let Some(released) = events::payload::<RecordReleased>(envelope)?
            && released.needs_review
            && let Some(record) = &released.record
        {
            let task = Submitted {
                record,
                org_path: &released.org_path,
                points_min: released.points_min,
                points_max: released.points_max,
                disclosure_days: i64::from(released.disclosure_days),
                severity: i64::from(released.severity),
            };
            self.0.open_task(tx, task).await?;
        }
        Ok(())
    }
}

async fn identity(tx: &mut Tx, envelope: &Envelope) -> Result<(), CouncilError> {
    if let Some(created) = events::payload::<OrgNodeCreated>(envelope)? {
        if let Some(node) = created.org_node {
            store::upsert_org_node(&mut **tx, &node.id, &path_of(&node.path), i64::from(node.kind)).await?;
        }
    } else if let Some(moved) = events::payload::<OrgNodeMoved>(envelope)? {
        jiaxin_kit::orgmodel::apply_move(tx, store::PLACED_TABLES, &moved.org_node_id, &path_of(&moved.path)).await?;
    } else if let Some(registered) = events::payload::<HouseholdRegistered>(envelope)? {
        store::upsert_household(&mut **tx, &registered.household_id, &registered.address).await?;
    } else if let Some(joined) = events::payload::<MemberJoined>(envelope)? {
        store::add_membership(&mut **tx, &joined.household_id, &joined.resident_id).await?;
    } else if let Some(left) = events::payload::<MemberLeft>(envelope)? {
        // Kept as history: recusal looks at every household a resident ever belonged to.
        store::end_membership(&mut **tx, &left.household_id, &left.resident_id).await?;
    }
    Ok(())
}

/// When each household last signed (credit repair asks for a fresh pledge).
async fn pledges(tx: &mut Tx, envelope: &Envelope) -> Result<(), CouncilError> {
    let signed = match events::payload::<PledgeSigned>(envelope)? {
        Some(signed) => Some((signed.household_id, signed.signed_at)),
        None => events::payload::<PledgeRenewed>(envelope)?.map(|renewed| (renewed.household_id, renewed.signed_at)),
    };
    if let Some((household_id, Some(at))) = signed {
        store::set_pledged(&mut **tx, &household_id, jiaxin_kit::time::from_timestamp(&at)).await?;
    }
    Ok(())
}
