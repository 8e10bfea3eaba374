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
    _temp: tempfile::TempDir,
}

impl TestSystem {
    pub async fn start() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        // Parse like the command line does, so the tests use the real defaults.
        let flags = Flags::parse_from([
            "test",
            "--grpc-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--bootstrap-admin-password",
            ADMIN_PASSWORD,
        ]);
        let running = system::start(SystemConfig {
            common: flags.common,
            identity: flags.identity,
            services: vec![],
        })
        .await
        .unwrap();
        Self {
            running: Some(running),
            data_dir,
            _temp: temp,
        }
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
            .login(LoginRequest {
                username: username.into(),
                password: password.into(),
            })
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
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
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
