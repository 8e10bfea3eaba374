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

    /// Connections in each service's PostgreSQL pool (SQLite uses 8).
    #[arg(long, env = "JIAXIN_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// PostgreSQL: each service keeps its tables in the schema `<prefix><service>`.
    #[arg(long, env = "JIAXIN_DATABASE_SCHEMA_PREFIX", default_value = "")]
    pub database_schema_prefix: String,

    /// Event bus: `inprocess` (embedded) or `kafka://host:port,host:port` (distributed).
    #[arg(long, env = "JIAXIN_BUS", default_value = "inprocess")]
    pub bus: String,

    /// Kafka brokers `host:port,host:port`: the same as `--bus kafka://host:port,…`.
    #[arg(long, env = "JIAXIN_KAFKA_BROKERS", conflicts_with = "bus")]
    pub kafka_brokers: Option<String>,

    /// Partitions of the topics this process creates (events are keyed by household).
    #[arg(long, env = "JIAXIN_KAFKA_PARTITIONS", default_value_t = 12)]
    pub kafka_partitions: i32,

    /// Replication factor of the topics this process creates (3 in production).
    #[arg(long, env = "JIAXIN_KAFKA_REPLICATION", default_value_t = 1)]
    pub kafka_replication: i32,

    /// Prefix for topic and consumer-group names, to share a cluster between deployments.
    #[arg(long, env = "JIAXIN_KAFKA_TOPIC_PREFIX", default_value = "")]
    pub kafka_topic_prefix: String,

    /// Where services that do not run in this process are: `identity=http://identity:50051`
    /// (repeatable, or comma-separated in the env var).
    #[arg(long = "peer", env = "JIAXIN_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// PEM certificate chain the gRPC server presents (TLS). With `--tls-key`; plaintext when
    /// neither is set (inside a private network or a service mesh).
    #[arg(long, env = "JIAXIN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "JIAXIN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s): when set, every gRPC client must present a certificate signed by
    /// one of them (mutual TLS).
    #[arg(long, env = "JIAXIN_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// PEM CA certificate(s) that `https://` peers' certificates are checked against; this
    /// process presents `--tls-cert`/`--tls-key` to them when set (for peers that require mTLS).
    #[arg(long, env = "JIAXIN_PEER_CA")]
    pub peer_ca: Option<PathBuf>,

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

    /// Seconds a bulk call (a streamed household import, whose length grows with the file) may
    /// take before it is cancelled.
    #[arg(long, env = "JIAXIN_BULK_REQUEST_TIMEOUT_SECS", default_value_t = 3600)]
    pub bulk_request_timeout_secs: u64,

    /// Requests served at once per connection; more are shed with RESOURCE_EXHAUSTED.
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
        if !crate::storage::valid_schema_name(&format!("{}x", self.database_schema_prefix)) {
            problems.push("--database-schema-prefix: use lowercase letters, digits and _".to_owned());
        }
        match self.bus_kind() {
            Ok(BusKind::Kafka { .. }) if !cfg!(feature = "kafka") => {
                problems.push("--bus kafka://…: this binary was built without the kafka feature".to_owned())
            }
            Ok(_) => {}
            Err(problem) => problems.push(problem),
        }
        if self.database_max_connections == 0 {
            problems.push("--database-max-connections must be at least 1".to_owned());
        }
        if self.kafka_partitions < 1 || self.kafka_replication < 1 {
            problems.push("--kafka-partitions and --kafka-replication must be at least 1".to_owned());
        }
        match self.peer_map() {
            Err(problem) => problems.push(problem),
            Ok(peers) => {
                if self.peer_ca.is_none() && peers.iter().any(|(_, url)| url.starts_with("https://")) {
                    problems.push(
                        "--peer …=https://…: give --peer-ca, the CA the peer's certificate is checked against"
                            .to_owned(),
                    );
                }
            }
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            problems.push("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)".to_owned());
        }
        if self.request_timeout_secs == 0 {
            problems.push("--request-timeout-secs must be at least 1".to_owned());
        }
        if self.bulk_request_timeout_secs < self.request_timeout_secs {
            problems.push("--bulk-request-timeout-secs must be at least --request-timeout-secs".to_owned());
        }
        if self.concurrency_limit == 0 {
            problems.push("--concurrency-limit must be at least 1".to_owned());
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push("--data-dir must not be empty".to_owned());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    pub fn bus_kind(&self) -> Result<BusKind, String> {
        if let Some(brokers) = &self.kafka_brokers {
            let brokers = brokers.trim();
            return if brokers.is_empty() {
                Err("--kafka-brokers needs at least one host:port".to_owned())
            } else {
                Ok(BusKind::Kafka { brokers: brokers.to_owned() })
            };
        }
        let bus = self.bus.trim();
        if bus == "inprocess" {
            return Ok(BusKind::InProcess);
        }
        match bus.strip_prefix("kafka://") {
            Some(brokers) if !brokers.trim_matches('/').is_empty() => {
                Ok(BusKind::Kafka { brokers: brokers.trim_matches('/').to_owned() })
            }
            Some(_) => Err("--bus kafka://… needs at least one host:port".to_owned()),
            None => Err(format!("--bus must be 'inprocess' or 'kafka://host:port,…', not '{bus}'")),
        }
    }

    /// `--peer name=url` pairs.
    pub fn peer_map(&self) -> Result<Vec<(String, String)>, String> {
        self.peers
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|peer| match peer.split_once('=') {
                Some((name, url))
                    if !name.is_empty() && (url.starts_with("http://") || url.starts_with("https://")) =>
                {
                    Ok((name.trim().to_owned(), url.trim().to_owned()))
                }
                _ => Err(format!("--peer '{peer}': expected name=http://host:port")),
            })
            .collect()
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn bulk_request_timeout(&self) -> Duration {
        Duration::from_secs(self.bulk_request_timeout_secs)
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

/// Which bus a process uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusKind {
    InProcess,
    Kafka { brokers: String },
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        common: CommonConfig,
    }

    fn parse(args: &[&str]) -> CommonConfig {
        let mut argv = vec!["jiaxin"];
        argv.extend_from_slice(args);
        Flags::try_parse_from(argv).map(|f| f.common).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults_are_valid_and_embedded() {
        let config = parse(&[]);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.bus_kind(), Ok(BusKind::InProcess));
    }

    #[test]
    fn every_bad_setting_is_named() {
        let config = parse(&[
            "--database-url",
            "mysql://x",
            "--field-key",
            "c2hvcnQ=",
            "--bus",
            "rabbit://x",
            "--peer",
            "identity",
            "--request-timeout-secs",
            "0",
            "--database-schema-prefix",
            "Bad-",
        ]);
        let problems = config.validate().unwrap_err().join("\n");
        for flag in
            ["--database-url", "--field-key", "--bus", "--peer", "--request-timeout-secs", "--database-schema-prefix"]
        {
            assert!(problems.contains(flag), "{flag} missing from: {problems}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let config = parse(&[
            "--field-key",
            "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXkh",
            "--database-url",
            "postgres://u:hunter2@db/x",
        ]);
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("c2VjcmV0"), "{shown}");
    }

    #[test]
    fn kafka_urls_and_peers_parse() {
        let config = parse(&["--bus", "kafka://b1:9092,b2:9092", "--peer", "identity=http://identity:50051"]);
        assert_eq!(config.bus_kind(), Ok(BusKind::Kafka { brokers: "b1:9092,b2:9092".into() }));
        assert_eq!(config.peer_map(), Ok(vec![("identity".into(), "http://identity:50051".into())]));
    }
}
