//! Storage: one database per service, chosen by URL scheme, with the service's migrations and the
//! kit's own tables (outbox, inbox, dead letters) applied together on start.
//!
//! Stores use sqlx's `Any` driver so one SQL text serves SQLite and PostgreSQL: the SQL stays in
//! the common subset (`$1` placeholders, `ON CONFLICT`, `RETURNING`, BIGINT micros for time, and
//! integers rather than booleans), and the two dialects differ only in their migration files.

use std::{
    borrow::Cow,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, Once},
    time::Duration,
};

use sqlx::{
    AnyPool, Connection, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};

use tokio_util::sync::DropGuard;

use crate::{checkpoint, secret::Secret};

/// A transaction on a service's database.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

static KIT_SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static KIT_POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database url scheme '{0}' is not supported; use sqlite:// or postgres://")]
    UnsupportedScheme(String),
    #[error("schema name '{0}' is invalid: use lowercase letters, digits and _")]
    SchemaName(String),
    #[error("service '{0}' has no migrations for {1}")]
    NoMigrations(String, Dialect),
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        })
    }
}

impl Dialect {
    /// The dialect of an open connection (sqlx's `Any` names its backend).
    pub fn of(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") { Dialect::Sqlite } else { Dialect::Postgres }
    }

    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or(url);
        match scheme {
            "sqlite" => Ok(Dialect::Sqlite),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            other => Err(StorageError::UnsupportedScheme(other.to_owned())),
        }
    }
}

/// A service's migrations, one set per dialect (each embedded with `sqlx::migrate!`).
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: Option<&'static Migrator>,
}

/// Where a service's database lives.
#[derive(Debug, Clone)]
pub struct DatabaseLocation {
    pub url: Secret<String>,
    /// Connections in the pool.
    pub max_connections: u32,
    /// PostgreSQL: the schema that holds this service's tables (created if missing), so services
    /// can share one database and still own their data. Ignored for SQLite (a file each).
    pub schema: Option<String>,
}

impl DatabaseLocation {
    /// A service's place in a shared database URL: its own schema, `<prefix><service>`.
    pub fn shared(url: Secret<String>, schema_prefix: &str, service: &str) -> Self {
        Self { url, max_connections: 16, schema: Some(format!("{schema_prefix}{service}")) }
    }
}

/// Schema names are spliced into SQL (identifiers cannot be bound), so only a safe alphabet.
pub fn valid_schema_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

impl DatabaseLocation {
    /// The embedded default: one SQLite file per service under the data directory.
    pub fn sqlite_in(data_dir: &Path, service: &str) -> Result<Self, StorageError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StorageError::DataDir { path: data_dir.display().to_string(), source })?;
        let file = Self::sqlite_file(data_dir, service);
        Ok(Self { url: Secret::new(format!("sqlite://{}?mode=rwc", file.display())), max_connections: 8, schema: None })
    }

    /// The file [`DatabaseLocation::sqlite_in`] opens for a service.
    pub fn sqlite_file(data_dir: &Path, service: &str) -> PathBuf {
        data_dir.join(format!("{service}.db"))
    }
}

/// A service's database: a pool plus the dialect, so stores can pick the right transaction start.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite: stops the WAL checkpointer when the last clone is dropped.
    _checkpointer: Option<Arc<DropGuard>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

fn install_drivers() {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
}

