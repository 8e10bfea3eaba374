//! The test harness. Embedded (the default): each test boots its own system the way
//! `jiaxin serve` does, on ephemeral ports and a temporary data directory. Distributed (when
//! `scripts/test-distributed.sh` exports `JIAXIN_TEST_CLUSTER`): every test of the run shares one
//! running cluster — PostgreSQL, a Kafka-protocol broker and one `jiaxin serve --service …`
//! process per service — and isolates itself by data: its own county and its own county admin.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, str::FromStr};

use jiaxin::system::{self, RunningSystem, ServiceName, SystemConfig};
use jiaxin_kit::{
    Secret,
    crypto::FieldCipher,
    storage::{Database, DatabaseLocation},
};
use jiaxin_proto::identity::{
    CreateAccountRequest, LoginRequest, OrgNodeKind, Role, identity_service_client::IdentityServiceClient,
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

pub const ADMIN_PASSWORD: &str = "admin-password-1";

enum Mode {
    Embedded { running: Option<RunningSystem>, config: Box<SystemConfig>, _temp: tempfile::TempDir },
    Cluster { endpoint: String },
}

pub struct TestSystem {
    mode: Mode,
    /// Embedded: the system's data directory (SQLite files, field key).
    pub data_dir: PathBuf,
    admin_username: String,
}

/// Whether this run uses the shared distributed cluster.
pub fn distributed() -> bool {
    std::env::var("JIAXIN_TEST_CLUSTER").is_ok()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by scripts/test-distributed.sh"))
}

impl TestSystem {
    pub async fn start() -> Self {
        if distributed() { Self::join_cluster().await } else { Self::start_embedded().await }
    }

    async fn start_embedded() -> Self {
        Self::start_private(false).await
    }

    /// A system of the test's own, in this process, on SQLite, whatever the suite. With
    /// `run_bus`, it publishes on the run's bus: the broker in the distributed suite (a topic
    /// namespace of its own), in-process otherwise.
    pub async fn start_private(run_bus: bool) -> Self {
        Self::start_private_with(run_bus, &[]).await
    }

    /// [`TestSystem::start_private`] with `extra` command-line options.
    pub async fn start_private_with(run_bus: bool, extra: &[&str]) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        // Parse like the command line does, so the tests use the real defaults.
        let mut args: Vec<String> = [
            "test",
            "--grpc-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--bootstrap-admin-password",
            ADMIN_PASSWORD,
        ]
        .map(String::from)
        .to_vec();
        if run_bus && let Ok(bus) = std::env::var("JIAXIN_TEST_BUS") {
            let prefix = format!("p{}.", uuid::Uuid::new_v4().simple());
            args.extend([
                "--bus".into(),
                bus,
                "--kafka-topic-prefix".into(),
                prefix,
                "--kafka-partitions".into(),
                "3".into(),
            ]);
        }
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let config = SystemConfig::from_args(args).unwrap();
        let running = system::start(config.clone()).await.unwrap();
        Self {
            mode: Mode::Embedded { running: Some(running), config: Box::new(config), _temp: temp },
            data_dir,
            admin_username: "admin".into(),
        }
    }

    /// A county of this test's own, with its own admin, in the shared cluster.
    async fn join_cluster() -> Self {
        let endpoint = env("JIAXIN_TEST_CLUSTER");
        let namespace = uuid::Uuid::new_v4().simple().to_string();
        let mut client = IdentityServiceClient::connect(endpoint.clone()).await.unwrap();
        let login = LoginRequest { username: "admin".into(), password: env("JIAXIN_TEST_CLUSTER_ADMIN_PASSWORD") };
        let token = client.login(login).await.unwrap().into_inner().access_token;
        let city = own_scope(&mut client, &token).await;
        let county =
            create_node(&mut client, &token, &city, OrgNodeKind::County, &format!("测试县{namespace}"), "").await;
        let admin_username = format!("admin-{namespace}");
        let account = CreateAccountRequest {
            username: admin_username.clone(),
            display_name: "测试县管理员".into(),
            roles: vec![Role::CountyAdmin as i32],
            org_node_id: county,
            password: ADMIN_PASSWORD.into(),
            ..Default::default()
        };
        client.create_account(authed(&token, account)).await.unwrap();
        Self { mode: Mode::Cluster { endpoint }, data_dir: PathBuf::new(), admin_username }
    }

    pub fn addr(&self) -> String {
        match &self.mode {
            Mode::Embedded { running, .. } => format!("http://{}", running.as_ref().unwrap().grpc_addr),
            Mode::Cluster { endpoint } => endpoint.clone(),
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.addr()).unwrap().connect().await.unwrap()
    }

    /// A channel to a service: the one address embedded, the service's own process in the cluster.
    pub async fn channel_to(&self, service: ServiceName) -> Channel {
        let addr = match &self.mode {
            Mode::Embedded { .. } => self.addr(),
            Mode::Cluster { .. } => env(&format!("JIAXIN_TEST_ENDPOINT_{}", service.as_str().to_uppercase())),
        };
        Channel::from_shared(addr).unwrap().connect().await.unwrap()
    }

    /// Publishes an event as `producer` would: on the in-process bus embedded, on the cluster's
    /// Kafka topics otherwise (stand-in for services not built yet, such as the council).
    pub async fn publish<M: prost::Name>(&self, producer: &'static str, partition_key: &str, event: &M) {
        let envelope = jiaxin_kit::events::envelope(producer, partition_key, event).unwrap();
        let topic = jiaxin_kit::events::topic(producer);
        match &self.mode {
            Mode::Embedded { running, .. } => running.as_ref().unwrap().bus().publish(&topic, &envelope).await.unwrap(),
            Mode::Cluster { .. } => {
                let config = jiaxin_kit::kafka::KafkaConfig {
                    brokers: env("JIAXIN_TEST_BUS").trim_start_matches("kafka://").to_owned(),
                    prefix: env("JIAXIN_TEST_KAFKA_TOPIC_PREFIX"),
                    partitions: 3,
                    replication: 1,
                };
                let stop = jiaxin_kit::supervise::Stop::new();
                let bus = jiaxin_kit::kafka::KafkaBus::new(config, stop.clone()).unwrap();
                use jiaxin_kit::bus::Bus;
                bus.publish(&topic, &envelope).await.unwrap();
                stop.token().cancel();
                bus.shutdown(std::time::Duration::from_secs(10)).await;
            }
        }
    }

    pub async fn identity(&self) -> IdentityServiceClient<Channel> {
        IdentityServiceClient::new(self.channel().await)
    }

    /// The admin of this test's county.
    pub fn admin_username(&self) -> &str {
        &self.admin_username
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let request = LoginRequest { username: username.into(), password: password.into() };
        self.identity().await.login(request).await.unwrap().into_inner().access_token
    }

    pub async fn admin_token(&self) -> String {
        self.login(&self.admin_username, ADMIN_PASSWORD).await
    }

    /// The key that encrypts personal data, as the system has it.
    pub fn field_cipher(&self) -> FieldCipher {
        match &self.mode {
            Mode::Embedded { .. } => FieldCipher::load_or_create(&self.data_dir.join("field.key")).unwrap(),
            Mode::Cluster { .. } => FieldCipher::from_base64(&Secret::new(env("JIAXIN_TEST_FIELD_KEY"))).unwrap(),
        }
    }

    /// A service's database, opened the way the system opens it.
    pub async fn database(&self, service: ServiceName) -> Database {
        let location = match &self.mode {
            Mode::Embedded { config, .. } => config.location(service).unwrap(),
            Mode::Cluster { .. } => DatabaseLocation::shared(
                Secret::new(env("JIAXIN_TEST_DATABASE_URL")),
                &env("JIAXIN_TEST_DATABASE_SCHEMA_PREFIX"),
                service.as_str(),
            ),
        };
        Database::connect(&location).await.unwrap()
    }

    /// The embedded system's bus, to subscribe a test consumer.
    pub fn bus(&self) -> std::sync::Arc<dyn jiaxin_kit::bus::Bus> {
        match &self.mode {
            Mode::Embedded { running, .. } => running.as_ref().unwrap().bus(),
            Mode::Cluster { .. } => panic!("the shared cluster's bus is Kafka: subscribe through a KafkaBus"),
        }
    }

    /// Stops an embedded system (flushing its outbox and closing its files). The shared cluster
    /// outlives the test.
    pub async fn stop(&mut self) {
        if let Mode::Embedded { running, .. } = &mut self.mode
            && let Some(running) = running.take()
        {
            running.shutdown().await;
        }
    }
}

