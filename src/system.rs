//! Assembles the chosen services into one running process: databases, the bus, outbox relays,
//! token verification, the gRPC server and the admin server, with one stop for an orderly
//! shutdown: a signal begins it, and so does any of those tasks failing or ending early (the
//! process then exits non-zero, to be restarted). `jiaxin serve` and the end-to-end tests both
//! start the system through here.

use std::{net::SocketAddr, sync::Arc};

use jiaxin_identity::{IdentityConfig, IdentityService};
use jiaxin_kit::{
    auth::{AuthLayer, Verifier},
    bus::{Bus, InProcessBus},
    config::{BusKind, CommonConfig},
    outbox::Relay,
    server::{self, Limits},
    storage::{Database, DatabaseLocation, Migrations},
    supervise::{Stop, until_stopped},
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The services this binary can run. Services not built yet are absent, not stubbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ServiceName {
    Identity,
    Pledges,
    Points,
    Council,
    Benefits,
    Bank,
}

impl ServiceName {
    pub const ALL: &'static [ServiceName] = &[
        ServiceName::Identity,
        ServiceName::Pledges,
        ServiceName::Points,
        ServiceName::Council,
        ServiceName::Benefits,
        ServiceName::Bank,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Identity => jiaxin_identity::SERVICE,
            ServiceName::Pledges => jiaxin_pledges::SERVICE,
            ServiceName::Points => jiaxin_points::SERVICE,
            ServiceName::Council => jiaxin_council::SERVICE,
            ServiceName::Benefits => jiaxin_benefits::SERVICE,
            ServiceName::Bank => jiaxin_bank::SERVICE,
        }
    }

    pub fn migrations(self) -> &'static Migrations {
        match self {
            ServiceName::Identity => &jiaxin_identity::MIGRATIONS,
            ServiceName::Pledges => &jiaxin_pledges::MIGRATIONS,
            ServiceName::Points => &jiaxin_points::MIGRATIONS,
            ServiceName::Council => &jiaxin_council::MIGRATIONS,
            ServiceName::Benefits => &jiaxin_benefits::MIGRATIONS,
            ServiceName::Bank => &jiaxin_bank::MIGRATIONS,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SystemConfig {
    pub common: CommonConfig,
    pub identity: IdentityConfig,
    pub points: jiaxin_points::PointsConfig,
    pub benefits: jiaxin_benefits::BenefitsConfig,
    pub bank: jiaxin_bank::BankConfig,
    /// Empty means all.
    pub services: Vec<ServiceName>,
}

/// Every service's settings as flags: flattened into `jiaxin serve`'s command line, and parsed
/// from an argument list by programs that start a system themselves (the demo, tests, benchmarks).
#[derive(Debug, clap::Parser)]
pub struct Settings {
    #[command(flatten)]
    common: jiaxin_kit::config::CommonConfig,
    #[command(flatten)]
    identity: IdentityConfig,
    #[command(flatten)]
    points: jiaxin_points::PointsConfig,
    #[command(flatten)]
    benefits: jiaxin_benefits::BenefitsConfig,
    #[command(flatten)]
    bank: jiaxin_bank::BankConfig,
}

impl Settings {
    /// The system these settings describe, running `services` (all when empty).
    pub fn into_config(self, services: Vec<ServiceName>) -> SystemConfig {
        SystemConfig {
            common: self.common,
            identity: self.identity,
            points: self.points,
            benefits: self.benefits,
            bank: self.bank,
            services,
        }
    }
}

impl SystemConfig {
    /// All services, with the defaults of `jiaxin serve` and the flags in `args` (the first
    /// item is the program's name, as clap expects).
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser;
        Ok(Settings::try_parse_from(args)?.into_config(Vec::new()))
    }

    pub fn services(&self) -> Vec<ServiceName> {
        if self.services.is_empty() { ServiceName::ALL.to_vec() } else { self.services.clone() }
    }

    /// Every problem with the settings for serving: each flag's own validity
    /// ([`Self::validate_settings`]) and whether the chosen services can work together here.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = self.validate_settings().err().unwrap_or_default();
        let peers = self.common.peer_map().unwrap_or_default();
        if !self.services().contains(&ServiceName::Identity) && !peers.iter().any(|(name, _)| name == "identity") {
            problems.push("every service verifies tokens with identity's keys: run identity here or give --peer identity=http://…".into());
        }
        let subset = self.services().len() < ServiceName::ALL.len();
        if subset && self.common.bus_kind() == Ok(BusKind::InProcess) {
            problems.push("a subset of services needs a shared bus: --bus kafka://…".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Every problem with the flags themselves, each naming its flag: what `migrate` needs,
    /// which opens databases but neither serves nor talks to the bus or other services.
    pub fn validate_settings(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Err(p) = self.common.validate() {
            problems.extend(p);
        }
        if let Err(p) = self.identity.validate() {
            problems.extend(p);
        }
        if let Err(p) = self.points.validate() {
            problems.extend(p);
        }
        if let Err(p) = self.benefits.validate() {
            problems.extend(p);
        }
        if let Err(p) = self.bank.validate() {
            problems.extend(p);
        }
        for (name, _) in &self.common.peer_map().unwrap_or_default() {
            if !ServiceName::ALL.iter().any(|s| s.as_str() == name) {
                problems.push(format!("--peer {name}=…: no such service"));
            }
        }
        if let Some(url) = &self.common.database_url
            && url.expose().starts_with("sqlite:")
            && self.services().len() > 1
        {
            problems
                .push("--database-url sqlite://… holds one service; for several use --data-dir (a file each)".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Where a service's database lives: the configured URL, or its own SQLite file.
    pub fn location(&self, service: ServiceName) -> anyhow::Result<DatabaseLocation> {
        match &self.common.database_url {
            Some(url) if url.expose().starts_with("postgres") => {
                let mut location =
                    DatabaseLocation::shared(url.clone(), &self.common.database_schema_prefix, service.as_str());
                location.max_connections = self.common.database_max_connections;
                Ok(location)
            }
            Some(url) => Ok(DatabaseLocation { url: url.clone(), max_connections: 8, schema: None }),
            None => Ok(DatabaseLocation::sqlite_in(&self.common.data_dir, service.as_str())?),
        }
    }
}

/// Opens and migrates a service's database.
pub async fn open_database(config: &SystemConfig, service: ServiceName) -> anyhow::Result<Database> {
    let db = Database::connect(&config.location(service)?).await?;
    db.migrate(service.as_str(), service.migrations()).await?;
    Ok(db)
}

/// Opens a service's database as this binary's `serve` left it, for commands that must not change
/// it: refuses a data directory without the service's file (instead of creating one) and a
/// database behind this binary's schema (instead of migrating it). On PostgreSQL, connecting
/// still creates the service's schema if it is missing (empty; then refused here).
pub async fn open_existing_database(config: &SystemConfig, service: ServiceName) -> anyhow::Result<Database> {
    let name = service.as_str();
    if config.common.database_url.is_none() {
        let file = DatabaseLocation::sqlite_file(&config.common.data_dir, name);
        anyhow::ensure!(
            file.exists(),
            "数据目录中没有 {name} 服务的数据库 / no {name} database at {}: this command reads an existing county and writes nothing",
            file.display()
        );
    }
    let location = config.location(service)?;
    let db = Database::connect(&location).await?;
    if db.applied_migrations().await?.is_empty() {
        let place = match &location.schema {
            Some(schema) => format!("schema {schema}: check --database-url and --database-schema-prefix"),
            None => "the database file has no tables".to_owned(),
        };
        anyhow::bail!("数据库中没有 {name} 服务的数据 / no {name} database here ({place})");
    }
    let pending = db.pending_migrations(name, service.migrations()).await?;
    anyhow::ensure!(
        pending.is_empty(),
        "{name} 数据库的结构落后于本程序,请先用本版本启动一次 serve / the {name} database lacks this binary's migrations {pending:?}: start `jiaxin serve` of this version once first"
    );
    Ok(db)
}

/// The least time a stop gives the Kafka clients to commit and close. Below the margin `jiaxin
/// serve` allows past the grace period before it exits regardless (`CLOSE_MARGIN` in main.rs).
#[cfg(feature = "kafka")]
const KAFKA_CLOSE_MIN: std::time::Duration = std::time::Duration::from_secs(2);

/// A started system.
pub struct RunningSystem {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The admin password generated on a first start, to show once.
    pub generated_admin_password: Option<String>,
    stop: Stop,
    tasks: JoinSet<()>,
    grace: std::time::Duration,
    databases: Vec<Database>,
    bus: Arc<dyn Bus>,
    #[cfg(feature = "kafka")]
    kafka: Option<Arc<jiaxin_kit::kafka::KafkaBus>>,
}

impl RunningSystem {
    /// The process's event bus, for components that consume events in-process.
    pub fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    pub fn cancel_token(&self) -> CancellationToken {
        self.stop.token()
    }

    /// What stopped the system when it was not told to: a server, relay, ticker or consumer of
    /// this process that failed or ended (`jiaxin_kit::supervise`). None after a requested stop.
    pub fn failure(&self) -> Option<&str> {
        self.stop.failure()
    }

    /// Events committed in this process's outboxes and not yet delivered. In embedded mode the
    /// bus delivers to every consumer before an event counts as sent, so zero means every read
    /// model has applied everything written so far.
    pub async fn undelivered_events(&self) -> anyhow::Result<i64> {
        let mut total = 0;
        for db in &self.databases {
            total += jiaxin_kit::outbox::undelivered(db).await?;
        }
        Ok(total)
    }

    /// Stops accepting, drains in-flight calls, flushes the outboxes and joins every task,
    /// giving up on stragglers after the grace period.
    pub async fn shutdown(mut self) {
        self.stop.token().cancel();
        self.join().await;
    }

    /// Waits until the system is told to stop (its cancellation token fires, from a signal) or
    /// one of its tasks fails, then gives the tasks the grace period to drain.
    pub async fn join(&mut self) {
        self.stop.token().cancelled().await;
        let stop_began = std::time::Instant::now();
        let grace = self.grace;
        let drained = tokio::time::timeout(grace, async {
            while let Some(result) = self.tasks.join_next().await {
                if let Err(error) = result {
                    tracing::error!(%error, "task failed during shutdown");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace period over; aborting remaining tasks");
            self.tasks.abort_all();
        }
        #[cfg(feature = "kafka")]
        if let Some(kafka) = &self.kafka {
            // What is left of the grace period, and a little more for the final offset commits
            // when the tasks used all of it.
            kafka.shutdown(grace.saturating_sub(stop_began.elapsed()).max(KAFKA_CLOSE_MIN)).await;
        }
        for db in &self.databases {
            db.close().await;
        }
    }
}

pub async fn start(config: SystemConfig) -> anyhow::Result<RunningSystem> {
    if let Err(problems) = config.validate() {
        anyhow::bail!("配置无效 / invalid configuration:\n  {}", problems.join("\n  "));
    }
    // Install the metrics recorder before anything emits: metrics recorded earlier are lost.
    jiaxin_kit::telemetry::metrics_handle();
    // TLS files are read before any database is opened: a bad one stops the start unwritten.
    let server_tls = jiaxin_kit::tls::server(&config.common)?;
    let peer_tls = jiaxin_kit::tls::client(&config.common)?;
    let cipher = config.common.field_cipher()?;
    let stop = Stop::new();
    let cancel = stop.token();
    #[cfg(feature = "kafka")]
    let mut kafka = None;
    let bus: Arc<dyn Bus> = match config.common.bus_kind().map_err(|e| anyhow::anyhow!(e))? {
        BusKind::InProcess => Arc::new(InProcessBus::new()),
        #[cfg(feature = "kafka")]
        BusKind::Kafka { brokers } => {
            let settings = jiaxin_kit::kafka::KafkaConfig {
                brokers,
                prefix: config.common.kafka_topic_prefix.clone(),
                partitions: config.common.kafka_partitions,
                replication: config.common.kafka_replication,
            };
            let bus = Arc::new(jiaxin_kit::kafka::KafkaBus::new(settings, stop.clone())?);
            kafka = Some(bus.clone());
            bus
        }
        #[cfg(not(feature = "kafka"))]
        BusKind::Kafka { .. } => anyhow::bail!("this binary was built without the kafka feature"),
    };
    let mut tasks = JoinSet::new();
    let mut routes = tonic::service::RoutesBuilder::default();
    let mut health_names = Vec::new();
    let mut public_methods = Vec::new();
    let mut databases = Vec::new();
    let mut key_source = None;
    let mut generated_admin_password = None;

    // Every consumer subscribes before any relay starts, so no event is published to nobody.
    let mut relays = Vec::new();
    for service in config.services() {
        let db = open_database(&config, service).await?;
        databases.push(db.clone());
        match service {
            ServiceName::Identity => {
                let identity = IdentityService::start(db.clone(), cipher.clone(), &config.identity).await?;
                generated_admin_password = identity.generated_admin_password.clone();
                key_source = Some(identity.key_source());
                routes.add_service(identity.grpc_service());
                health_names.push(IdentityService::grpc_name().to_owned());
                public_methods.extend(IdentityService::public_methods());
                relays.push((service, Relay::new(db, identity.outbox(), bus.clone())));
            }
            ServiceName::Pledges => {
                let pledges = jiaxin_pledges::PledgesService::start(db.clone());
                routes.add_service(pledges.grpc_service());
                health_names.push(jiaxin_pledges::PledgesService::grpc_name().to_owned());
                let (topics, consumer) = pledges.consumer();
                bus.subscribe(&topics, Arc::new(consumer)).await?;
                relays.push((service, Relay::new(db, pledges.outbox(), bus.clone())));
            }
            ServiceName::Points => {
                let points = jiaxin_points::PointsService::start(db.clone(), &config.points).await?;
                routes.add_service(points.grpc_service());
                health_names.push(jiaxin_points::PointsService::grpc_name().to_owned());
                let (topics, consumer) = points.consumer();
                bus.subscribe(&topics, Arc::new(consumer)).await?;
                let ticker = points.ticker(config.points.tick_interval(), cancel.clone());
                tasks.spawn(until_stopped("points ticker", stop.clone(), ticker));
                relays.push((service, Relay::new(db, points.outbox(), bus.clone())));
            }
            ServiceName::Council => {
                let council = jiaxin_council::CouncilService::start(db.clone());
                routes.add_service(council.grpc_service());
                health_names.push(jiaxin_council::CouncilService::grpc_name().to_owned());
                let (topics, consumer) = council.consumer();
                bus.subscribe(&topics, Arc::new(consumer)).await?;
                tasks.spawn(until_stopped("council ticker", stop.clone(), council.ticker(cancel.clone())));
                relays.push((service, Relay::new(db, council.outbox(), bus.clone())));
            }
            ServiceName::Benefits => {
                let benefits = jiaxin_benefits::BenefitsService::start(db.clone(), &config.benefits);
                routes.add_service(benefits.grpc_service());
                health_names.push(jiaxin_benefits::BenefitsService::grpc_name().to_owned());
                let (topics, consumer) = benefits.consumer();
                bus.subscribe(&topics, Arc::new(consumer)).await?;
                relays.push((service, Relay::new(db, benefits.outbox(), bus.clone())));
            }
            ServiceName::Bank => {
                let bank = jiaxin_bank::BankService::start(db.clone(), &config.bank);
                routes.add_service(bank.grpc_service());
                health_names.push(jiaxin_bank::BankService::grpc_name().to_owned());
                let (topics, consumer) = bank.consumer();
                bus.subscribe(&topics, Arc::new(consumer)).await?;
                relays.push((service, Relay::new(db, bank.outbox(), bus.clone())));
            }
        }
    }
    for (service, relay) in relays {
        let task_name = format!("{} outbox relay", service.as_str());
        tasks.spawn(until_stopped(task_name, stop.clone(), relay.run(cancel.clone())));
    }
    let key_source = match key_source {
        Some(local) => local,
        None => {
            let peers = config.common.peer_map().map_err(|e| anyhow::anyhow!(e))?;
            let url = peers
                .iter()
                .find(|(name, _)| name == "identity")
                .map(|(_, url)| url.clone())
                .ok_or_else(|| anyhow::anyhow!("identity is neither here nor a --peer"))?;
            crate::peers::RemoteKeySource::connect(&url, peer_tls)?
        }
    };
    let auth = AuthLayer::new(Arc::new(Verifier::new(key_source)), public_methods);

    let grpc_listener = server::bind(config.common.grpc_listen).await?;
    let admin_listener = server::bind(config.common.admin_listen).await?;
    let grpc_addr = grpc_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let limits = Limits {
        request_timeout: config.common.request_timeout(),
        bulk_request_timeout: config.common.bulk_request_timeout(),
        concurrency_per_connection: config.common.concurrency_limit,
    };
    let grpc_stop = stop.clone();
    let routes = routes.routes();
    let grpc_server = async move {
        if let Err(error) =
            server::serve_grpc(grpc_listener, routes, health_names, auth, limits, server_tls, grpc_stop.token()).await
        {
            grpc_stop.fail(format!("gRPC server stopped: {error}"));
        }
    };
    tasks.spawn(until_stopped("gRPC server", stop.clone(), grpc_server));
    let admin_stop = stop.clone();
    let admin_server = async move {
        if let Err(error) = server::serve_admin(admin_listener, admin_stop.token()).await {
            admin_stop.fail(format!("admin server stopped: {error}"));
        }
    };
    tasks.spawn(until_stopped("admin server", stop.clone(), admin_server));
    tracing::info!(%grpc_addr, %admin_addr, services = ?config.services(), "jiaxin serving");
    Ok(RunningSystem {
        grpc_addr,
        admin_addr,
        generated_admin_password,
        stop,
        tasks,
        grace: config.common.shutdown_grace(),
        databases,
        bus,
        #[cfg(feature = "kafka")]
        kafka,
    })
}

/// The services whose events `service` consumes. Identity consumes none.
pub fn consumed_by(service: ServiceName) -> &'static [&'static str] {
    match service {
        ServiceName::Identity => &[],
        ServiceName::Pledges => jiaxin_pledges::CONSUMES,
        ServiceName::Points => jiaxin_points::CONSUMES,
        ServiceName::Council => jiaxin_council::CONSUMES,
        ServiceName::Benefits => jiaxin_benefits::CONSUMES,
        ServiceName::Bank => jiaxin_bank::CONSUMES,
    }
}

/// The services that consume `producer`'s events.
pub fn consumers_of(producer: ServiceName) -> Vec<ServiceName> {
    ServiceName::ALL.iter().copied().filter(|service| consumed_by(*service).contains(&producer.as_str())).collect()
}

/// The event consumers a service runs, for dead-letter replay. Identity consumes no events.
pub fn consumers(service: ServiceName, db: &Database) -> Vec<jiaxin_kit::inbox::Consumer> {
    match service {
        ServiceName::Identity => Vec::new(),
        ServiceName::Pledges => vec![jiaxin_pledges::consumer(db).1],
        ServiceName::Points => vec![jiaxin_points::consumer(db, None).1],
        ServiceName::Council => vec![jiaxin_council::consumer(db, None).1],
        ServiceName::Benefits => vec![jiaxin_benefits::consumer(db).1],
        ServiceName::Bank => vec![jiaxin_bank::consumer(db).1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A consumer's subscriptions are topic names built from these strings: a misspelt producer
    /// would subscribe to a topic nobody writes, and nothing would fail until events went missing.
    #[test]
    fn every_service_consumes_only_services_that_exist_and_never_itself() {
        let names: Vec<&str> = ServiceName::ALL.iter().map(|s| s.as_str()).collect();
        for service in ServiceName::ALL {
            for producer in consumed_by(*service) {
                assert!(names.contains(producer), "{} consumes unknown service {producer}", service.as_str());
                assert_ne!(*producer, service.as_str(), "{producer} consumes its own events");
            }
        }
        assert_eq!(consumers_of(ServiceName::Identity).len(), 5, "every other service learns the org tree");
        assert_eq!(consumers_of(ServiceName::Points), [ServiceName::Council, ServiceName::Benefits, ServiceName::Bank]);
    }
}
