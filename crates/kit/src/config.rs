//! Settings every service process shares. Every flag has a `JIAXIN_…` environment variable, and
//! [`CommonConfig::validate`] runs before any port is bound or file written.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::{crypto::FieldCipher, secret::Secret, storage::Dialect, telemetry::LogFormat};

#[derive(Debug, Clone, clap::Args)]
pub struct CommonConfig {
    /// Address the gRPC server listens on.
    #[arg(long, env = "JIAXIN_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    pub grpc_listen: SocketAddr,

    /// Address of the admin HTTP server (Prometheus /metrics, /healthz).
    #[arg(long, env = "JIAXIN_ADMIN_LISTEN", default_value = "127.0.0.1:9464")]
    pub admin_listen: SocketAddr,

    /// Directory for the embedded SQLite files and the generated field key.
    #[arg(long, env = "JIAXIN_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL (`sqlite://…` or `postgres://…`); by default one SQLite file per service
    /// under the data directory.
    #[arg(long, env = "JIAXIN_DATABASE_URL")]
    pub database_url: Option<Secret<String>>,

    /// 32-byte key (base64) that encrypts ID and phone numbers. Embedded mode generates one into
    /// the data directory on first run when this is not set.
    #[arg(long, env = "JIAXIN_FIELD_KEY")]
    pub field_key: Option<Secret<String>>,

    /// Log format.
    #[arg(long, env = "JIAXIN_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// OTLP gRPC endpoint for traces (e.g. http://otel-collector:4317); none when unset.
    #[arg(long, env = "JIAXIN_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Seconds a request may take before it is cancelled.
    #[arg(long, env = "JIAXIN_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Requests served at once per connection; more are shed with UNAVAILABLE.
    #[arg(long, env = "JIAXIN_CONCURRENCY_LIMIT", default_value_t = 256)]
    pub concurrency_limit: usize,

    /// Seconds a shutdown waits for requests and the outbox to drain.
    #[arg(long, env = "JIAXIN_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
}

impl CommonConfig {
    /// Every problem with the settings, each naming its flag.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.grpc_listen == self.admin_listen && self.grpc_listen.port() != 0 {
            problems.push("--grpc-listen and --admin-listen must differ".to_owned());
        }
        if let Some(url) = &self.database_url
            && let Err(error) = Dialect::from_url(url.expose())
        {
            problems.push(format!("--database-url: {error}"));
        }
        if let Some(key) = &self.field_key
            && let Err(error) = FieldCipher::from_base64(key)
        {
            problems.push(format!("--field-key: {error}"));
        }
        if self.request_timeout_secs == 0 {
            problems.push("--request-timeout-secs must be at least 1".to_owned());
        }
        if self.concurrency_limit == 0 {
            problems.push("--concurrency-limit must be at least 1".to_owned());
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push("--data-dir must not be empty".to_owned());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The field cipher: the configured key, or the data directory's generated one.
    pub fn field_cipher(&self) -> Result<FieldCipher, crate::crypto::CryptoError> {
        match &self.field_key {
            Some(key) => FieldCipher::from_base64(key),
            None => FieldCipher::load_or_create(&self.data_dir.join("field.key")),
        }
    }
}
