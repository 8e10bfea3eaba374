//! The identity service: the org tree (province › … › grid), households and residents with
//! their membership history, accounts with roles and org scope, login, and the keys every
//! service verifies tokens with.
//!
//! Reading order: [`api`] (gRPC, thin) › `ops` (one transaction per operation) › [`domain`]
//! (rules, no I/O) › `store` (SQL) › `import` (CSV onboarding) › `keys` (signing keys).

pub mod api;
mod convert;
pub mod domain;
mod error;
mod import;
#[cfg(feature = "fuzzing")]
pub use import::fuzzing;
mod keys;
mod ops;
mod store;

use std::sync::Arc;

use jiaxin_kit::{
    Secret,
    auth::KeySource,
    crypto::FieldCipher,
    outbox::Outbox,
    storage::{Database, Migrations},
};
use jiaxin_proto::identity::{OrgNodeKind, identity_service_server::IdentityServiceServer};
use sqlx::migrate::Migrator;

pub use error::IdentityError;
pub use import::parse_relation;
pub use ops::{Bootstrap, Settings};

/// The service's name: its database, its topic `jiaxin.identity.v1`, its `--service` value.
pub const SERVICE: &str = "identity";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

pub static MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: Some(&POSTGRES_MIGRATIONS) };

const GRPC_SERVICE: &str = "jiaxin.identity.v1.IdentityService";

/// Identity's own settings, flattened into the `jiaxin serve` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityConfig {
    /// Minutes an access token is valid.
    #[arg(long, env = "JIAXIN_ACCESS_TOKEN_MINUTES", default_value_t = 15)]
    pub access_token_minutes: i64,
    /// Days a refresh token is valid.
    #[arg(long, env = "JIAXIN_REFRESH_TOKEN_DAYS", default_value_t = 30)]
    pub refresh_token_days: i64,
    /// Failed logins in a row that lock an account.
    #[arg(long, env = "JIAXIN_MAX_FAILED_LOGINS", default_value_t = 5)]
    pub max_failed_logins: i64,
    /// Minutes a locked account stays locked.
    #[arg(long, env = "JIAXIN_LOCKOUT_MINUTES", default_value_t = 15)]
    pub lockout_minutes: i64,
    /// Name of the root org node created on first start.
    #[arg(long, env = "JIAXIN_BOOTSTRAP_ORG_NAME", default_value = "盱眙县")]
    pub bootstrap_org_name: String,
    /// Kind of the root org node: county, city or province.
    #[arg(long, env = "JIAXIN_BOOTSTRAP_ORG_KIND", default_value = "county", value_parser = ["county", "city", "province"])]
    pub bootstrap_org_kind: String,
    /// Administrative division code of the root node.
    #[arg(long, env = "JIAXIN_BOOTSTRAP_ORG_CODE", default_value = "320830")]
    pub bootstrap_org_code: String,
    /// Username of the admin account created on first start.
    #[arg(long, env = "JIAXIN_BOOTSTRAP_ADMIN_USERNAME", default_value = "admin")]
    pub bootstrap_admin_username: String,
    /// Password of that admin account; generated and printed once when unset.
    #[arg(long, env = "JIAXIN_BOOTSTRAP_ADMIN_PASSWORD")]
    pub bootstrap_admin_password: Option<Secret<String>>,
}

impl IdentityConfig {
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (flag, value) in [
            ("--access-token-minutes", self.access_token_minutes),
            ("--refresh-token-days", self.refresh_token_days),
            ("--max-failed-logins", self.max_failed_logins),
            ("--lockout-minutes", self.lockout_minutes),
        ] {
            if value < 1 {
                problems.push(format!("{flag} must be at least 1"));
            }
        }
        if self.bootstrap_org_name.trim().is_empty() {
            problems.push("--bootstrap-org-name must not be empty".into());
        }
        if let Some(p) = &self.bootstrap_admin_password
            && p.expose().chars().count() < 10
        {
            problems.push("--bootstrap-admin-password must have at least 10 characters".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    fn settings(&self) -> Settings {
        Settings {
            access_token_ttl_secs: self.access_token_minutes * 60,
            refresh_token_ttl_secs: self.refresh_token_days * 24 * 3600,
            max_failed_logins: self.max_failed_logins,
            lockout_secs: self.lockout_minutes * 60,
        }
    }

    fn bootstrap(&self) -> Bootstrap {
        Bootstrap {
            org_name: self.bootstrap_org_name.trim().to_owned(),
            org_kind: match self.bootstrap_org_kind.as_str() {
                "province" => OrgNodeKind::Province,
                "city" => OrgNodeKind::City,
                _ => OrgNodeKind::County,
            },
            org_code: self.bootstrap_org_code.clone(),
            admin_username: self.bootstrap_admin_username.clone(),
            admin_password: self.bootstrap_admin_password.as_ref().map(|p| p.expose().clone()),
        }
    }
}

/// A started identity service.
pub struct IdentityService {
    identity: Arc<ops::Identity>,
    keys: Arc<keys::Keys>,
    outbox: Outbox,
    /// The admin password generated on this first start, to show once.
    pub generated_admin_password: Option<String>,
}

impl IdentityService {
    /// Starts on a migrated database: makes sure a signing key exists and bootstraps the root
    /// node and admin on an empty database.
    pub async fn start(db: Database, cipher: FieldCipher, config: &IdentityConfig) -> Result<Self, IdentityError> {
        let outbox = Outbox::new(SERVICE);
        let keys = Arc::new(keys::Keys::new(db.clone(), cipher.clone()));
        keys.ensure_active().await?;
        let identity = Arc::new(ops::Identity::new(db, cipher, outbox.clone(), keys.clone(), config.settings()));
        let generated_admin_password = identity.bootstrap(&config.bootstrap()).await?;
        Ok(Self { identity, keys, outbox, generated_admin_password })
    }

    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// The public keys, for verifiers in this process.
    pub fn key_source(&self) -> Arc<dyn KeySource> {
        Arc::new(keys::LocalKeySource(self.keys.clone()))
    }

    pub fn grpc_service(&self) -> IdentityServiceServer<api::IdentityApi> {
        IdentityServiceServer::new(api::IdentityApi::new(self.identity.clone()))
    }

    /// The full gRPC name, for health reporting.
    pub fn grpc_name() -> &'static str {
        GRPC_SERVICE
    }

    /// RPCs callable without a token.
    pub fn public_methods() -> Vec<String> {
        ["Login", "RefreshToken", "Logout", "GetPublicKeys"].iter().map(|m| format!("/{GRPC_SERVICE}/{m}")).collect()
    }
}
