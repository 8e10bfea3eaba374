//! The benefits service (信易+): the last step of the loop, where a good score is worth
//! something. A catalogue of benefits offered by agencies and merchants; eligibility checks by
//! those providers, each written to a hash-chained audit log before it is answered; the points
//! shop (积分超市), where redeemable points are spent exactly once and never below zero while
//! the credit score stays untouched; and the annual honours — credit households (信用户) and
//! credit villages (信用村居) — computed for a year, reviewed and published.
//!
//! Reading order: [`api`] › `ops` (catalogue, checks, shop, honours) › `domain` (eligibility,
//! honours' criteria, roles; no I/O) › `store` (SQL) › `consumers` (identity, pledges, points).
//! Scores come from a read model of points' `ScoreChanged` events, never from calling points.

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
use jiaxin_proto::benefits::benefits_service_server::BenefitsServiceServer;
use sqlx::migrate::Migrator;

pub use domain::honours::Criteria as HonourCriteria;
pub use error::BenefitsError;

/// The service's name: its database, its topic `jiaxin.benefits.v1`, its `--service` value.
pub const SERVICE: &str = "benefits";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

pub static MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: Some(&POSTGRES_MIGRATIONS) };

const GRPC_SERVICE: &str = "jiaxin.benefits.v1.BenefitsService";

/// Benefits' own settings, flattened into the `jiaxin serve` command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BenefitsConfig {
    #[command(flatten)]
    pub honours: HonourCriteria,
}

impl BenefitsConfig {
    pub fn validate(&self) -> Result<(), Vec<String>> {
        self.honours.validate()
    }
}

/// A started benefits service.
pub struct BenefitsService {
    benefits: Arc<ops::Benefits>,
    db: Database,
}

impl BenefitsService {
    pub fn start(db: Database, config: &BenefitsConfig) -> Self {
        let benefits = Arc::new(ops::Benefits::new(db.clone(), Outbox::new(SERVICE), config.honours.clone()));
        Self { benefits, db }
    }

    pub fn outbox(&self) -> Outbox {
        self.benefits.outbox.clone()
    }

    pub fn grpc_service(&self) -> BenefitsServiceServer<api::BenefitsApi> {
        BenefitsServiceServer::new(self.api())
    }

    /// The API object, to call operations in-process.
    pub fn api(&self) -> api::BenefitsApi {
        api::BenefitsApi::new(self.benefits.clone())
    }

    pub fn grpc_name() -> &'static str {
        GRPC_SERVICE
    }

    /// What benefits consumes: identity's, pledges', points' and the bank's topics.
    pub fn consumer(&self) -> (Vec<String>, Consumer) {
        consumer(&self.db)
    }
}

/// The services whose events this one consumes.
pub const CONSUMES: &[&str] = &["identity", "pledges", "points", "bank"];

/// Benefits' consumer over `db` (also for dead-letter replay from the command line).
pub fn consumer(db: &Database) -> (Vec<String>, Consumer) {
    (events::topics(CONSUMES), Consumer::new(SERVICE, db.clone(), Arc::new(consumers::BenefitsEvents)))
}
