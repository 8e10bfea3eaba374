//! The bank service (信易贷): banks as first-class users. Institutions, branches and officers;
//! loan products with a limit table by tier; households' consents — for a purpose, until a
//! date, revocable, with every query listed to the household; the credit report under a
//! consent, written to a hash-chained audit log before it is returned and rate-limited per
//! officer and institution; whole-village pre-approval (整村授信); and credit lines and loan
//! outcomes reported back as events for points and benefits.
//!
//! Reading order: [`api`] › `ops` (registry, consents, reports, loans) › `domain` (consent use,
//! report trend and reason codes, limits, the rate limiter, roles; no I/O) › `store` (SQL) ›
//! `consumers` (identity, pledges, points, benefits). Scores come from a read model of points'
//! events, never from calling points.

pub mod api;
mod consumers;
mod domain;
mod error;
mod ops;
mod store;

use std::sync::Arc;

use jiaxin_kit::{
    events,
    inbox::Consumer,
    outbox::Outbox,
    storage::{Database, Migrations},
};
use jiaxin_proto::bank::bank_service_server::BankServiceServer;
use sqlx::migrate::Migrator;

pub use error::BankError;

/// The service's name: its database, its topic `jiaxin.bank.v1`, its `--service` value.
pub const SERVICE: &str = "bank";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

pub static MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: Some(&POSTGRES_MIGRATIONS) };

const GRPC_SERVICE: &str = "jiaxin.bank.v1.BankService";

/// The bank's own settings, flattened into the `jiaxin serve` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct BankConfig {
    /// Credit reports and pre-approvals one officer may ask for per minute (a burst of a
    /// minute's allowance, then at that rate); per process.
    #[arg(long, env = "JIAXIN_BANK_OFFICER_RATE", default_value_t = 120)]
    pub bank_officer_rate: u32,
    /// The same for a whole institution.
    #[arg(long, env = "JIAXIN_BANK_INSTITUTION_RATE", default_value_t = 60_000)]
    pub bank_institution_rate: u32,
}

impl Default for BankConfig {
    fn default() -> Self {
        Self { bank_officer_rate: 120, bank_institution_rate: 60_000 }
    }
}

impl BankConfig {
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.bank_officer_rate == 0 {
            problems.push("--bank-officer-rate must be at least 1".to_owned());
        }
        if self.bank_institution_rate == 0 {
            problems.push("--bank-institution-rate must be at least 1".to_owned());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// A started bank service.
pub struct BankService {
    bank: Arc<ops::Bank>,
    db: Database,
}

impl BankService {
    pub fn start(db: Database, config: &BankConfig) -> Self {
        let rates = ops::Rates { per_officer: config.bank_officer_rate, per_institution: config.bank_institution_rate };
        Self { bank: Arc::new(ops::Bank::new(db.clone(), Outbox::new(SERVICE), rates)), db }
    }

    pub fn outbox(&self) -> Outbox {
        self.bank.outbox.clone()
    }

    pub fn grpc_service(&self) -> BankServiceServer<api::BankApi> {
        BankServiceServer::new(self.api())
    }

    /// The API object, to call operations in-process.
    pub fn api(&self) -> api::BankApi {
        api::BankApi::new(self.bank.clone())
    }

    pub fn grpc_name() -> &'static str {
        GRPC_SERVICE
    }

    /// What the bank consumes: identity's, pledges', points' and benefits' topics.
    pub fn consumer(&self) -> (Vec<String>, Consumer) {
        consumer(&self.db)
    }
}

/// The services whose events this one consumes.
pub const CONSUMES: &[&str] = &["identity", "pledges", "points", "benefits"];

/// The bank's consumer over `db` (also for dead-letter replay from the command line).
pub fn consumer(db: &Database) -> (Vec<String>, Consumer) {
    (events::topics(CONSUMES), Consumer::new(SERVICE, db.clone(), Arc::new(consumers::BankEvents)))
}
