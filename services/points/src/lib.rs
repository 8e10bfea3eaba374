//! The points service: the rule catalogue, the records collectors make against it, the
//! append-only hash-chained ledger, and the credit scores and tiers that follow — as of any date,
//! with the entries behind them.
//!
//! Reading order: [`api`] (gRPC, thin) › `ops` (one transaction per operation) › [`domain`]
//! (catalogue, scores and tiers, the hash chain; no I/O) › `store` (SQL) › `consumers` (identity's
//! households and the council's decisions).

pub mod api;
mod appeals;
mod consumers;
pub mod domain;
mod error;
mod intake;
mod loans;
mod ops;
mod pledge;
mod recompute;
mod rules;
mod store;
mod verify;

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
pub use recompute::Recomputed;

/// The service's name: its database, its topic `jiaxin.points.v1`, its `--service` value.
pub const SERVICE: &str = "points";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

pub static MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: Some(&POSTGRES_MIGRATIONS) };

const GRPC_SERVICE: &str = "jiaxin.points.v1.PointsService";

/// Points' own settings, flattened into the `jiaxin serve` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct PointsConfig {
    /// Seconds between looks for entries that started or stopped counting (scores move with
    /// time: disclosure ends, windows expire).
    #[arg(long, env = "JIAXIN_SCORE_TICK_SECS", default_value_t = 30)]
    pub score_tick_secs: u64,
    /// Records of households without a pledge in force: held until the household signs
    /// (default), or accepted at once (a county that does not run pledges).
    #[arg(long, env = "JIAXIN_UNPLEDGED_RECORDS", value_enum, default_value_t = UnpledgedRecords::Hold)]
    pub unpledged_records: UnpledgedRecords,
}

/// What points does with a record of a household that has not signed its pledge. A household
/// that withdrew its pledge gets no new records under either policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UnpledgedRecords {
    Hold,
    Accept,
}

impl PointsConfig {
    pub fn validate(&self) -> Result<(), Vec<String>> {
        if self.score_tick_secs == 0 { Err(vec!["--score-tick-secs must be at least 1".into()]) } else { Ok(()) }
    }

    pub fn tick_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.score_tick_secs)
    }
}

/// A started points service.
pub struct PointsService {
    points: Arc<ops::Points>,
    db: Database,
}

impl PointsService {
    /// Starts on a migrated database, loading the default catalogue on the first start.
    pub async fn start(db: Database, config: &PointsConfig) -> Result<Self, PointsError> {
        let service = Self::open_read_only(db, config);
        service.points.load_catalogue().await?;
        Ok(service)
    }

    /// Opens a migrated database without loading anything into it, for commands that only read
    /// (`jiaxin recompute-scores`). Nothing is started; its writing operations are not for use.
    pub fn open_read_only(db: Database, config: &PointsConfig) -> Self {
        let points = Arc::new(ops::Points::new(
            db.clone(),
            Outbox::new(SERVICE),
            domain::score::Tiers::default(),
            config.unpledged_records,
        ));
        Self { points, db }
    }

    pub fn outbox(&self) -> Outbox {
        self.points.outbox.clone()
    }

    pub fn grpc_service(&self) -> PointsServiceServer<api::PointsApi> {
        PointsServiceServer::new(api::PointsApi::new(self.points.clone()))
    }

    /// Refreshes scores as entries start and stop counting (end of disclosure, expiry), every
    /// `interval`, until cancelled.
    pub fn ticker(
        &self,
        interval: std::time::Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let points = self.points.clone();
        async move {
            // The demo moves the clock by days; what fell due in them happens at once.
            let mut clock_moves = jiaxin_kit::time::clock_moves();
            loop {
                match points.tick(jiaxin_kit::time::now_micros()).await {
                    Ok(changed) if changed > 0 => tracing::info!(changed, "scores moved with time"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "score ticker failed; will retry"),
                }
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = clock_moves.changed() => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    }

    /// One tick of the score ticker at `now` (the ticker's loop uses the clock; tests and
    /// operators pass a moment).
    pub async fn tick_at(&self, now: i64) -> Result<usize, PointsError> {
        self.points.tick(now).await
    }

    /// Every household's score rebuilt from its ledger and compared with its maintained balance
    /// (reads only; see [`Recomputed`]).
    pub async fn recompute_scores(&self) -> Result<Recomputed, PointsError> {
        self.points.recompute_scores().await
    }

    /// The API object, to call operations in-process.
    pub fn api(&self) -> api::PointsApi {
        api::PointsApi::new(self.points.clone())
    }

    pub fn grpc_name() -> &'static str {
        GRPC_SERVICE
    }

    /// What points consumes: identity's, pledges', the council's and the bank's topics, as one consumer.
    pub fn consumer(&self) -> (Vec<String>, Consumer) {
        consumer(&self.db, Some(self.points.clone()))
    }
}

/// The services whose events this one consumes.
pub const CONSUMES: &[&str] = &["identity", "pledges", "council", "bank"];

/// Points' consumer over `db`; without a running service (dead-letter replay from the command
/// line) the handler is built on the same database (the unpledged-records policy only matters
/// to submissions, which replay does not make).
pub fn consumer(db: &Database, points: Option<Arc<ops::Points>>) -> (Vec<String>, Consumer) {
    let points = points.unwrap_or_else(|| {
        Arc::new(ops::Points::new(
            db.clone(),
            Outbox::new(SERVICE),
            domain::score::Tiers::default(),
            UnpledgedRecords::Hold,
        ))
    });
    (events::topics(CONSUMES), Consumer::new(SERVICE, db.clone(), Arc::new(consumers::PointsEvents(points))))
}
