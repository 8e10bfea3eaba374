//! What the benchmark programs share: the system under test — an embedded one of their own, or
//! a running distributed cluster — and a synthetic county onboarded through the same CSV import
//! cadres use (streamed over gRPC).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmarks fail loudly

use std::{
    collections::HashMap,
    path::Path,
    str::FromStr,
    time::{Duration, Instant},
};

use jiaxin::system::{self, RunningSystem, ServiceName, SystemConfig};
use jiaxin_proto::{
    identity::{
        CreateAccountRequest, CreateOrgNodeRequest, GetCurrentAccountRequest, ImportHouseholdsRequest, ImportOptions,
        LoginRequest, OrgNodeKind, Role as ProtoRole, identity_service_client::IdentityServiceClient,
        import_households_request::Part,
    },
    pledges::{
        BatchSignPledgesRequest, Channel as SignChannel, PublishTemplateRequest, SignPledgeRequest, TemplateKind,
        pledges_service_client::PledgesServiceClient,
    },
    points::{BatchSubmitRecordsRequest, RecordInput, points_service_client::PointsServiceClient},
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

pub const PASSWORD: &str = "bench-password-1";
/// Households per grid, about what a grid worker looks after.
const GRID_SIZE: usize = 230;

pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", MetadataValue::from_str(&format!("Bearer {token}")).unwrap());
    request
}