impl Database {
    /// Connects, retrying while the server is not reachable yet (a pod may start before its
    /// database), and on PostgreSQL creates and selects the service's schema.
    pub async fn connect(location: &DatabaseLocation) -> Result<Self, StorageError> {
        install_drivers();
        let dialect = Dialect::from_url(location.url.expose())?;
        let options = AnyConnectOptions::from_str(location.url.expose())?;
        let schema = match (dialect, &location.schema) {
            (Dialect::Postgres, Some(schema)) => {
                if !valid_schema_name(schema) {
                    return Err(StorageError::SchemaName(schema.clone()));
                }
                Some(schema.clone())
            }
            _ => None,
        };
        let mut attempt = 0u32;
        loop {
            match Self::try_connect(dialect, &options, location.max_connections, schema.clone()).await {
                Ok(pool) => {
                    let checkpointer = (dialect == Dialect::Sqlite).then(|| Arc::new(checkpoint::start(pool.clone())));
                    return Ok(Self { pool, dialect, _checkpointer: checkpointer });
                }
                Err(error) if is_transient(&error) && attempt < 10 => {
                    attempt += 1;
                    tracing::warn!(%error, attempt, "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    async fn try_connect(
        dialect: Dialect,
        options: &AnyConnectOptions,
        max_connections: u32,
        schema: Option<String>,
    ) -> Result<AnyPool, sqlx::Error> {
        if let Some(schema) = &schema {
            let mut conn = sqlx::AnyConnection::connect_with(options).await?;
            // Two replicas may race here; IF NOT EXISTS can still fail on the catalog's unique
            // index, so a failure is retried once the other has won.
            if let Err(error) = conn.execute(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"").as_str()).await {
                tracing::debug!(%error, "create schema raced; continuing");
            }
            conn.close().await?;
        }
        AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            // Short: during a database outage a request should answer UNAVAILABLE well inside a
            // client deadline rather than wait for a connection.
            .acquire_timeout(Duration::from_secs(5))
            // A ping before every use guards against a network connection that died while idle;
            // a SQLite file does not, and the ping is a round trip to the connection's thread
            // on every acquire.
            .test_before_acquire(dialect == Dialect::Postgres)
            .after_connect(move |conn, _meta| {
                let schema = schema.clone();
                Box::pin(async move {
                    match dialect {
                        Dialect::Sqlite => {
                            // WAL lets readers run beside the one writer; busy_timeout makes a
                            // second writer wait instead of failing; NORMAL sync is durable in
                            // WAL mode against process death (power loss can drop the last
                            // commits).
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            // No memory map (SQLite's default, said aloud). In WAL mode a
                            // connection that finds the WAL changed since its last read drops
                            // its whole map and faults the pages in again: with a commit every
                            // few milliseconds that was a munmap and mmap per read (60,000 in a
                            // 20,000-household bank benchmark, TLB shootdowns on both cores) and
                            // cost a third of the credit reports' throughput (docs/benchmarks.md).
                            conn.execute("PRAGMA mmap_size = 0").await?;
                            // Checkpoints are the checkpointer task's, not a commit's.
                            conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                        }
                        Dialect::Postgres => {
                            if let Some(schema) = schema {
                                conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await?;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
    }

    /// Applies the kit's tables and the service's own migrations, in version order.
    pub async fn migrate(&self, service: &str, migrations: &Migrations) -> Result<(), StorageError> {
        self.merged_migrations(service, migrations)?.run(&self.pool).await?;
        Ok(())
    }

    /// The versions of the kit's and the service's migrations this database has not applied
    /// (all of them on a database never started). Reads only: for commands that must not change
    /// a database they find behind this binary's schema.
    pub async fn pending_migrations(&self, service: &str, migrations: &Migrations) -> Result<Vec<i64>, StorageError> {
        let expected = self.merged_migrations(service, migrations)?;
        let applied = self.applied_migrations().await?;
        Ok(expected.iter().map(|m| m.version).filter(|version| !applied.contains(version)).collect())
    }

    /// The versions of the migrations applied to this database, none on one never migrated.
    /// Reads only.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StorageError> {
        let table_exists = match self.dialect {
            Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        if sqlx::query_scalar::<_, i64>(table_exists).fetch_one(&self.pool).await? == 0 {
            return Ok(Vec::new());
        }
        // `success` is a boolean on PostgreSQL and an integer on SQLite; both read as a condition.
        let sql = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        Ok(sqlx::query_scalar(sql).fetch_all(&self.pool).await?)
    }

    /// The kit's and the service's migrations for this dialect, as one set in version order.
    fn merged_migrations(&self, service: &str, migrations: &Migrations) -> Result<Migrator, StorageError> {
        let (kit, own) = match self.dialect {
            Dialect::Sqlite => (&KIT_SQLITE_MIGRATIONS, migrations.sqlite),
            Dialect::Postgres => (
                &KIT_POSTGRES_MIGRATIONS,
                migrations.postgres.ok_or_else(|| StorageError::NoMigrations(service.to_owned(), self.dialect))?,
            ),
        };
        let mut all: Vec<_> = kit.iter().chain(own.iter()).cloned().collect();
        all.sort_by_key(|m| m.version);
        Ok(Migrator { migrations: Cow::Owned(all), ..Migrator::DEFAULT })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Starts a read-write transaction.
    ///
    /// On SQLite the write lock is taken at `BEGIN` (IMMEDIATE): a deferred transaction that reads
    /// first and then writes fails with SQLITE_BUSY when another writer committed in between,
    /// whatever the busy timeout; taking the lock up front makes it wait instead.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin_with(self.write_begin()).await
    }

    /// Starts a read-write transaction, as [`Database::begin`] does, on a connection the caller
    /// holds (a writer that keeps one of its own).
    pub async fn begin_on<'c>(
        &self,
        conn: &'c mut sqlx::AnyConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Any>, sqlx::Error> {
        conn.begin_with(self.write_begin()).await
    }

    /// The statement a read-write transaction starts with (PostgreSQL's is what sqlx sends).
    fn write_begin(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// Starts a read-only transaction: a consistent snapshot that takes no write lock.
    ///
    /// PostgreSQL's default isolation (read committed) takes a new snapshot for every statement,
    /// so two reads could straddle a commit (a log's head newer than the entries read before it);
    /// repeatable read keeps the first statement's snapshot, and read-only transactions at that
    /// level never fail to serialise. SQLite's read transaction is a snapshot already (WAL).
    pub async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin().await,
            Dialect::Postgres => self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await,
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Errors worth retrying: the server is down, restarting, or out of connections.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // 57P01 admin shutdown, 57P03 cannot connect now, 53300 too many connections,
        // 08xxx connection exceptions, 40001 serialization failure, 40P01 deadlock.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01") || code.starts_with("08")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_a_safe_alphabet() {
        assert!(valid_schema_name("identity"));
        assert!(valid_schema_name("t_01ab_identity"));
        assert!(!valid_schema_name("Identity"));
        assert!(!valid_schema_name("a\"; DROP TABLE x; --"));
        assert!(!valid_schema_name("1abc"));
        assert!(!valid_schema_name(""));
    }

    #[test]
    fn unknown_schemes_are_named_in_the_error() {
        let error = Dialect::from_url("mysql://localhost/x").unwrap_err();
        assert_eq!(error.to_string(), "database url scheme 'mysql' is not supported; use sqlite:// or postgres://");
    }
}
