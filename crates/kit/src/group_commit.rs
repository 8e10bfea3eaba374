//! Group commit: many requests' small writes in one transaction.
//!
//! An answer that must be written before it is given (a credit report's query record and audit
//! entry) costs a write transaction of its own: on SQLite every such transaction waits for the
//! one file lock by sleeping in the busy handler, so under load the queue is unfair and the tail
//! is the busy handler's nap; on PostgreSQL each is a commit and a turn on the audit chain's head
//! row. Here the requests hand their writes to one writer task instead, which takes whatever has
//! queued up since its last commit (up to [`MAX_BATCH`]), writes it all in one transaction, and
//! answers each request once that commits. Under light load a batch is one item and costs what a
//! transaction of its own did; under heavy load the cost of a commit is shared.
//!
//! Nothing is answered before the commit: a request whose batch fails gets the error, and a
//! request whose item the writer refuses (its state changed since it was read) gets that item's
//! own answer while the rest of the batch commits. A writer that panics fails its batch the same
//! way (the transaction is dropped, so rolled back) and the writer carries on: one bad batch must
//! not leave the service answering "stopped" to every request after it.

use std::{future::Future, panic::AssertUnwindSafe, sync::Arc, time::Instant};

use futures::FutureExt as _;
use tokio::sync::{mpsc, oneshot};

use sqlx::{Any, AnyConnection, pool::PoolConnection};

use crate::storage::Database;

/// Items written in one transaction at most.
pub const MAX_BATCH: usize = 256;

/// Requests waiting for the writer at most; past it a request waits for room.
const QUEUE: usize = 4 * MAX_BATCH;

/// What a service writes for a batch of requests.
pub trait BatchWriter: Send + Sync + 'static {
    type Item: Send + 'static;
    /// One item's answer: it may refuse an item (e.g. a consent revoked since it was read)
    /// without failing the others.
    type Answer: Send + 'static;

    /// Writes `items` in `tx` and answers each, in order (`items.len()` answers). An error rolls
    /// the whole batch back and every request gets it.
    fn write(
        &self,
        tx: &mut AnyConnection,
        items: Vec<Self::Item>,
    ) -> impl Future<Output = Result<Vec<Self::Answer>, sqlx::Error>> + Send;
}

/// Why a request got no answer from the writer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupCommitError {
    /// The batch's transaction failed; shared by every request of the batch.
    #[error("storage: {0}")]
    Storage(Arc<sqlx::Error>),
    /// The writer is gone (the service is shutting down).
    #[error("the writer has stopped")]
    Stopped,
}

type Pending<W> = (<W as BatchWriter>::Item, oneshot::Sender<Result<<W as BatchWriter>::Answer, GroupCommitError>>);

/// The handle requests submit through. Cloning shares the writer.
pub struct GroupCommit<W: BatchWriter> {
    queue: mpsc::Sender<Pending<W>>,
}

impl<W: BatchWriter> Clone for GroupCommit<W> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<W: BatchWriter> GroupCommit<W> {
    /// Starts the writer task on the current tokio runtime. It ends when every handle is dropped.
    /// `name` labels its metrics (`writer`): how many items each batch carried and how long its
    /// transaction took — the batch time is most of what a request waits.
    pub fn start(db: Database, name: &'static str, writer: W) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, name, writer, pending));
        Self { queue }
    }

    /// Queues `item` and waits until the batch holding it has committed.
    pub async fn submit(&self, item: W::Item) -> Result<W::Answer, GroupCommitError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).await.map_err(|_| GroupCommitError::Stopped)?;
        answer.await.map_err(|_| GroupCommitError::Stopped)?
    }
}

