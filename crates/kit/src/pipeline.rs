//! A transaction's writes run one after another on its connection while the code that produces
//! them prepares the next.
//!
//! Every statement sqlx runs on SQLite is handed to the connection's own thread, and the task
//! that issued it waits; on PostgreSQL it waits for the server. A batch that first builds a
//! statement (checks, hashes, encoded events, thousands of bound values) and then runs it, one
//! step after the other, keeps only one of the two busy at a time: measured on the points intake,
//! about 47 µs of a record's time on SQLite's thread and 33 µs on tokio's, each mostly waiting
//! for the other (docs/benchmarks.md). Here the producer hands each statement to a [`Queue`] as
//! soon as it is built and goes on to the next, while the runner executes what it was handed, in
//! order, on the one connection. Both run in the caller's task, so nothing else needs the
//! connection, and the transaction stays the caller's.
//!
//! What that means for a producer: it may not read through the connection (the runner holds it),
//! so everything its statements depend on is read before the pipeline starts; and a statement
//! sees the effects of every statement handed over before it, as in a plain sequence.

use std::future::Future;

use sqlx::{Any, AnyConnection, Arguments as _, Encode, Type, any::AnyArguments, error::BoxDynError};
use tokio::sync::mpsc;

/// One statement with its values, built before it runs.
pub struct Statement {
    sql: String,
    arguments: AnyArguments<'static>,
    /// The first value that could not be encoded: reported when the statement runs, as sqlx's own
    /// `Query::bind` does, so building stays a chain of calls.
    unencodable: Option<BoxDynError>,
}

impl Statement {
    pub fn new(sql: String) -> Self {
        Self { sql, arguments: AnyArguments::default(), unencodable: None }
    }

    /// Binds the next parameter's value.
    pub fn bind<T>(mut self, value: T) -> Self
    where
        T: 'static + Encode<'static, Any> + Type<Any>,
    {
        if self.unencodable.is_none()
            && let Err(error) = self.arguments.add(value)
        {
            self.unencodable = Some(error);
        }
        self
    }

    /// Runs the statement on `conn`; returns the rows it changed.
    pub async fn execute(self, conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
        if let Some(error) = self.unencodable {
            return Err(sqlx::Error::Encode(error));
        }
        Ok(sqlx::query_with(&self.sql, self.arguments).execute(conn).await?.rows_affected())
    }
}

/// Where a producer hands its statements to the runner.
pub struct Queue {
    sender: mpsc::Sender<Statement>,
}

impl Queue {
    /// Hands `statement` over. Waits while the runner still has one waiting, so the producer is
    /// never more than one statement ahead, then yields once so the runner takes it at once: the
    /// producer's next piece of work then overlaps the statement's execution.
    pub async fn push(&self, statement: Statement) {
        // The send fails only once the runner has stopped, and it stops early only on an error,
        // which ends the pipeline (and drops this producer) before it is polled again.
        let _ = self.sender.send(statement).await;
        tokio::task::yield_now().await;
    }

    /// Hands over every statement of `statements`, built one by one as the runner takes them.
    pub async fn push_all(&self, statements: impl IntoIterator<Item = Statement>) {
        for statement in statements {
            self.push(statement).await;
        }
    }
}

/// Runs the statements `produce` hands to its queue on `conn`, in order, while it goes on; returns
/// what `produce` returns once every statement has run. The first failure, the runner's or the
/// producer's, ends both and is returned: inside a transaction, the caller's rollback takes back
/// whatever had run.
pub async fn pipeline<T, E, F>(conn: &mut AnyConnection, produce: impl FnOnce(Queue) -> F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: From<sqlx::Error>,
{
    let (sender, mut receiver) = mpsc::channel::<Statement>(1);
    let run = async {
        while let Some(statement) = receiver.recv().await {
            statement.execute(&mut *conn).await?;
        }
        Ok::<(), E>(())
    };
    // The queue moves into the producer: when it finishes, the channel closes and the runner
    // stops after the last statement.
    let ((), value) = tokio::try_join!(run, produce(Queue { sender }))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Database, DatabaseLocation};

    async fn database(dir: &std::path::Path) -> Database {
        let db = Database::connect(&DatabaseLocation::sqlite_in(dir, "pipeline").unwrap()).await.unwrap();
        sqlx::query("CREATE TABLE rows (n BIGINT PRIMARY KEY, label TEXT NOT NULL)").execute(db.pool()).await.unwrap();
        db
    }

    fn insert(n: i64, label: &str) -> Statement {
        Statement::new("INSERT INTO rows (n, label) VALUES ($1, $2)".to_owned()).bind(n).bind(label.to_owned())
    }

    #[tokio::test]
    async fn statements_run_in_the_order_handed_over_and_the_producer_answers() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let mut tx = db.begin().await.unwrap();
        let answer = pipeline::<_, sqlx::Error, _>(&mut tx, |queue| async move {
            queue.push(insert(1, "一")).await;
            // A later statement sees the earlier ones' effects.
            queue.push(Statement::new("UPDATE rows SET label = label || '!' WHERE n = 1".to_owned())).await;
            queue.push_all((2..=3).map(|n| insert(n, "二三"))).await;
            Ok(42)
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(answer, 42);
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT n, label FROM rows ORDER BY n").fetch_all(db.pool()).await.unwrap();
        assert_eq!(rows, vec![(1, "一!".to_owned()), (2, "二三".to_owned()), (3, "二三".to_owned())]);
    }

    #[tokio::test]
    async fn a_failing_statement_ends_the_pipeline_with_its_error_and_nothing_after_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let mut tx = db.begin().await.unwrap();
        let pushed_after_failure = std::sync::atomic::AtomicUsize::new(0);
        let counter = &pushed_after_failure;
        let result = pipeline::<(), sqlx::Error, _>(&mut tx, |queue| async move {
            queue.push(insert(1, "一")).await;
            queue.push(insert(1, "repeated key")).await;
            for n in 2..100 {
                queue.push(insert(n, "after")).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
        .await;
        let error = result.unwrap_err();
        assert!(error.to_string().to_lowercase().contains("unique"), "{error}");
        // The producer is at most one statement ahead of the failure when it is dropped.
        assert!(pushed_after_failure.load(std::sync::atomic::Ordering::Relaxed) < 3);
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rows").fetch_one(&mut *tx).await.unwrap();
        assert_eq!(count, 1, "only the statement before the failure ran");
        drop(tx);
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rows").fetch_one(db.pool()).await.unwrap();
        assert_eq!(count, 0, "the caller's rollback took it back");
    }

    #[tokio::test]
    async fn a_producer_failure_is_returned_and_a_value_that_cannot_be_bound_fails_its_statement() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let mut tx = db.begin().await.unwrap();
        let result = pipeline::<(), sqlx::Error, _>(&mut tx, |queue| async move {
            queue.push(insert(1, "一")).await;
            Err(sqlx::Error::Protocol("the producer gave up".into()))
        })
        .await;
        assert!(result.unwrap_err().to_string().contains("the producer gave up"));

        let mut statement = Statement::new("INSERT INTO rows (n, label) VALUES ($1, $2)".to_owned());
        statement.unencodable = Some("no encoding for this value".into());
        let error = statement.bind(5_i64).bind("五".to_owned()).execute(&mut tx).await.unwrap_err();
        assert!(error.to_string().contains("no encoding for this value"), "{error}");
    }
}
