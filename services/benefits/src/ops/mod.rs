//! Benefits' operations: each one transaction that checks the caller, validates against current
//! state, writes (with its audit entries) and adds its events to the outbox.

mod catalogue;
mod checks;
mod honours;
mod shop;

use jiaxin_kit::{
    audit,
    auth::{Caller, Role},
    group_commit::GroupCommit,
    sql::path_ids,
    storage::{Database, Tx},
    time::now_micros,
};

use crate::{
    domain::{access, honours::Criteria},
    error::{BenefitsError, Result},
    store::readmodel,
};

pub(crate) const HOUSEHOLD: &str = "household";
pub(crate) const BENEFIT: &str = "benefit";

pub struct Benefits {
    pub(crate) db: Database,
    pub(crate) outbox: jiaxin_kit::outbox::Outbox,
    pub(crate) criteria: Criteria,
    /// Where single eligibility checks' audit entries are committed together.
    pub(crate) audit_log: GroupCommit<audit::AuditWriter>,
}

impl Benefits {
    /// Starts the audit log's writer on the current tokio runtime.
    pub fn new(db: Database, outbox: jiaxin_kit::outbox::Outbox, criteria: Criteria) -> Self {
        Self {
            audit_log: GroupCommit::start(db.clone(), "benefits_audit_log", audit::AuditWriter),
            db,
            outbox,
            criteria,
        }
    }

    /// A household the caller may read: one of its current members, or a reader whose scope
    /// holds it. Anything else reads as not found. Returns the household's org path.
    pub(crate) async fn readable_household(&self, tx: &mut Tx, caller: &Caller, household_id: &str) -> Result<String> {
        let path =
            readmodel::household_path(&mut **tx, household_id).await?.ok_or(BenefitsError::NotFound(HOUSEHOLD))?;
        let by_role = caller.has_any_role(access::STANDING_READERS) && caller.covers(&path_ids(&path));
        if by_role || self.is_own(tx, caller, household_id).await? {
            Ok(path)
        } else {
            Err(BenefitsError::NotFound(HOUSEHOLD))
        }
    }

    /// Whether the caller is a resident who currently belongs to the household.
    pub(crate) async fn is_own(&self, tx: &mut Tx, caller: &Caller, household_id: &str) -> Result<bool> {
        Ok(match (caller.has_role(Role::Resident), caller.0.rid.as_deref()) {
            (true, Some(rid)) => readmodel::is_member(&mut **tx, household_id, rid).await?,
            _ => false,
        })
    }

    /// The org path of a node the caller's scope holds.
    pub(crate) async fn scoped_node(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        org_node_id: &str,
        field: &str,
    ) -> Result<String> {
        if org_node_id.trim().is_empty() {
            return Err(BenefitsError::invalid(field, "必填 / required"));
        }
        // One answer for a node that does not exist and one outside the caller's scope, so the
        // answer does not tell which nodes exist elsewhere (the authorisation matrix checks it).
        let unknown =
            || BenefitsError::invalid(field, "机构不存在或不在您的管辖范围内 / no such org node in your scope");
        let path = readmodel::org_path(&mut **tx, org_node_id).await?.ok_or_else(unknown)?;
        if caller.covers(&path_ids(&path)) { Ok(path) } else { Err(unknown()) }
    }
}

/// Appends audit entries inside the operation's transaction: if they cannot be written, neither
/// can what they record, and the answer is not given.
pub(crate) async fn audit(tx: &mut Tx, entries: &[audit::Entry<'_>]) -> Result<()> {
    audit::append(tx, entries).await?;
    Ok(())
}

pub(crate) fn now() -> i64 {
    now_micros()
}

/// The village of a household's path (the grid's parent), "" when the path is too short.
pub(crate) fn village_of(path: &str) -> &str {
    path_ids(path).iter().rev().nth(1).copied().unwrap_or("")
}

/// The path of a household's village: the household's path without its grid.
pub(crate) fn village_path(path: &str) -> String {
    let ids = path_ids(path);
    jiaxin_kit::sql::path_of(&ids[..ids.len().saturating_sub(1)])
}

pub(crate) use jiaxin_kit::time::china_day as china_today;