async fn run<W: BatchWriter>(db: Database, name: &'static str, writer: W, mut pending: mpsc::Receiver<Pending<W>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // The writer keeps a connection of its own between batches. Taking one from the pool for each
    // batch queued the writer — whom every waiting request depends on — behind the requests'
    // own reads for a connection; and on SQLite a connection of its own keeps its page cache,
    // which a commit by another connection would have emptied.
    let mut connection: Option<PoolConnection<Any>> = None;
    // Waits for the first request; takes whatever else has queued meanwhile without waiting.
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (items, replies): (Vec<_>, Vec<_>) = std::mem::take(&mut batch).into_iter().unzip();
        let started = Instant::now();
        metrics::histogram!("jiaxin_group_commit_batch_items", "writer" => name).record(items.len() as f64);
        // The batch's state (its transaction, its items) is dropped with the panic, so nothing
        // half-done is observed afterwards: unwind safety holds for what the writer keeps (its
        // connection is given up after any failure, below).
        let written = match AssertUnwindSafe(write_batch(&db, &mut connection, &writer, items)).catch_unwind().await {
            Ok(written) => written,
            Err(panic) => Err(sqlx::Error::Protocol(format!("batch writer panicked: {}", panic_message(&*panic)))),
        };
        let outcome = if written.is_ok() { "committed" } else { "failed" };
        metrics::histogram!("jiaxin_group_commit_batch_seconds", "writer" => name, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        match written {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // A request that went away (its client hung up) still had its write made.
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(error) => {
                tracing::warn!(%error, items = replies.len(), "group commit failed; every request of the batch is told");
                // Whatever state the connection was left in (a broken socket, a rollback still
                // to send after a panic), the next batch starts on another.
                if let Some(mut failed) = connection.take() {
                    failed.close_on_drop();
                }
                let error = GroupCommitError::Storage(Arc::new(error));
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// The text a panic was raised with, when it was a string (as `panic!` and `expect` make it).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-text payload")
}

async fn write_batch<W: BatchWriter>(
    db: &Database,
    connection: &mut Option<PoolConnection<Any>>,
    writer: &W,
    items: Vec<W::Item>,
) -> Result<Vec<W::Answer>, sqlx::Error> {
    let expected = items.len();
    let connection = match connection {
        Some(connection) => connection,
        None => connection.insert(db.pool().acquire().await?),
    };
    let mut tx = db.begin_on(connection).await?;
    let answers = writer.write(&mut tx, items).await?;
    if answers.len() != expected {
        // A writer bug, not a storage failure: refuse the batch rather than answer the wrong
        // request.
        return Err(sqlx::Error::Protocol(format!("batch writer answered {} of {expected} items", answers.len())));
    }
    tx.commit().await?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::DatabaseLocation;

    /// Writes each item as a row; refuses odd numbers without failing the batch; panics on
    /// [`PANICS`].
    struct Numbers;

    const PANICS: i64 = -13;

    impl BatchWriter for Numbers {
        type Item = i64;
        type Answer = Result<usize, &'static str>;

        async fn write(&self, tx: &mut AnyConnection, items: Vec<i64>) -> Result<Vec<Self::Answer>, sqlx::Error> {
            let mut answers = Vec::new();
            for n in &items {
                assert_ne!(*n, PANICS, "a writer bug");
                if n % 2 == 1 {
                    answers.push(Err("odd"));
                    continue;
                }
                sqlx::query("INSERT INTO numbers (n) VALUES ($1)").bind(*n).execute(&mut *tx).await?;
                answers.push(Ok(items.len()));
            }
            Ok(answers)
        }
    }

    async fn database(dir: &std::path::Path) -> Database {
        let db = Database::connect(&DatabaseLocation::sqlite_in(dir, "numbers").unwrap()).await.unwrap();
        sqlx::query("CREATE TABLE numbers (n BIGINT PRIMARY KEY)").execute(db.pool()).await.unwrap();
        db
    }

    #[tokio::test]
    async fn concurrent_requests_share_commits_and_each_gets_its_own_answer() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let commit = GroupCommit::start(db.clone(), "numbers", Numbers);
        let requests: Vec<_> = (0..1000)
            .map(|n| {
                let commit = commit.clone();
                tokio::spawn(async move { (n, commit.submit(n).await.unwrap()) })
            })
            .collect();
        let mut largest_batch = 0;
        for request in requests {
            let (n, answer) = request.await.unwrap();
            match answer {
                Ok(batch) => {
                    assert_eq!(n % 2, 0, "{n} was written");
                    largest_batch = largest_batch.max(batch);
                }
                Err(reason) => assert_eq!((n % 2, reason), (1, "odd")),
            }
        }
        let written: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM numbers").fetch_one(db.pool()).await.unwrap();
        assert_eq!(written, 500, "every even number once, no odd one");
        assert!(largest_batch > 1, "a thousand requests at once were written in shared transactions");
        assert!(largest_batch <= MAX_BATCH);
    }

    #[tokio::test]
    async fn each_batch_is_counted_by_items_and_time_under_its_writer() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let scrape = recorder.handle();
        // The writer is its own task: only a global recorder sees it. No other test here sets one.
        metrics::set_global_recorder(recorder).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let commit = GroupCommit::start(db.clone(), "metered", Numbers);
        for n in [2, 4, 6] {
            commit.submit(n).await.unwrap().unwrap();
        }
        let text = scrape.render();
        let count = |metric: &str, labels: &str| {
            text.lines()
                .find(|line| line.starts_with(&format!("{metric}_count{{{labels}}}")))
                .and_then(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        };
        assert_eq!(count("jiaxin_group_commit_batch_items", "writer=\"metered\""), Some(3), "{text}");
        assert_eq!(
            count("jiaxin_group_commit_batch_seconds", "writer=\"metered\",outcome=\"committed\""),
            Some(3),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_writes_nothing_and_tells_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        sqlx::query("INSERT INTO numbers (n) VALUES (4)").execute(db.pool()).await.unwrap();
        let commit = GroupCommit::start(db.clone(), "numbers", Numbers);
        // 4 is already there: the batch's INSERT fails on the primary key.
        let error = commit.submit(4).await.unwrap_err();
        assert!(matches!(error, GroupCommitError::Storage(_)), "{error:?}");
        assert_eq!(commit.submit(6).await.unwrap(), Ok(1), "the writer carries on after a failed batch");
        let written: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM numbers").fetch_one(db.pool()).await.unwrap();
        assert_eq!(written, 2);
    }

    #[tokio::test]
    async fn a_panicking_writer_fails_its_batch_and_serves_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let commit = GroupCommit::start(db.clone(), "numbers", Numbers);
        let error = commit.submit(PANICS).await.unwrap_err();
        assert!(matches!(&error, GroupCommitError::Storage(e) if e.to_string().contains("a writer bug")), "{error:?}");
        assert_eq!(commit.submit(8).await.unwrap(), Ok(1), "the writer outlives a panic");
        let written: Vec<i64> = sqlx::query_scalar("SELECT n FROM numbers").fetch_all(db.pool()).await.unwrap();
        assert_eq!(written, vec![8]);
    }
}
