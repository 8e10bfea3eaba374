//! The points service: the rule catalogue, the records collectors make against it, the
//! append-only hash-chained ledger, and the credit scores and tiers that follow — as of any date,
//! with the entries behind them.
//!
//! Reading order: [`api`] (gRPC, thin) › `ops` (one transaction per operation) › [`domain`]
//! (catalogue, scores and tiers, the hash chain; no I/O) › `store` (SQL) › `consumers` (identity's
//! households and the council's decisions).

pub mod api;
mod consumers;
pub mod domain;
mod error;
mod ops;
mod rules;
mod store;

use std::sync::Arc;

use jiaxin_kit::{
    events,
    inbox::Consumer,
    outbox::Outbox,
    storage::{Database, Migrations},
};
use jiaxin_proto::points::points_service_server::PointsServiceServer;
use sqlx::migrate::Migrator;

pub use error::PointsError;

/// The service's name: its database, its topic `jiaxin.points.v1`, its `--service` value.
pub const SERVICE: &str = "points";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

pub static MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: Some(&POSTGRES_MIGRATIONS) };

const GRPC_SERVICE: &str = "jiaxin.points.v1.PointsService";

/// A started points service.
pub struct PointsService {
    points: Arc<ops::Points>,
    db: Database,
}

impl PointsService {
    /// Starts on a migrated database, loading the default catalogue on the first start.
    pub async fn start(db: Database) -> Result<Self, PointsError> {
        let points = Arc::new(ops::Points::new(db.clone(), Outbox::new(SERVICE), domain::score::Tiers::default()));
        points.load_catalogue().await?;
        Ok(Self { points, db })
    }

    pub fn outbox(&self) -> Outbox {
        self.points.outbox.clone()
    }

    pub fn grpc_service(&self) -> PointsServiceServer<api::PointsApi> {
        PointsServiceServer::new(api::PointsApi::new(self.points.clone()))
    }

    pub fn grpc_name() -> &'static str {
        GRPC_SERVICE
    }

    /// What points consumes: identity's and the council's topics, as one consumer.
    pub fn consumer(&self) -> (Vec<String>, Consumer) {
        consumer(&self.db, Some(self.points.clone()))
    }
}

/// Points' consumer over `db`; without a running service (dead-letter replay from the command
/// line) the handler is built on the same database.
pub fn consumer(db: &Database, points: Option<Arc<ops::Points>>) -> (Vec<String>, Consumer) {
    let points = points.unwrap_or_else(|| {
        Arc::new(ops::Points::new(db.clone(), Outbox::new(SERVICE), domain::score::Tiers::default()))
    });
    let topics = vec![events::topic("identity"), events::topic("council")];
    (topics, Consumer::new(SERVICE, db.clone(), Arc::new(consumers::PointsEvents(points))))
}
