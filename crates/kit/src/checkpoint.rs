//! WAL checkpoints for a SQLite database, off the commit path.
//!
//! By default SQLite checkpoints inside the commit that takes the write-ahead log past 1,000
//! pages: that one commit copies the log into the database file and syncs it, and every request
//! waiting for the write lock waits for it too (measured on credit reports: a tenth of the
//! throughput and most of the tail). Connections here turn that off (`wal_autocheckpoint = 0`)
//! and this task checkpoints instead, a few times a second, beside the writers: a checkpoint
//! takes its own lock, not the write lock. PASSIVE: it copies what no reader still needs and
//! never waits for one.

use std::time::Duration;

use sqlx::AnyPool;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How often the log is checkpointed. At the highest write rates measured here a tenth of a
/// second of log is about as many pages as SQLite's own threshold.
const PERIOD: Duration = Duration::from_millis(100);

/// Starts checkpointing `pool`'s database on the current tokio runtime; it stops when the guard
/// is dropped or the pool is closed.
pub(crate) fn start(pool: AnyPool) -> DropGuard {
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = tick.tick() => {}
            }
            if pool.is_closed() {
                break;
            }
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                Ok(_) => {}
                Err(sqlx::Error::PoolClosed) => break,
                Err(error) => tracing::warn!(%error, "WAL checkpoint failed; retrying at the next tick"),
            }
        }
    });
    stop.drop_guard()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::storage::{Database, DatabaseLocation};

    /// With SQLite's own checkpoints off, only the checkpointer moves committed pages from the
    /// log into the database file.
    #[tokio::test]
    async fn committed_pages_reach_the_database_file_without_a_commit_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(&DatabaseLocation::sqlite_in(dir.path(), "pages").unwrap()).await.unwrap();
        sqlx::query("CREATE TABLE pages (n BIGINT PRIMARY KEY, body TEXT NOT NULL)").execute(db.pool()).await.unwrap();
        let file = dir.path().join("pages.db");
        let before = std::fs::metadata(&file).unwrap().len();
        for n in 0..200_i64 {
            sqlx::query("INSERT INTO pages (n, body) VALUES ($1, $2)")
                .bind(n)
                .bind("页".repeat(10_000))
                .execute(db.pool())
                .await
                .unwrap();
        }
        let bound = Instant::now() + std::time::Duration::from_secs(30);
        let mut size = before;
        while size < before + 5_000_000 && Instant::now() < bound {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            size = std::fs::metadata(&file).unwrap().len();
        }
        assert!(size >= before + 5_000_000, "6 MB committed, the database file grew from {before} to {size} bytes");
    }
}