/// A request carrying a bearer token.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", MetadataValue::from_str(&format!("Bearer {token}")).unwrap());
    request
}

/// A valid synthetic ID number: 17 digits and their check character. In the shared cluster every
/// test draws from its own region code, so tests never register the same person twice.
pub fn id_number(region: &str, birth: &str, seq: u32) -> String {
    let region = if distributed() { test_region(region) } else { region.to_owned() };
    let first17 = format!("{region}{birth}{seq:03}");
    assert_eq!(first17.len(), 17);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.bytes().zip(weights).map(|(d, w)| u32::from(d - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{first17}{check}")
}

/// A six-digit region code drawn once per test process (nextest runs each test in its own).
fn test_region(region: &str) -> String {
    use std::sync::OnceLock;
    static REGION: OnceLock<String> = OnceLock::new();
    let code = REGION.get_or_init(|| format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000));
    // Keep the caller's province digits out of it: only the number must differ per test.
    let _ = region;
    code.clone()
}

/// The gRPC status code of a failed call.
/// The bytes of every file in `dir` (not its subdirectories), concatenated: what the scans for
/// personal numbers in clear read of an embedded data directory. A file that vanishes between
/// the listing and the read is skipped: SQLite removes a database's -wal/-shm files as its last
/// connection closes, which can still be under way when the process has stopped.
pub fn bytes_of_files_in(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match std::fs::read(&path) {
            Ok(bytes) => out.extend(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => panic!("cannot read {}: {error}", path.display()),
        }
    }
    out
}

pub fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> tonic::Code {
    result.expect_err("call should fail").code()
}

/// Creates an org node and returns its id.
pub async fn create_node(
    client: &mut IdentityServiceClient<Channel>,
    token: &str,
    parent: &str,
    kind: OrgNodeKind,
    name: &str,
    code: &str,
) -> String {
    let request = jiaxin_proto::identity::CreateOrgNodeRequest {
        parent_id: parent.into(),
        kind: kind as i32,
        name: name.into(),
        code: code.into(),
        ..Default::default()
    };
    client.create_org_node(authed(token, request)).await.unwrap().into_inner().org_node.unwrap().id
}

/// The caller's scope node (for a test's admin: its county).
pub async fn own_scope(client: &mut IdentityServiceClient<Channel>, token: &str) -> String {
    let request = jiaxin_proto::identity::GetCurrentAccountRequest {};
    client.get_current_account(authed(token, request)).await.unwrap().into_inner().account.unwrap().org_node_id
}

/// town › village › grid under the caller's scope; returns the grid's id.
pub async fn grid_under_scope(client: &mut IdentityServiceClient<Channel>, token: &str, grid_code: &str) -> String {
    let root = own_scope(client, token).await;
    let town = create_node(client, token, &root, OrgNodeKind::Town, "马坝镇", "").await;
    let village = create_node(client, token, &town, OrgNodeKind::Village, "新街村", "").await;
    create_node(client, token, &village, OrgNodeKind::Grid, "第一网格", grid_code).await
}

/// The pledge a test village signs: a short 村规民约 with its consent clause.
pub fn pledge_template(village: &str, requires_resign: bool) -> jiaxin_proto::pledges::PublishTemplateRequest {
    jiaxin_proto::pledges::PublishTemplateRequest {
        org_node_id: village.into(),
        kind: jiaxin_proto::pledges::TemplateKind::VillageRules as i32,
        title: "新街村村规民约".into(),
        body: "一、热爱祖国,遵纪守法。二、移风易俗,红白喜事简办。三、爱护环境,垃圾分类。四、邻里和睦,互帮互助。".into(),
        consent_clause: "本户同意将本承诺及履约记录纳入家庭信用档案。".into(),
        effective_on: "2026-01-01".into(),
        adopted_by: "新街村村民代表大会".into(),
        adopted_on: "2025-12-20".into(),
        requires_resign,
    }
}

/// Waits (bounded) until pledges has the household from identity's events.
pub async fn await_pledges_household(
    client: &mut jiaxin_proto::pledges::pledges_service_client::PledgesServiceClient<Channel>,
    token: &str,
    household: &str,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let request = jiaxin_proto::pledges::GetHouseholdPledgeRequest { household_id: household.into() };
        match client.get_household_pledge(authed(token, request)).await {
            Ok(_) => return,
            Err(status) if status.code() == tonic::Code::NotFound && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(status) => panic!("pledges never learned of household {household}: {status:?}"),
        }
    }
}