pub fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// The value at fraction `p` of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// A valid synthetic ID number, unique per `n`; every holder is an adult.
fn id_number(n: usize) -> String {
    let day = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap() + chrono::Days::new((n / 1000) as u64);
    let first17 = format!("320830{}{:03}", day.format("%Y%m%d"), n % 1000);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.bytes().zip(weights).map(|(d, w)| u32::from(d - b'0') * w).sum();
    format!("{first17}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// CPU time this process uses over a phase, user and system, every thread (from /proc; `None`
/// where there is none). In embedded mode the services run in this process, so it is what the
/// phase cost the machine, which varies less from run to run on a shared machine than wall
/// time does.
pub struct CpuTimer(Option<Duration>);

impl CpuTimer {
    pub fn start() -> Self {
        Self(process_cpu_time())
    }

    /// CPU time used since [`CpuTimer::start`].
    pub fn elapsed(&self) -> Option<Duration> {
        process_cpu_time()?.checked_sub(self.0?)
    }
}

/// CPU time this process has used so far.
fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports them in USER_HZ, 100 a second on every architecture it runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// An account signed in, and signed in again shortly before its access token expires: against a
/// cluster (tokens live 15 minutes by default) a county-size run outlasts a token, and a client
/// of a real deployment signs in again just the same. The embedded runs set 600 minutes.
pub struct Session {
    identity: IdentityServiceClient<Channel>,
    login: LoginRequest,
    token: String,
    expires_at: i64,
}

/// A token is replaced this many seconds before it expires: more than any one call here takes to
/// reach the server.
const RENEW_BEFORE_SECS: i64 = 120;

impl Session {
    pub async fn sign_in(identity: IdentityServiceClient<Channel>, username: &str, password: &str) -> Self {
        let login = LoginRequest { username: username.into(), password: password.into() };
        let mut session = Self { identity, login, token: String::new(), expires_at: 0 };
        session.renew().await;
        session
    }

    async fn renew(&mut self) {
        let response = self.identity.login(self.login.clone()).await.unwrap().into_inner();
        self.token = response.access_token;
        self.expires_at = response.access_token_expires_at.expect("a login answers with the token's expiry").seconds;
    }

    /// A token valid for at least [`RENEW_BEFORE_SECS`] more.
    pub async fn token(&mut self) -> &str {
        if self.expires_at - chrono::Utc::now().timestamp() < RENEW_BEFORE_SECS {
            self.renew().await;
        }
        &self.token
    }
}

/// Where the system under test runs.
enum Target {
    /// Every service in this process, on SQLite and the in-process bus.
    Embedded(RunningSystem),
    /// A running distributed cluster (`scripts/dev-cluster.sh`): one process per service on
    /// PostgreSQL and a Kafka-protocol broker; the benchmark is a client of their gRPC ports,
    /// and reads the services' schemas through one connection pool of its own.
    Cluster(jiaxin_kit::storage::Database),
}

/// The system under test, signed in as its admin.
pub struct Bench {
    target: Target,
    channels: HashMap<ServiceName, Channel>,
    /// The system's settings, for its database locations (SQLite files, or PostgreSQL schemas).
    pub config: SystemConfig,
    admin: tokio::sync::Mutex<Session>,
    /// The admin's scope: the county's root node.
    pub root: String,
    dir: tempfile::TempDir,
}

impl Bench {
    /// Starts all services embedded, with the command line's defaults plus `extra` flags.
    pub async fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut args = vec![
            "bench",
            "--grpc-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--bootstrap-admin-password",
            PASSWORD,
            "--request-timeout-secs",
            "3600",
            // A county-size run outlasts the default 15 minutes of the admin's access token.
            "--access-token-minutes",
            "600",
        ];
        args.extend_from_slice(extra);
        let config = SystemConfig::from_args(args).unwrap();
        let running = system::start(config.clone()).await.unwrap();
        let channel = Channel::from_shared(format!("http://{}", running.grpc_addr)).unwrap().connect().await.unwrap();
        let channels = ServiceName::ALL.iter().map(|service| (*service, channel.clone())).collect();
        Self::signed_in(Target::Embedded(running), channels, config, PASSWORD, dir).await
    }

    /// Connects to the distributed cluster described by `<cluster_dir>/cluster.env` (written by
    /// `scripts/dev-cluster.sh start`): its services' endpoints, admin password and PostgreSQL.
    pub async fn connect(cluster_dir: &Path) -> Self {
        let text = std::fs::read_to_string(cluster_dir.join("cluster.env"))
            .unwrap_or_else(|e| panic!("{}/cluster.env: {e} (start the cluster first)", cluster_dir.display()));
        let env: HashMap<&str, &str> =
            text.lines().filter_map(|line| line.strip_prefix("export ")?.split_once('=')).collect();
        let var = |name: &str| *env.get(name).unwrap_or_else(|| panic!("cluster.env has no {name}"));
        let mut channels = HashMap::new();
        for service in ServiceName::ALL {
            let endpoint = var(&format!("JIAXIN_TEST_ENDPOINT_{}", service.as_str().to_uppercase()));
            channels.insert(*service, Channel::from_shared(endpoint.to_owned()).unwrap().connect().await.unwrap());
        }
        let dir = tempfile::tempdir().unwrap();
        let config = SystemConfig::from_args([
            "bench",
            "--database-url",
            var("JIAXIN_TEST_DATABASE_URL"),
            "--database-schema-prefix",
            var("JIAXIN_TEST_DATABASE_SCHEMA_PREFIX"),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .unwrap();
        let password = var("JIAXIN_TEST_CLUSTER_ADMIN_PASSWORD").to_owned();
        // Any service's location reaches the shared database; queries name their schemas.
        let db = jiaxin_kit::storage::Database::connect(&config.location(ServiceName::Points).unwrap()).await.unwrap();
        let mut bench = Self::signed_in(Target::Cluster(db), channels, config, &password, dir).await;
        // The dev cluster's root is a city (淮安市): the run's county is a new one under it.
        let name = format!("基准县{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
        let admin = bench.admin().await;
        bench.root = create_node(&mut bench.identity(), &admin, &bench.root, OrgNodeKind::County, name).await;
        bench
    }

    async fn signed_in(
        target: Target,
        channels: HashMap<ServiceName, Channel>,
        config: SystemConfig,
        password: &str,
        dir: tempfile::TempDir,
    ) -> Self {
        let mut identity = IdentityServiceClient::new(channels[&ServiceName::Identity].clone());
        let mut admin = Session::sign_in(identity.clone(), "admin", password).await;
        let request = authed(admin.token().await, GetCurrentAccountRequest {});
        let root = identity.get_current_account(request).await.unwrap().into_inner().account.unwrap().org_node_id;
        Self { target, channels, config, admin: tokio::sync::Mutex::new(admin), root, dir }
    }

    /// The admin's access token, valid for a while yet (see [`Session`]).
    pub async fn admin(&self) -> String {
        self.admin.lock().await.token().await.to_owned()
    }

    /// "embedded (SQLite, in-process bus)" or "distributed (PostgreSQL, Kafka, a process per
    /// service)", for the figures' heading.
    pub fn mode(&self) -> &'static str {
        match self.target {
            Target::Embedded(_) => "embedded (SQLite, in-process bus)",
            Target::Cluster(_) => "distributed (PostgreSQL, Kafka-protocol broker, a process per service)",
        }
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self.target, Target::Embedded(_))
    }

    pub fn channel(&self, service: ServiceName) -> Channel {
        self.channels[&service].clone()
    }

    /// A scratch directory for baselines, next to the system's data.
    pub fn scratch(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn identity(&self) -> IdentityServiceClient<Channel> {
        IdentityServiceClient::new(self.channel(ServiceName::Identity)).max_decoding_message_size(256 << 20)
    }

    /// Residents identity has registered: none in a fresh embedded system; on a cluster, those of
    /// the counties earlier runs onboarded.
    pub async fn residents_registered(&self) -> usize {
        match &self.target {
            Target::Embedded(_) => 0,
            Target::Cluster(db) => {
                let schema = self.config.location(ServiceName::Identity).unwrap().schema.unwrap();
                let sql = format!("SELECT COUNT(*) FROM {schema}.residents");
                let count: i64 = sqlx::query_scalar(&sql).fetch_one(db.pool()).await.unwrap();
                count as usize
            }
        }
    }

    /// An empty database for a baseline on the same engine as `service`'s: a SQLite file beside
    /// the system's data, or on a cluster a new schema of its PostgreSQL next to the service's.
    pub async fn baseline_database(&self, service: ServiceName) -> jiaxin_kit::storage::Database {
        let location = if self.is_embedded() {
            jiaxin_kit::storage::DatabaseLocation::sqlite_in(self.scratch(), "baseline").unwrap()
        } else {
            let service = self.config.location(service).unwrap();
            let schema = format!("{}_baseline_{}", service.schema.clone().unwrap(), std::process::id());
            jiaxin_kit::storage::DatabaseLocation { schema: Some(schema), ..service }
        };
        jiaxin_kit::storage::Database::connect(&location).await.unwrap()
    }

    /// Events written by `producer` that have not yet been applied by every one of `consumers`.
    /// Embedded: what the in-process bus has not delivered. Distributed: the producer's outbox
    /// rows missing from a consumer's inbox (both kept in PostgreSQL, schema by schema).
    pub async fn undelivered(&self, producer: ServiceName, consumers: &[ServiceName]) -> i64 {
        match &self.target {
            Target::Embedded(running) => running.undelivered_events().await.unwrap(),
            Target::Cluster(db) => {
                let schema = |service| self.config.location(service).unwrap().schema.unwrap();
                let mut missing = 0;
                for consumer in consumers {
                    let sql = format!(
                        "SELECT COUNT(*) FROM {}.kit_outbox o WHERE NOT EXISTS \
                         (SELECT 1 FROM {}.kit_inbox i WHERE i.event_id = o.event_id)",
                        schema(producer),
                        schema(*consumer)
                    );
                    let count: i64 = sqlx::query_scalar(&sql).fetch_one(db.pool()).await.unwrap();
                    missing += count;
                }
                missing
            }
        }
    }

    /// Waits until every event `producer` has written is applied by every one of `consumers`
    /// (seen twice in a row, half a second apart, so a relay between polls is not missed).
    pub async fn drained(&self, producer: ServiceName, consumers: &[ServiceName]) {
        let mut quiet_polls = 0;
        while quiet_polls < 2 {
            quiet_polls = if self.undelivered(producer, consumers).await == 0 { quiet_polls + 1 } else { 0 };
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// Stops an embedded system; leaves a cluster running (it was there before).
    pub async fn shutdown(self) {
        if let Target::Embedded(running) = self.target {
            running.shutdown().await;
        }
    }
}

/// The synthetic county as onboarded.
pub struct County {
    /// The large village first, when there is one.
    pub villages: Vec<String>,
    pub grids: Vec<String>,
    pub households: usize,
    pub residents: usize,
    pub import_elapsed: Duration,
}

async fn create_node(
    identity: &mut IdentityServiceClient<Channel>,
    token: &str,
    parent: &str,
    kind: OrgNodeKind,
    name: String,
) -> String {
    let request = CreateOrgNodeRequest { parent_id: parent.into(), kind: kind as i32, name, ..Default::default() };
    identity.create_org_node(authed(token, request)).await.unwrap().into_inner().org_node.unwrap().id
}

/// Households per import call, each call one transaction. Chosen when one deadline covered every
/// call (21,000 households in one call outlasted it in distributed mode, at 443 households/s);
/// imports have a deadline of their own since (`--bulk-request-timeout-secs`), and the calls
/// stay at this size so that figures remain comparable from run to run.
const IMPORT_HOUSEHOLDS: usize = 10_000;

/// Towns of 15 villages of 4 grids of about 230 households, each of one to five residents
/// (about 2.6 on average), imported as CSV streams of [`IMPORT_HOUSEHOLDS`] each.
pub async fn onboard_county(bench: &Bench, households: usize) -> County {
    onboard_county_with(bench, households, 0).await
}

/// [`onboard_county`], with the first village holding `large_village` of the households (the
/// largest village a branch pre-approves) and the rest spread as usual; none when zero.
pub async fn onboard_county_with(bench: &Bench, households: usize, large_village: usize) -> County {
    assert!(large_village <= households, "the large village cannot hold more than the county");
    let mut identity = bench.identity();
    let (admin, root) = (&bench.admin().await, &bench.root);
    let (mut villages, mut large_grids) = (Vec::new(), Vec::new());
    if large_village > 0 {
        let town = create_node(&mut identity, admin, root, OrgNodeKind::Town, "大村镇".into()).await;
        let village = create_node(&mut identity, admin, &town, OrgNodeKind::Village, "大村".into()).await;
        villages.push(village.clone());
        for g in 0..large_village.div_ceil(GRID_SIZE) {
            large_grids
                .push(create_node(&mut identity, admin, &village, OrgNodeKind::Grid, format!("大村网格{g}")).await);
        }
    }
    let grids_needed = (households - large_village).div_ceil(GRID_SIZE).max(1);
    let mut grids = Vec::with_capacity(grids_needed);
    'build: for t in 0.. {
        let town = create_node(&mut identity, admin, root, OrgNodeKind::Town, format!("镇{t}")).await;
        for v in 0..15 {
            let village = create_node(&mut identity, admin, &town, OrgNodeKind::Village, format!("村{t}-{v}")).await;
            villages.push(village.clone());
            for g in 0..4 {
                let grid =
                    create_node(&mut identity, admin, &village, OrgNodeKind::Grid, format!("网格{t}-{v}-{g}")).await;
                grids.push(grid);
                if grids.len() == grids_needed {
                    break 'build;
                }
            }
        }
    }
    let grid_of = |h: usize| {
        if h < large_village { &large_grids[h % large_grids.len()] } else { &grids[(h - large_village) % grids.len()] }
    };

    // ID numbers go on from those a cluster has registered for earlier runs' counties.
    let first_id = bench.residents_registered().await;
    let started = Instant::now();
    let mut residents = 0;
    for first in (0..households).step_by(IMPORT_HOUSEHOLDS) {
        let mut csv = String::from("household_ref,grid,address,relation,name,id_number\n");
        for h in first..households.min(first + IMPORT_HOUSEHOLDS) {
            let grid = grid_of(h);
            let size = [1, 2, 2, 3, 3, 3, 4, 5][h % 8];
            for m in 0..size {
                let relation = ["户主", "配偶", "子女", "子女", "父母"][m];
                csv.push_str(&format!(
                    "H{h},{grid},第{h}号,{relation},居民{h}-{m},{}\n",
                    id_number(first_id + residents)
                ));
                residents += 1;
            }
        }
        let mut messages = vec![ImportHouseholdsRequest { part: Some(Part::Options(ImportOptions::default())) }];
        messages.extend(
            csv.as_bytes().chunks(256 * 1024).map(|c| ImportHouseholdsRequest { part: Some(Part::Chunk(c.to_vec())) }),
        );
        // A token per call: at a county's size the calls together outlast one against a cluster.
        let request = authed(&bench.admin().await, tokio_stream::iter(messages));
        let report = identity.import_households(request).await.unwrap().into_inner();
        assert!(report.committed, "{:?}", report.bad_rows.first());
    }
    grids.extend(large_grids);
    County { villages, grids, households, residents, import_elapsed: started.elapsed() }
}

/// Waits until a service's read model holds `expected` rows of `table` (events propagating).
pub async fn await_rows(db: &jiaxin_kit::storage::Database, table: &str, expected: usize) -> Duration {
    let started = Instant::now();
    loop {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let known: i64 = sqlx::query_scalar(&sql).fetch_one(db.pool()).await.unwrap();
        if known as usize >= expected {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rows of the county whose root is bound as `$1`, by their org path: a cluster keeps earlier
/// runs' counties beside this one. (LIKE rather than a string function: the same text on SQLite
/// and PostgreSQL; org ids hold no wildcards.)
pub const IN_COUNTY: &str = "path LIKE '%' || $1 || '%'";

/// The households (id, head) of the county under `root` in a service's read model that keeps
/// their paths (pledges'), once identity's events have brought all `expected` of them, with how
/// long that took.
pub async fn county_heads(
    db: &jiaxin_kit::storage::Database,
    root: &str,
    expected: usize,
) -> (Vec<(String, String)>, Duration) {
    let started = Instant::now();
    loop {
        let sql = format!("SELECT id, head_resident_id FROM households WHERE {IN_COUNTY} ORDER BY id");
        let heads: Vec<(String, String)> = sqlx::query_as(&sql).bind(root).fetch_all(db.pool()).await.unwrap();
        if heads.len() >= expected {
            return (heads, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A service's own database for an in-process scenario: a SQLite file in `dir`, or — with
/// `--postgres <url>` — a fresh schema of that PostgreSQL (`bench_<pid>_<time>_<service>`), so a run
/// never meets an earlier one's rows.
pub async fn scenario_database(postgres: Option<&str>, dir: &Path, service: &str) -> jiaxin_kit::storage::Database {
    let location = match postgres {
        Some(url) => {
            let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            let prefix = format!("bench_{}_{}_", std::process::id(), started.as_secs());
            jiaxin_kit::storage::DatabaseLocation::shared(jiaxin_kit::Secret::new(url.to_owned()), &prefix, service)
        }
        None => jiaxin_kit::storage::DatabaseLocation::sqlite_in(dir, service).unwrap(),
    };
    jiaxin_kit::storage::Database::connect(&location).await.unwrap()
}

/// The engine a scenario runs on, for its heading.
pub fn engine(postgres: Option<&str>) -> &'static str {
    if postgres.is_some() { "PostgreSQL" } else { "SQLite" }
}

/// Signs in a new grid worker scoped to the whole county (a name of this run's own: a cluster may
/// be measured twice).
pub async fn county_collector(bench: &Bench) -> Session {
    account(bench, "bench-collector", "采集员", ProtoRole::GridWorker).await.1
}

/// Creates an account of `role` scoped to the county, named `<prefix>-<now in ms>`, and signs it
/// in. Returns its id and session.
pub async fn account(bench: &Bench, prefix: &str, display_name: &str, role: ProtoRole) -> (String, Session) {
    let mut identity = bench.identity();
    let username = format!("{prefix}-{}", chrono::Utc::now().timestamp_millis());
    let request = CreateAccountRequest {
        username: username.clone(),
        display_name: display_name.into(),
        roles: vec![role as i32],
        org_node_id: bench.root.clone(),
        password: PASSWORD.into(),
        ..Default::default()
    };
    let created = identity.create_account(authed(&bench.admin().await, request)).await.unwrap().into_inner();
    (created.account.unwrap().id, Session::sign_in(identity, &username, PASSWORD).await)
}

/// Bonus rules that need no review, with their yearly caps in records: a household's year of
/// records spreads over them without reaching a cap.
const RULES: &[(&str, usize)] = &[("A01", 6), ("D01", 12), ("D04", 6), ("B01", 4), ("A06", 3), ("E05", 5)];

/// `count` records of a year, spread over `households` and [`RULES`] within the caps, each
/// dated in the last 300 days.
pub fn year_of_records(households: &[String], count: usize) -> Vec<RecordInput> {
    let now = chrono::Utc::now().timestamp();
    let per_household: usize = RULES.iter().map(|(_, cap)| cap).sum();
    assert!(count <= households.len() * per_household, "more records than the caps allow");
    (0..count)
        .map(|i| {
            let household = &households[i % households.len()];
            // The n-th record of a household takes the rule whose cumulative cap first exceeds n.
            let round = i / households.len();
            let (rule, _) = RULES
                .iter()
                .scan(0, |seen, r| {
                    *seen += r.1;
                    Some((r, *seen))
                })
                .find(|(_, end)| round < *end)
                .map(|(r, _)| *r)
                .unwrap();
            RecordInput {
                request_id: format!("bench-{i}"),
                household_id: household.clone(),
                rule_code: rule.into(),
                occurred_at: Some(prost_types::Timestamp { seconds: now - 86_400 * (1 + (i % 300) as i64), nanos: 0 }),
                evidence: vec![format!("photo:{i}")],
                place: "村委会".into(),
                ..Default::default()
            }
        })
        .collect()
}

/// Submits `inputs` through BatchSubmitRecords, `batch` per call, from `clients` clients at once
/// (as several cadres import their grids' records at the same time: the calls go over one
/// connection, each client's in turn); every one must be accepted. Returns how many were.
pub async fn submit_records(
    points: &PointsServiceClient<Channel>,
    collector: Session,
    inputs: &[RecordInput],
    batch: usize,
    clients: usize,
) -> usize {
    let collector = std::sync::Arc::new(tokio::sync::Mutex::new(collector));
    let batches: Vec<&[RecordInput]> = inputs.chunks(batch).collect();
    let clients = clients.max(1);
    let submitters = (0..clients).map(|client| {
        let (mut points, collector) = (points.clone(), collector.clone());
        // Client k takes batches k, k + clients, …: the year's order, interleaved.
        let mine: Vec<&[RecordInput]> = batches.iter().skip(client).step_by(clients).copied().collect();
        async move {
            let mut accepted = 0;
            for chunk in mine {
                let request = BatchSubmitRecordsRequest { records: chunk.to_vec() };
                let token = collector.lock().await.token().await.to_owned();
                let response = points.batch_submit_records(authed(&token, request)).await.unwrap().into_inner();
                if response.failed > 0 {
                    let first = response.results.iter().find(|r| !r.error_code.is_empty()).unwrap();
                    panic!(
                        "{} failed: {} {} {}",
                        response.failed, first.error_code, first.error_field, first.error_message
                    );
                }
                accepted += response.accepted as usize;
            }
            accepted
        }
    });
    futures::future::join_all(submitters).await.into_iter().sum()
}

/// Each village publishes its 村规民约 (version 1), which its households then sign.
pub async fn publish_village_rules(pledges: &mut PledgesServiceClient<Channel>, admin: &str, villages: &[String]) {
    for village in villages {
        let template = PublishTemplateRequest {
            org_node_id: village.clone(),
            kind: TemplateKind::VillageRules as i32,
            title: "村规民约".into(),
            body: "一、遵纪守法。二、移风易俗。三、爱护环境。四、邻里和睦。".into(),
            consent_clause: "本户同意将本承诺及履约记录纳入家庭信用档案。".into(),
            effective_on: "2026-01-01".into(),
            adopted_by: "村民代表大会".into(),
            adopted_on: "2025-12-20".into(),
            requires_resign: false,
        };
        pledges.publish_template(authed(admin, template)).await.unwrap();
    }
}

/// The paper pledge forms of `heads` (household, head resident), as a cadre enters them.
pub fn paper_pledges(heads: &[(String, String)]) -> Vec<SignPledgeRequest> {
    heads
        .iter()
        .enumerate()
        .map(|(i, (household, head))| SignPledgeRequest {
            household_id: household.clone(),
            signer_resident_id: head.clone(),
            template_version: 1,
            channel: SignChannel::Paper as i32,
            scan_reference: format!("scan:2026/{i:06}.pdf"),
            ..Default::default()
        })
        .collect()
}

/// Enters `items` through BatchSignPledges, `batch` per call; every one must be signed. Returns
/// how many were, and each call's latency.
pub async fn sign_pledges(
    pledges: &mut PledgesServiceClient<Channel>,
    admin: &str,
    items: &[SignPledgeRequest],
    batch: usize,
) -> (usize, Vec<Duration>) {
    let mut signed = 0;
    let mut latencies = Vec::new();
    for chunk in items.chunks(batch) {
        let call = Instant::now();
        let request = BatchSignPledgesRequest { items: chunk.to_vec() };
        let response = pledges.batch_sign_pledges(authed(admin, request)).await.unwrap().into_inner();
        latencies.push(call.elapsed());
        if response.failed > 0 {
            let first = response.results.iter().find(|r| !r.error_code.is_empty()).unwrap();
            panic!("{} failed: {} {} {}", response.failed, first.error_code, first.error_field, first.error_message);
        }
        signed += response.signed as usize;
    }
    (signed, latencies)
}
