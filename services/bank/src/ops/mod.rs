//! The bank's operations: each one transaction that checks the caller, validates against
//! current state, writes (with its audit entries and query records) and adds its events to the
//! outbox.

mod businesses;
mod consents;
mod journal;
mod loans;
mod registry;
mod reports;

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
    pub(crate) per_officer: Limiter,
    pub(crate) per_institution: Limiter,
    /// Where credit reports' writes are committed together.
    pub(crate) journal: GroupCommit<journal::ReportJournal>,
}

/// Query rate limits, per minute.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub per_officer: u32,
    pub per_institution: u32,
}

impl Bank {
    /// Starts the report journal's writer on the current tokio runtime.
    pub fn new(db: Database, outbox: jiaxin_kit::outbox::Outbox, rates: Rates) -> Self {
        Self {
            journal: GroupCommit::start(db.clone(), "bank_report_journal", journal::ReportJournal),
            db,
            outbox,
            per_officer: Limiter::per_minute(rates.per_officer),
            per_institution: Limiter::per_minute(rates.per_institution),
        }
    }

    /// The institution a bank officer acts for. Anyone else is refused before anything is read.
    pub(crate) async fn officer_institution(&self, conn: &mut AnyConnection, caller: &Caller) -> Result<String> {
        require_officer(caller)?;
        store::institution_of(&mut *conn, caller.account_id()).await?.ok_or(BankError::PermissionDenied)
    }

    /// The same, with the institution's products (id, limit table) read alongside.
    pub(crate) async fn officer_products(
        &self,
        conn: &mut AnyConnection,
        caller: &Caller,
    ) -> Result<(String, Vec<(String, String)>)> {
        require_officer(caller)?;
        store::officer_products(&mut *conn, caller.account_id()).await?.ok_or(BankError::PermissionDenied)
    }

    /// Spends one query from the officer's and the institution's allowance.
    pub(crate) fn admit(&self, caller: &Caller, institution: &str) -> Result<()> {
        if !self.per_officer.take(caller.account_id()) {
            return Err(BankError::RateLimited("officer"));
        }
        if !self.per_institution.take(institution) {
            return Err(BankError::RateLimited("institution"));
        }
        Ok(())
    }
}

/// Only bank officers act for an institution; anyone else is refused before anything is read.
fn require_officer(caller: &Caller) -> Result<()> {
    if caller.has_role(Role::BankOfficer) { Ok(()) } else { Err(BankError::PermissionDenied) }
}

pub(crate) fn now() -> i64 {
    jiaxin_kit::time::now_micros()
}

pub(crate) use jiaxin_kit::time::china_day as china_today;