/// How long a test waits for a service to learn of what another did. In the distributed suite
/// every test shares one test broker (tansu), which falls minutes behind when the heaviest tests
/// overlap (seen in CI: librdkafka request timeouts for two minutes): generous, and only a
/// bound — each wait ends as soon as the event is in.
pub const EVENTS_WITHIN: std::time::Duration = std::time::Duration::from_secs(240);

/// The password of every account [`account`] makes.
pub const ACCOUNT_PASSWORD: &str = "account-pass-1";

/// A new account with `roles` in `scope` (linked to `resident` unless empty), logged in:
/// (account id, access token).
pub async fn account(
    sys: &TestSystem,
    identity: &mut IdentityServiceClient<Channel>,
    admin: &str,
    roles: &[Role],
    scope: &str,
    resident: &str,
) -> (String, String) {
    let username = format!("account-{}", uuid::Uuid::new_v4().simple());
    let request = CreateAccountRequest {
        username: username.clone(),
        display_name: "测试账号".into(),
        roles: roles.iter().map(|r| *r as i32).collect(),
        org_node_id: scope.into(),
        password: ACCOUNT_PASSWORD.into(),
        resident_id: resident.into(),
        ..Default::default()
    };
    let id = identity.create_account(authed(admin, request)).await.unwrap().into_inner().account.unwrap().id;
    (id, sys.login(&username, ACCOUNT_PASSWORD).await)
}

