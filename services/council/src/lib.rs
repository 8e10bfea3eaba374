//! The council service: the village credit council (信用议事会) that makes scores fair. Points
//! decides what needs review; the council's members vote (recusing themselves from their own
//! households, relatives and records); a decision reached by quorum and majority goes back to
//! points, approved records onto the village's disclosure list (公示); every vote and decision is
//! in the hash-chained audit log, and the minutes are published with the household anonymised.
//!
//! Reading order: [`api`] › `ops` (councils, review, what is published) › `domain` (tally,
//! masking, roles; no I/O) › `store` (SQL) › `consumers` (identity, points).
//! Objections (异议) and credit repair (信用修复) open tasks of their own, decided the same way;
//! points freezes, re-applies or ends the record as the outcome says.

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
use jiaxin_proto::council::council_service_server::CouncilServiceServer;
use sqlx::migrate::Migrator;

pub use error::CouncilError;

/// The service's name: its database, its topic `jiaxin.council.v1`, its `--service` value.
pub const SERVICE: &str = "council";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

pub static MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: Some(&POSTGRES_MIGRATIONS) };

const GRPC_SERVICE: &str = "jiaxin.council.v1.CouncilService";
/// How often the council looks for overdue tasks and ended disclosure periods.
const TICK: std::time::Duration = std::time::Duration::from_secs(60);

/// A started council service.
pub struct CouncilService {
    council: Arc<ops::Council>,
    db: Database,
}

impl CouncilService {
    pub fn start(db: Database) -> Self {
        Self { council: Arc::new(ops::Council::new(db.clone(), Outbox::new(SERVICE))), db }
    }

    pub fn outbox(&self) -> Outbox {
        self.council.outbox.clone()
    }

    pub fn grpc_service(&self) -> CouncilServiceServer<api::CouncilApi> {
        CouncilServiceServer::new(api::CouncilApi::new(self.council.clone()))
    }

    /// A repair application as of `now` (waiting periods are months long; tests pass a moment).
    pub async fn apply_repair_at(
        &self,
        caller: &jiaxin_kit::auth::Caller,
        request: jiaxin_proto::council::ApplyRepairRequest,
        now: i64,
    ) -> Result<jiaxin_proto::council::Repair, CouncilError> {
        self.council.apply_repair_at(caller, request, now).await
    }

    /// The API object, to call operations in-process.
    pub fn api(&self) -> api::CouncilApi {
        api::CouncilApi::new(self.council.clone())
    }

    pub fn grpc_name() -> &'static str {
        GRPC_SERVICE
    }

    /// What the council consumes: identity's, pledges' and points' topics.
    pub fn consumer(&self) -> (Vec<String>, Consumer) {
        consumer(&self.db, Some(self.council.clone()))
    }

    /// One tick at `now`: reminders for overdue tasks, closings of disclosure periods.
    pub async fn tick_at(&self, now: i64) -> Result<usize, CouncilError> {
        self.council.tick(now).await
    }

    /// Ticks every minute until cancelled.
    pub fn ticker(
        &self,
        cancel: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let council = self.council.clone();
        async move {
            // The demo moves the clock by days; what fell due in them happens at once.
            let mut clock_moves = jiaxin_kit::time::clock_moves();
            loop {
                match council.tick(jiaxin_kit::time::now_micros()).await {
                    Ok(n) if n > 0 => tracing::info!(n, "council reminders and disclosure closings published"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "council ticker failed; will retry"),
                }
                tokio::select! {
                    () = tokio::time::sleep(TICK) => {}
                    _ = clock_moves.changed() => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    }
}

/// The services whose events this one consumes.
pub const CONSUMES: &[&str] = &["identity", "pledges", "points"];

/// The council's consumer over `db` (also for dead-letter replay from the command line).
pub fn consumer(db: &Database, council: Option<Arc<ops::Council>>) -> (Vec<String>, Consumer) {
    let council = council.unwrap_or_else(|| Arc::new(ops::Council::new(db.clone(), Outbox::new(SERVICE))));
    (events::topics(CONSUMES), Consumer::new(SERVICE, db.clone(), Arc::new(consumers::CouncilEvents(council))))
}
