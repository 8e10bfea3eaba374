//! The bank's operations: each one transaction that checks the caller, validates against
//! current state, writes (with its audit entries and query records) and adds its events to the
//! outbox.

mod businesses;
mod consents;
mod loans;
mod registry;
mod reports;

use jiaxin_kit::{
    auth::{Caller, Role},
    storage::{Database, Tx},
};

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
}

/// Query rate limits, per minute.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub per_officer: u32,
    pub per_institution: u32,
}

impl Bank {
    pub fn new(db: Database, outbox: jiaxin_kit::outbox::Outbox, rates: Rates) -> Self {
        Self {
            db,
            outbox,
            per_officer: Limiter::per_minute(rates.per_officer),
            per_institution: Limiter::per_minute(rates.per_institution),
        }
    }

    /// The institution a bank officer acts for. Anyone else is refused before anything is read.
    pub(crate) async fn officer_institution(&self, tx: &mut Tx, caller: &Caller) -> Result<String> {
        if !caller.has_role(Role::BankOfficer) {
            return Err(BankError::PermissionDenied);
        }
        store::institution_of(&mut **tx, caller.account_id()).await?.ok_or(BankError::PermissionDenied)
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

pub(crate) fn now() -> i64 {
    jiaxin_kit::time::now_micros()
}

pub(crate) use jiaxin_kit::time::china_day as china_today;
