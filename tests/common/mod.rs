//! Boots the system the way `jiaxin serve` does, on ephemeral ports and a temporary data
//! directory, and hands out gRPC clients.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, str::FromStr};

use clap::Parser;
use jiaxin::system::{self, RunningSystem, SystemConfig};
use jiaxin_identity::IdentityConfig;
use jiaxin_kit::config::CommonConfig;
use jiaxin_proto::identity::{LoginRequest, identity_service_client::IdentityServiceClient};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

pub const ADMIN_PASSWORD: &str = "admin-password-1";

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    common: CommonConfig,
    #[command(flatten)]
    identity: IdentityConfig,
}

pub struct TestSystem {
    pub running: Option<RunningSystem>,
    pub data_dir: PathBuf,
    pub config: SystemConfig,
    _temp: tempfile::TempDir,
}

/// Whether this run is the distributed suite (PostgreSQL and a Kafka-protocol broker, given by
/// `JIAXIN_TEST_DATABASE_URL` and `JIAXIN_TEST_BUS`) rather than embedded.
pub fn distributed() -> bool {
    std::env::var("JIAXIN_TEST_DATABASE_URL").is_ok()
}

impl TestSystem {
    pub async fn start() -> Self {
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
        // Each system gets its own namespace on the shared servers: a schema per service and a
        // topic prefix.
        let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
        if let Ok(url) = std::env::var("JIAXIN_TEST_DATABASE_URL") {
            args.extend(["--database-url".into(), url, "--database-schema-prefix".into(), format!("{namespace}_")]);
        }
        if let Ok(bus) = std::env::var("JIAXIN_TEST_BUS") {
            args.extend([
                "--bus".into(),
                bus,
                "--kafka-topic-prefix".into(),
                format!("{namespace}."),
                "--kafka-partitions".into(),
                "3".into(),
            ]);
        }
        let flags = Flags::parse_from(args);
        let config = SystemConfig { common: flags.common, identity: flags.identity, services: vec![] };
        let running = system::start(config.clone()).await.unwrap();
        Self { running: Some(running), data_dir, config, _temp: temp }
    }

    /// A service's database, opened the way the system opens it.
    pub async fn database(&self, service: system::ServiceName) -> jiaxin_kit::storage::Database {
        jiaxin_kit::storage::Database::connect(&self.config.location(service).unwrap()).await.unwrap()
    }

    pub fn addr(&self) -> String {
        format!("http://{}", self.running.as_ref().unwrap().grpc_addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.addr()).unwrap().connect().await.unwrap()
    }

    pub async fn identity(&self) -> IdentityServiceClient<Channel> {
        IdentityServiceClient::new(self.channel().await)
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        self.identity()
            .await
            .login(LoginRequest { username: username.into(), password: password.into() })
            .await
            .unwrap()
            .into_inner()
            .access_token
    }

    pub async fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
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

/// A valid synthetic ID number: 17 digits and their check character.
pub fn id_number(region: &str, birth: &str, seq: u32) -> String {
    let first17 = format!("{region}{birth}{seq:03}");
    assert_eq!(first17.len(), 17);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.bytes().zip(weights).map(|(d, w)| u32::from(d - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{first17}{check}")
}

/// The gRPC status code of a failed call.
pub fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> tonic::Code {
    result.expect_err("call should fail").code()
}

/// Creates an org node and returns its id.
pub async fn create_node(
    client: &mut jiaxin_proto::identity::identity_service_client::IdentityServiceClient<Channel>,
    token: &str,
    parent: &str,
    kind: jiaxin_proto::identity::OrgNodeKind,
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

/// The caller's scope node (for the bootstrap admin: the county).
pub async fn own_scope(
    client: &mut jiaxin_proto::identity::identity_service_client::IdentityServiceClient<Channel>,
    token: &str,
) -> String {
    let request = jiaxin_proto::identity::GetCurrentAccountRequest {};
    client.get_current_account(authed(token, request)).await.unwrap().into_inner().account.unwrap().org_node_id
}

/// town › village › grid under the caller's scope; returns the grid's id.
pub async fn grid_under_scope(
    client: &mut jiaxin_proto::identity::identity_service_client::IdentityServiceClient<Channel>,
    token: &str,
    grid_code: &str,
) -> String {
    use jiaxin_proto::identity::OrgNodeKind;
    let root = own_scope(client, token).await;
    let town = create_node(client, token, &root, OrgNodeKind::Town, "马坝镇", "").await;
    let village = create_node(client, token, &town, OrgNodeKind::Village, "新街村", "").await;
    create_node(client, token, &village, OrgNodeKind::Grid, "第一网格", grid_code).await
}
