//! Storage: one database per service, chosen by URL scheme, with the service's migrations and the
//! kit's own tables (outbox, inbox, dead letters) applied together on start.
//!
//! Stores use sqlx's `Any` driver so one SQL text serves SQLite and PostgreSQL: the SQL stays in
//! the common subset (`$1` placeholders, `ON CONFLICT`, `RETURNING`, BIGINT micros for time, and
//! integers rather than booleans), and the two dialects differ only in their migration files.

use std::{borrow::Cow, path::Path, str::FromStr, sync::Once, time::Duration};

use sqlx::{
    AnyPool, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};

use crate::secret::Secret;

/// A transaction on a service's database.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

static KIT_SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static KIT_POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database url scheme '{0}' is not supported; use sqlite:// or postgres://")]
    UnsupportedScheme(String),
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
}

impl DatabaseLocation {
    /// The embedded default: one SQLite file per service under the data directory.
    pub fn sqlite_in(data_dir: &Path, service: &str) -> Result<Self, StorageError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StorageError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let file = data_dir.join(format!("{service}.db"));
        Ok(Self {
            url: Secret::new(format!("sqlite://{}?mode=rwc", file.display())),
            max_connections: 8,
        })
    }
}

/// A service's database: a pool plus the dialect, so stores can pick the right transaction start.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

fn install_drivers() {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
}

impl Database {
    pub async fn connect(location: &DatabaseLocation) -> Result<Self, StorageError> {
        install_drivers();
        let dialect = Dialect::from_url(location.url.expose())?;
        let options = AnyConnectOptions::from_str(location.url.expose())?;
        let pool = AnyPoolOptions::new()
            .max_connections(location.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers run beside the one writer; busy_timeout makes a second
                        // writer wait instead of failing; NORMAL sync is durable in WAL mode
                        // against process death (only power loss can drop the last commits).
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, dialect })
    }

    /// Applies the kit's tables and the service's own migrations, in version order.
    pub async fn migrate(&self, service: &str, migrations: &Migrations) -> Result<(), StorageError> {
        let (kit, own) = match self.dialect {
            Dialect::Sqlite => (&KIT_SQLITE_MIGRATIONS, migrations.sqlite),
            Dialect::Postgres => (
                &KIT_POSTGRES_MIGRATIONS,
                migrations
                    .postgres
                    .ok_or_else(|| StorageError::NoMigrations(service.to_owned(), self.dialect))?,
            ),
        };
        let mut all: Vec<_> = kit.iter().chain(own.iter()).cloned().collect();
        all.sort_by_key(|m| m.version);
        let merged = Migrator {
            migrations: Cow::Owned(all),
            ..Migrator::DEFAULT
        };
        merged.run(&self.pool).await?;
        Ok(())
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
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    /// Starts a read-only transaction: a consistent snapshot that takes no write lock.
    pub async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
