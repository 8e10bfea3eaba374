//! The pledges service: the first step of the loop (主动承诺). Each village's or community's
//! pledge template and its versions, households' signatures (app, paper, meeting), the signing
//! campaigns, and coverage from the county down to the grid with the list of households a grid
//! worker still has to visit (查漏补缺).
//!
//! Reading order: [`api`] (gRPC, thin) › `ops` (one transaction per operation) › `domain`
//! (standing and coverage arithmetic, roles; no I/O) › `store` (SQL) › `consumers` (identity's
//! org tree, households and members).

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
use jiaxin_proto::pledges::pledges_service_server::PledgesServiceServer;
use sqlx::migrate::Migrator;

pub use error::PledgesError;

/// The service's name: its database, its topic `jiaxin.pledges.v1`, its `--service` value.
pub const SERVICE: &str = "pledges";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

pub static MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: Some(&POSTGRES_MIGRATIONS) };

const GRPC_SERVICE: &str = "jiaxin.pledges.v1.PledgesService";

/// A started pledges service.
pub struct PledgesService {
    pledges: Arc<ops::Pledges>,
    db: Database,
}

impl PledgesService {
    pub fn start(db: Database) -> Self {
        Self { pledges: Arc::new(ops::Pledges::new(db.clone(), Outbox::new(SERVICE))), db }
    }

    pub fn outbox(&self) -> Outbox {
        self.pledges.outbox.clone()
    }

    pub fn grpc_service(&self) -> PledgesServiceServer<api::PledgesApi> {
        PledgesServiceServer::new(api::PledgesApi::new(self.pledges.clone()))
    }

    pub fn grpc_name() -> &'static str {
        GRPC_SERVICE
    }

    /// What pledges consumes: identity's topic.
    pub fn consumer(&self) -> (Vec<String>, Consumer) {
        consumer(&self.db)
    }
}

/// The services whose events this one consumes.
pub const CONSUMES: &[&str] = &["identity"];

/// Pledges' consumer over `db` (also for dead-letter replay from the command line).
pub fn consumer(db: &Database) -> (Vec<String>, Consumer) {
    (events::topics(CONSUMES), Consumer::new(SERVICE, db.clone(), Arc::new(consumers::PledgesEvents)))
}
