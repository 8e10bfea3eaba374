//! What a database tells about its own schema without being changed: the check read-only commands
//! (`jiaxin recompute-scores`) make before they read a county.
//!
//! On SQLite by default, and on PostgreSQL when `JIAXIN_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use jiaxin_kit::{
    Secret,
    storage::{Database, DatabaseLocation, Migrations},
};
use sqlx::migrate::Migrator;

static SQLITE: Migrator = sqlx::migrate!("./tests/migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./tests/migrations/postgres");
static MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE, postgres: Some(&POSTGRES) };

async fn fresh_database(dir: &tempfile::TempDir) -> Database {
    let location = match std::env::var("JIAXIN_TEST_DATABASE_URL") {
        Ok(url) => {
            let namespace = format!("t{}_", uuid::Uuid::new_v4().simple());
            DatabaseLocation::shared(Secret::new(url), &namespace, "storage")
        }
        Err(_) => DatabaseLocation::sqlite_in(dir.path(), "storage").unwrap(),
    };
    Database::connect(&location).await.unwrap()
}

async fn applied_versions(db: &Database) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version").fetch_all(db.pool()).await.unwrap()
}

#[tokio::test]
async fn pending_migrations_names_every_version_a_database_lacks_and_applies_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(&dir).await;

    assert_eq!(db.applied_migrations().await.unwrap(), Vec::<i64>::new());
    let before = db.pending_migrations("storage", &MIGRATIONS).await.unwrap();
    assert_eq!(db.pending_migrations("storage", &MIGRATIONS).await.unwrap(), before, "asking twice changes nothing");
    assert!(before.contains(&20260101000001), "the service's own migration is pending: {before:?}");
    for table in ["_sqlx_migrations", "applied"] {
        let probe = format!("SELECT COUNT(*) FROM {table}");
        assert!(sqlx::query(&probe).fetch_one(db.pool()).await.is_err(), "{table} was created by asking");
    }

    db.migrate("storage", &MIGRATIONS).await.unwrap();
    assert_eq!(applied_versions(&db).await, before, "what was pending is exactly what migrating applied");
    assert_eq!(db.applied_migrations().await.unwrap(), before);
    assert_eq!(db.pending_migrations("storage", &MIGRATIONS).await.unwrap(), Vec::<i64>::new());
}
