//! The bank's operations: each one transaction that checks the caller, validates against
//! current state, writes (with its audit entries and query records) and adds its events to the
//! outbox.

mod businesses;
mod consents;
mod journal;
mod loans;
mod registry;
mod reports;

use std::sync::Arc;

use jiaxin_kit::{
    auth::{Caller, Role},
    group_commit::GroupCommit,
    storage::Database,
};
use sqlx::AnyConnection;

use crate::{
    domain::ratelimit::Limiter,
    error::{BankError, Result},
    store::registry as store,
};

pub(crate) const CONSENT: &str = "consent";
pub(crate) const HOUSEHOLD: &str = "household";

pub struct Bank {
    pub(crate) db: Database,
    pub(crate) outbox: jiaxin_kit::outbox::Outbox,
    pub(crate) admission: Arc<Admission>,
    /// Where credit reports are read, assembled and written (with their query records and audit
    /// entries), many at a time.
    pub(crate) journal: GroupCommit<journal::ReportJournal>,
}

/// Query rate limits, per minute.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub per_officer: u32,
    pub per_institution: u32,
}

/// The officers' and the institutions' query allowances, shared by the operations that answer a
/// bank's query and the report journal.
pub(crate) struct Admission {
    per_officer: Limiter,
    per_institution: Limiter,
}

impl Admission {
    /// Spends one query from the officer's and the institution's allowance.
    pub(crate) fn admit(&self, officer_account_id: &str, institution: &str) -> Result<()> {
        if !self.per_officer.take(officer_account_id) {
            return Err(BankError::RateLimited("officer"));
        }
        if !self.per_institution.take(institution) {
            return Err(BankError::RateLimited("institution"));
        }
        Ok(())
    }
}

impl Bank {
    /// Starts the report journal's writer on the current tokio runtime.
    pub fn new(db: Database, outbox: jiaxin_kit::outbox::Outbox, rates: Rates) -> Self {
        let admission = Arc::new(Admission {
            per_officer: Limiter::per_minute(rates.per_officer),
            per_institution: Limiter::per_minute(rates.per_institution),
        });
        let journal = journal::ReportJournal { admission: admission.clone() };
        Self { journal: GroupCommit::start(db.clone(), "bank_report_journal", journal), db, outbox, admission }
    }

    /// The institution a bank officer acts for. Anyone else is refused before anything is read.
    pub(crate) async fn officer_institution(&self, conn: &mut AnyConnection, caller: &Caller) -> Result<String> {
        require_officer(caller)?;
        store::institution_of(&mut *conn, caller.account_id()).await?.ok_or(BankError::PermissionDenied)
    }

    /// Spends one query from the officer's and the institution's allowance.
    pub(crate) fn admit(&self, caller: &Caller, institution: &str) -> Result<()> {
        self.admission.admit(caller.account_id(), institution)
    }
}

/// Only bank officers act for an institution; anyone else is refused before anything is read.
pub(crate) fn require_officer(caller: &Caller) -> Result<()> {
    if caller.has_role(Role::BankOfficer) { Ok(()) } else { Err(BankError::PermissionDenied) }
}

pub(crate) fn now() -> i64 {
    jiaxin_kit::time::now_micros()
}

pub(crate) use jiaxin_kit::time::china_day as china_today;
