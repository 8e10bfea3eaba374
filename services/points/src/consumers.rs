//! Events points acts on: identity's households, members and org tree (kept as a read model for
//! scope checks), pledges' signings and revocations, the council's review decisions,
//! objections and credit repairs, and the bank's loan outcomes.

use std::sync::Arc;

use async_trait::async_trait;
use jiaxin_kit::{
    events,
    inbox::{EventHandler, HandlerError},
    storage::Tx,
};
use jiaxin_proto::{
    bank::LoanEventReported,
    council::{ObjectionFiled, ObjectionResolved, RepairApproved, ReviewDecided},
    events::Envelope,
    identity::{HouseholdDissolved, HouseholdRegistered, MemberJoined, MemberLeft, OrgNodeCreated, OrgNodeMoved},
    pledges::{PledgeRenewed, PledgeRevoked, PledgeSigned},
};

use crate::{ops::Points, store};

/// identity's `ORG_NODE_KIND_GRID`.
const GRID_KIND: i64 = jiaxin_proto::identity::OrgNodeKind::Grid as i64;

use jiaxin_kit::sql::path_of;

fn failed(error: impl std::fmt::Display) -> HandlerError {
    HandlerError::new(error.to_string())
}

/// Everything points consumes, as one consumer (one consumer group, `jiaxin.points`).
pub struct PointsEvents(pub Arc<Points>);

#[async_trait]
impl EventHandler for PointsEvents {
    async fn handle(&self, tx: &mut Tx, envelope: &Envelope) -> Result<(), HandlerError> {
        match envelope.producer.as_str() {
            "identity" => identity(tx, envelope).await,
            "pledges" => {
                if let Some(signed) = events::payload::<PledgeSigned>(envelope).map_err(failed)? {
                    self.0.apply_signed(tx, &signed).await.map_err(failed)?;
                } else if let Some(renewed) = events::payload::<PledgeRenewed>(envelope).map_err(failed)? {
                    self.0.apply_renewed(tx, &renewed).await.map_err(failed)?;
                } else if let Some(revoked) = events::payload::<PledgeRevoked>(envelope).map_err(failed)? {
                    self.0.apply_revoked(tx, &revoked).await.map_err(failed)?;
                }
                Ok(())
            }
            "council" => {
                if let Some(decision) = events::payload::<ReviewDecided>(envelope).map_err(failed)? {
                    self.0.apply_review(tx, &decision).await.map_err(failed)?;
                } else if let Some(filed) = events::payload::<ObjectionFiled>(envelope).map_err(failed)? {
                    self.0.apply_objection_filed(tx, &filed).await.map_err(failed)?;
                } else if let Some(resolved) = events::payload::<ObjectionResolved>(envelope).map_err(failed)? {
                    self.0.apply_objection_resolved(tx, &resolved).await.map_err(failed)?;
                } else if let Some(repair) = events::payload::<RepairApproved>(envelope).map_err(failed)? {
                    self.0.apply_repair(tx, &repair).await.map_err(failed)?;
                }
                Ok(())
            }
            "bank" => {
                if let Some(reported) = events::payload::<LoanEventReported>(envelope).map_err(failed)? {
                    self.0.apply_loan_event(tx, &reported).await.map_err(failed)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Keeps points' copy of the org tree, households and members.
async fn identity(tx: &mut Tx, envelope: &Envelope) -> Result<(), HandlerError> {
    if let Some(created) = events::payload::<OrgNodeCreated>(envelope).map_err(failed)? {
        if let Some(node) = created.org_node {
            store::upsert_org_node(&mut **tx, &node.id, &path_of(&node.path), i64::from(node.kind))
                .await
                .map_err(failed)?;
        }
    } else if let Some(moved) = events::payload::<OrgNodeMoved>(envelope).map_err(failed)? {
        // Points keeps households by grid id, so only the nodes' own paths move.
        jiaxin_kit::orgmodel::apply_move(tx, &["org_nodes"], &moved.org_node_id, &path_of(&moved.path))
            .await
            .map_err(failed)?;
    } else if let Some(registered) = events::payload::<HouseholdRegistered>(envelope).map_err(failed)? {
        // The grid's path comes with the event, so the household is usable even if its grid's
        // own event was missed.
        if store::org_node_path(&mut **tx, &registered.grid_id).await.map_err(failed)?.is_none() {
            store::upsert_org_node(&mut **tx, &registered.grid_id, &path_of(&registered.org_path), GRID_KIND)
                .await
                .map_err(failed)?;
        }
        store::upsert_household(&mut **tx, &registered.household_id, &registered.grid_id).await.map_err(failed)?;
    } else if let Some(dissolved) = events::payload::<HouseholdDissolved>(envelope).map_err(failed)? {
        store::deactivate_household(&mut **tx, &dissolved.household_id).await.map_err(failed)?;
    } else if let Some(joined) = events::payload::<MemberJoined>(envelope).map_err(failed)? {
        store::add_member(&mut **tx, &joined.household_id, &joined.resident_id).await.map_err(failed)?;
    } else if let Some(left) = events::payload::<MemberLeft>(envelope).map_err(failed)? {
        store::remove_member(&mut **tx, &left.household_id, &left.resident_id).await.map_err(failed)?;
    }
    // Other identity events (renames, accounts) do not concern points.
    Ok(())
}
