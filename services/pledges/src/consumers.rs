//! Identity's events, as pledges keeps them: the org tree, households and their members.
//!
//! What changes of a household do to its pledge (docs/api.md, "pledges"):
//! - a new household — registered, or split off another — starts unsigned: consent is given by
//!   a household for itself, so a split-off household signs its own pledge (the original keeps
//!   its pledge);
//! - a merge keeps the target's pledge as it stands; the source household is dissolved and leaves
//!   coverage;
//! - a member moving between households takes nothing along: each household's pledge stands;
//! - a grid moved to another village falls under that village's template: its households are
//!   unsigned there until they sign it (their earlier consent is not withdrawn, so points keeps
//!   counting; the grid worker's visit list shows them);
//! - a village moved to another town keeps its template and every pledge.

use async_trait::async_trait;
use jiaxin_kit::{
    events,
    inbox::{EventHandler, HandlerError},
    storage::Tx,
};
use jiaxin_proto::{
    events::Envelope,
    identity::{
        HouseholdDissolved, HouseholdHeadChanged, HouseholdRegistered, MemberJoined, MemberLeft, OrgNodeCreated,
        OrgNodeKind, OrgNodeMoved, Relation,
    },
    pledges::PledgeState,
};

use crate::{
    domain::state::{CoverageDelta, path_ids, path_of, standing},
    error::PledgesError,
    ops::{state_of, write_coverage},
    store::{self, HouseholdRow},
};

fn failed(error: impl std::fmt::Display) -> HandlerError {
    HandlerError::new(error.to_string())
}

/// Everything pledges consumes (identity's topic), as one consumer group `jiaxin.pledges`.
pub struct PledgesEvents;

#[async_trait]
impl EventHandler for PledgesEvents {
    async fn handle(&self, tx: &mut Tx, envelope: &Envelope) -> Result<(), HandlerError> {
        if envelope.producer != "identity" {
            return Ok(());
        }
        identity(tx, envelope).await.map_err(failed)
    }
}

async fn identity(tx: &mut Tx, envelope: &Envelope) -> Result<(), PledgesError> {
    let mut delta = CoverageDelta::default();
    if let Some(created) = events::payload::<OrgNodeCreated>(envelope)? {
        if let Some(node) = created.org_node {
            let parent = node.path.iter().rev().nth(1).cloned().unwrap_or_default();
            store::upsert_org_node(&mut **tx, &node.id, &parent, &path_of(&node.path), i64::from(node.kind)).await?;
        }
    } else if let Some(moved) = events::payload::<OrgNodeMoved>(envelope)? {
        move_node(tx, &moved, &mut delta).await?;
    } else if let Some(registered) = events::payload::<HouseholdRegistered>(envelope)? {
        register(tx, &registered, &mut delta).await?;
    } else if let Some(dissolved) = events::payload::<HouseholdDissolved>(envelope)? {
        if let Some(row) = store::household(&mut **tx, &dissolved.household_id).await?
            && row.active == 1
        {
            store::deactivate_household(&mut **tx, &row.id).await?;
            delta.household(&path_ids(&row.path), state_of(&row), -1);
        }
    } else if let Some(joined) = events::payload::<MemberJoined>(envelope)? {
        store::upsert_member(&mut **tx, &joined.household_id, &joined.resident_id, &joined.birth_date).await?;
        if joined.relation == Relation::Head as i32 {
            store::set_head(&mut **tx, &joined.household_id, &joined.resident_id).await?;
        }
    } else if let Some(left) = events::payload::<MemberLeft>(envelope)? {
        store::remove_member(tx, &left.household_id, &left.resident_id).await?;
    } else if let Some(head) = events::payload::<HouseholdHeadChanged>(envelope)? {
        store::set_head(&mut **tx, &head.household_id, &head.head_resident_id).await?;
    }
    // Renames, accounts, deaths (a MemberLeft follows) do not change pledges.
    write_coverage(tx, &mut delta).await?;
    Ok(())
}

async fn register(
    tx: &mut Tx,
    registered: &HouseholdRegistered,
    delta: &mut CoverageDelta,
) -> Result<(), PledgesError> {
    let path = path_of(&registered.org_path);
    // The grid's path comes with the event, so the household counts even if the grid's own
    // event (another partition) has not arrived yet.
    if store::org_node(&mut **tx, &registered.grid_id).await?.is_none() {
        let parent = registered.org_path.iter().rev().nth(1).cloned().unwrap_or_default();
        store::upsert_org_node(&mut **tx, &registered.grid_id, &parent, &path, OrgNodeKind::Grid as i64).await?;
    }
    let inserted = store::insert_household(
        &mut **tx,
        &registered.household_id,
        &registered.grid_id,
        &path,
        &registered.address,
        &registered.head_resident_id,
    )
    .await?;
    if inserted {
        delta.household(&path_ids(&path), PledgeState::Unsigned, 1);
    }
    // The head's MemberJoined follows in its own event; knowing the head now means a household
    // pledges can show is one its head can sign for.
    if !registered.head_birth_date.is_empty() {
        store::upsert_member(
            &mut **tx,
            &registered.household_id,
            &registered.head_resident_id,
            &registered.head_birth_date,
        )
        .await?;
    }
    Ok(())
}

/// Re-roots the subtree; every household under it leaves the old ancestors' coverage and joins
/// the new ones', with its standing under the template that now applies.
async fn move_node(tx: &mut Tx, moved: &OrgNodeMoved, delta: &mut CoverageDelta) -> Result<(), PledgesError> {
    let new_path = path_of(&moved.path);
    let Some((old_path, kind)) = store::org_node(&mut **tx, &moved.org_node_id).await? else {
        store::upsert_org_node(&mut **tx, &moved.org_node_id, &moved.new_parent_id, &new_path, 0).await?;
        return Ok(());
    };
    let before = store::households_under(&mut **tx, &old_path).await?;
    for row in &before {
        delta.household(&path_ids(&row.path), state_of(row), -1);
    }
    store::move_subtree(tx, &old_path, &new_path).await?;
    store::upsert_org_node(&mut **tx, &moved.org_node_id, &moved.new_parent_id, &new_path, kind).await?;
    for row in store::households_under(&mut **tx, &new_path).await? {
        let state = standing_under_current_template(tx, &row).await?;
        if state != state_of(&row) {
            store::set_standing(
                &mut **tx,
                &row.id,
                state as i64,
                row.signature_id.as_deref(),
                row.template_id.as_deref(),
                row.signed_version,
            )
            .await?;
        }
        delta.household(&path_ids(&row.path), state, 1);
    }
    Ok(())
}

/// Where a household stands with the template on its (new) path: its own signature counts only
/// for the template it signed.
async fn standing_under_current_template(tx: &mut Tx, row: &HouseholdRow) -> Result<PledgeState, PledgesError> {
    let template = store::template_on_path(&mut **tx, &path_ids(&row.path)).await?;
    let (Some(template), Some(signature_id)) = (template, row.signature_id.as_deref()) else {
        return Ok(PledgeState::Unsigned);
    };
    let Some(signature) = store::signature(&mut **tx, signature_id).await? else {
        return Ok(PledgeState::Unsigned);
    };
    if signature.template_id != template.id {
        return Ok(PledgeState::Unsigned);
    }
    Ok(match signature.status {
        store::IN_FORCE => standing(signature.template_version, store::resign_from(&mut **tx, &template.id).await?),
        store::REVOKED => PledgeState::Revoked,
        _ => PledgeState::Unsigned,
    })
}