/// Polls points for the household's score until `ready` holds of it (identity's and pledges'
/// events reach points on their own time in the distributed mode); unknown reads as not yet.
async fn await_points_score(
    client: &mut jiaxin_proto::points::points_service_client::PointsServiceClient<Channel>,
    token: &str,
    household: &str,
    what: &str,
    ready: impl Fn(&jiaxin_proto::points::Score) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let request = jiaxin_proto::points::GetScoreRequest { household_id: household.into(), ..Default::default() };
        match client.get_score(authed(token, request)).await {
            Ok(score) if score.get_ref().score.as_ref().is_some_and(&ready) => return,
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => panic!("points answered {status:?} for household {household}"),
        }
        assert!(std::time::Instant::now() < deadline, "points never {what} of household {household}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until points knows the household: its score can be read.
pub async fn await_points_household(
    client: &mut jiaxin_proto::points::points_service_client::PointsServiceClient<Channel>,
    token: &str,
    household: &str,
) {
    await_points_score(client, token, household, "learned", |_| true).await;
}

/// Waits until points counts the household's pledge (until then its records are held).
pub async fn await_points_pledge(
    client: &mut jiaxin_proto::points::points_service_client::PointsServiceClient<Channel>,
    token: &str,
    household: &str,
) {
    let in_force = jiaxin_proto::points::PledgeStatus::InForce as i32;
    await_points_score(client, token, household, "counted the pledge", |s| s.pledge == in_force).await;
}

/// Registers household `n` in `grid`, its head born 1970-01-01 with a test ID number.
pub async fn register_household(
    identity: &mut IdentityServiceClient<Channel>,
    admin: &str,
    grid: &str,
    n: u32,
) -> jiaxin_proto::identity::Household {
    let head = jiaxin_proto::identity::NewResident {
        name: format!("户主{n}"),
        id_number: id_number("320830", "19700101", n),
        phone: String::new(),
    };
    let request = jiaxin_proto::identity::RegisterHouseholdRequest {
        grid_id: grid.into(),
        address: format!("{n}号"),
        head: Some(head),
        ..Default::default()
    };
    identity.register_household(authed(admin, request)).await.unwrap().into_inner().household.unwrap()
}

/// A paper pledge signed by `signer` and entered by a collector.
pub fn paper_pledge(household: &str, signer: &str, version: i32) -> jiaxin_proto::pledges::SignPledgeRequest {
    jiaxin_proto::pledges::SignPledgeRequest {
        household_id: household.into(),
        signer_resident_id: signer.into(),
        template_version: version,
        channel: jiaxin_proto::pledges::Channel::Paper as i32,
        scan_reference: format!("scan:{household}/v{version}.pdf"),
        ..Default::default()
    }
}

/// Publishes a village's template once pledges knows the village (identity's events arrive
/// asynchronously), bounded.
pub async fn publish_template(
    client: &mut jiaxin_proto::pledges::pledges_service_client::PledgesServiceClient<Channel>,
    token: &str,
    village: &str,
    requires_resign: bool,
) -> jiaxin_proto::pledges::Template {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match client.publish_template(authed(token, pledge_template(village, requires_resign))).await {
            Ok(response) => return response.into_inner().template.unwrap(),
            Err(status) if status.code() == tonic::Code::NotFound && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(status) => panic!("could not publish the template of {village}: {status:?}"),
        }
    }
}

/// The active signing key, read the way identity stores it (a white-box step so the test can
/// make tokens that differ from a good one in exactly one respect).
pub async fn signing_key(sys: &TestSystem) -> (String, ed25519_dalek::SigningKey) {
    let cipher = sys.field_cipher();
    let db = sys.database(ServiceName::Identity).await;
    let (kid, ct): (String, Vec<u8>) = sqlx::query_as("SELECT kid, private_key_ct FROM signing_keys WHERE active = 1")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let secret = cipher.decrypt("signing_keys.private_key", &ct).unwrap();
    let bytes: [u8; 32] = hex::decode(secret).unwrap().try_into().unwrap();
    (kid, ed25519_dalek::SigningKey::from_bytes(&bytes))
}

/// Every RPC of every jiaxin service that needs a token (`/package.Service/Method`), read from the
/// descriptors the server is built from: a test over them covers a new RPC the day it exists.
pub fn token_rpcs() -> Vec<String> {
    let public = jiaxin_identity::IdentityService::public_methods();
    jiaxin_rpcs().into_iter().map(|(rpc, _)| rpc).filter(|rpc| !public.contains(rpc)).collect()
}

/// Every RPC of jiaxin's services whose request is a client stream.
pub fn client_streaming_rpcs() -> Vec<String> {
    jiaxin_rpcs().into_iter().filter(|(_, method)| method.client_streaming()).map(|(rpc, _)| rpc).collect()
}

/// Every RPC of every jiaxin service, by path, with its descriptor.
fn jiaxin_rpcs() -> Vec<(String, prost_types::MethodDescriptorProto)> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(jiaxin_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut rpcs = Vec::new();
    for file in set.file.iter().filter(|f| f.package().starts_with("jiaxin.")) {
        for service in &file.service {
            for method in &service.method {
                rpcs.push((format!("/{}.{}/{}", file.package(), service.name(), method.name()), method.clone()));
            }
        }
    }
    rpcs
}

/// Bonuses a grid worker or village cadre records that need no review, with points inside each
/// rule's range and, per household, inside its yearly cap: (rule, points, times) — 29 records a
/// household. The crash tests stream them.
pub const BONUS_PLAN: [(&str, i64, usize); 5] =
    [("A01", 2, 6), ("A02", 3, 4), ("A04", 4, 5), ("B04", 5, 4), ("E02", 3, 10)];

/// The points [`BONUS_PLAN`] adds to each household.
pub fn bonus_plan_points() -> i64 {
    BONUS_PLAN.iter().map(|(_, points, times)| points * *times as i64).sum()
}

/// Every record of [`BONUS_PLAN`] for `households`, an hour ago, households interleaved so each
/// batch touches many of them; request ids are `{prefix}-{household index}-{rule}-{n}`.
pub fn bonus_records(prefix: &str, households: &[String]) -> Vec<jiaxin_proto::points::RecordInput> {
    let at = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 };
    let mut records = Vec::new();
    for (rule, points, times) in BONUS_PLAN {
        for n in 0..times {
            for (h, household) in households.iter().enumerate() {
                records.push(jiaxin_proto::points::RecordInput {
                    request_id: format!("{prefix}-{h}-{rule}-{n}"),
                    household_id: household.clone(),
                    rule_code: rule.into(),
                    points,
                    occurred_at: Some(at),
                    evidence: vec!["photo:1.jpg".into()],
                    ..Default::default()
                });
            }
        }
    }
    records
}

/// A local bonus rule (cleaning the river banks), with its provenance: a test's own, so edits
/// never touch what other tests of a shared cluster use.
pub fn river_cleaning_rule(code: &str, scope: &str, max: i64) -> jiaxin_proto::points::Rule {
    jiaxin_proto::points::Rule {
        code: code.into(),
        category: jiaxin_proto::points::Category::Environment as i32,
        name_zh: "参加河道保洁".into(),
        name_en: "Cleaning the river banks".into(),
        kind: jiaxin_proto::points::RuleKind::Bonus as i32,
        points_min: 2,
        points_max: max,
        yearly_cap: 30,
        recorders: vec!["grid_worker".into(), "village_cadre".into()],
        article: "村规民约第八条".into(),
        adopted_by: "村民代表会议".into(),
        adopted_on: "2026-06-01".into(),
        basis: "《盱眙县家庭信用积分管理办法(试行)》".into(),
        scope_org_node_id: scope.into(),
        ..Default::default()
    }
}
