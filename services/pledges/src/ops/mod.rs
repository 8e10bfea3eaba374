//! Pledges' operations: each one transaction that checks the caller, validates against current
//! state, writes, keeps coverage and adds its events to the outbox.

mod campaigns;
mod coverage;
mod signing;
mod templates;

use jiaxin_kit::{
    auth::{Caller, Role},
    outbox::Outbox,
    storage::{Database, Tx},
    time::to_timestamp,
};
use jiaxin_proto::pledges::{PledgeState, Signature, Template};

use crate::{
    domain::state::{CoverageDelta, path_ids},
    error::{PledgesError, Result},
    store::{self, HouseholdRow, SignatureRow, TemplateRow},
};

pub(crate) const HOUSEHOLD: &str = "家庭户";
/// Paper forms and phones may be stamped a little ahead of the server's clock.
pub(crate) const CLOCK_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

pub struct Pledges {
    pub(crate) db: Database,
    pub(crate) outbox: Outbox,
}

impl Pledges {
    pub fn new(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

/// Writes an operation's coverage changes.
pub(crate) async fn write_coverage(tx: &mut Tx, delta: &mut CoverageDelta) -> Result<()> {
    for (node, change) in delta.take() {
        store::add_coverage(&mut **tx, &node, &change).await?;
    }
    Ok(())
}

pub(crate) fn state_of(row: &HouseholdRow) -> PledgeState {
    PledgeState::try_from(row.state as i32).unwrap_or(PledgeState::Unsigned)
}

/// Whether the caller is a resident who is a current member of the household.
pub(crate) async fn is_own_household(tx: &mut Tx, caller: &Caller, household_id: &str) -> Result<bool> {
    if !caller.has_role(Role::Resident) {
        return Ok(false);
    }
    match caller.0.rid.as_deref() {
        Some(rid) => Ok(store::member_birth_date(&mut **tx, household_id, rid).await?.is_some()),
        None => Ok(false),
    }
}

/// The household, when the caller may act on it with one of `roles` inside their scope, or
/// (with `residents`) as a member. Anything else reads as missing.
pub(crate) async fn household_for(
    tx: &mut Tx,
    caller: &Caller,
    household_id: &str,
    roles: &[Role],
    residents: bool,
) -> Result<HouseholdRow> {
    let row = store::household(&mut **tx, household_id).await?.ok_or(PledgesError::NotFound(HOUSEHOLD))?;
    let by_role = caller.has_any_role(roles) && caller.covers(&path_ids(&row.path));
    if by_role || (residents && is_own_household(tx, caller, household_id).await?) {
        Ok(row)
    } else {
        Err(PledgesError::NotFound(HOUSEHOLD))
    }
}

pub(crate) fn template_proto(t: &TemplateRow, with_body: bool) -> Template {
    Template {
        id: t.id.clone(),
        org_node_id: t.org_node_id.clone(),
        kind: t.kind as i32,
        version: t.version as i32,
        title: t.title.clone(),
        body: if with_body { t.body.clone() } else { String::new() },
        consent_clause: t.consent_clause.clone(),
        effective_on: t.effective_on.clone(),
        adopted_by: t.adopted_by.clone(),
        adopted_on: t.adopted_on.clone(),
        requires_resign: t.requires_resign == 1,
        published_at: Some(to_timestamp(t.published_at)),
        published_by: t.published_by.clone(),
    }
}

pub(crate) fn signature_proto(s: &SignatureRow) -> Signature {
    Signature {
        id: s.id.clone(),
        household_id: s.household_id.clone(),
        template_id: s.template_id.clone(),
        template_version: s.template_version as i32,
        signer_resident_id: s.signer_resident_id.clone(),
        channel: s.channel as i32,
        scan_reference: s.scan_reference.clone(),
        campaign_id: s.campaign_id.clone(),
        signed_at: Some(to_timestamp(s.signed_at)),
        collected_by: s.collected_by.clone(),
        revoked: s.status == store::REVOKED,
        revoked_at: s.revoked_at.map(to_timestamp),
        revoke_reason: s.revoke_reason.clone(),
    }
}
