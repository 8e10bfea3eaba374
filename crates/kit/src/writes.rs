//! Several INSERT and UPDATE statements sent to the database as one.
//!
//! On SQLite every statement sqlx runs is a hand-off to the connection's own thread and back, and
//! on PostgreSQL a network round trip. A writer that holds the write lock (a group commit's
//! batch, an audit append) pays each of those while everyone else waits for the lock: measured on
//! the bank's report journal under load, each statement cost 0.1–0.3 ms of wall time with the
//! cores a third idle, and seven of them per batch were what limited credit reports. Here the
//! statements go as one: SQLite runs a multi-statement text in one call on its thread (sqlx binds
//! anonymous `?`s across the statements in order); PostgreSQL gets them as data-modifying CTEs of
//! one statement (`WITH w0 AS (…), w1 AS (…) <last>`).
//!
//! What the CTE form means for callers: PostgreSQL runs every part against the same snapshot and
//! in no promised order, so the statements must not depend on each other's effects (no two may
//! change the same row, and none may read what another writes). Appending rows to different
//! tables and moving a head row, as the audit log and the bank's journal do, is that.

use std::fmt::Write as _;

use sqlx::{Any, AnyConnection, Arguments as _, Encode, Type, any::AnyArguments};

use crate::storage::Dialect;

/// Placeholders for one statement, numbered after the parameters of the statements before it.
pub struct Placeholders {
    dialect: Dialect,
    next: usize,
}

impl Placeholders {
    /// For a statement of its own: the first parameter is `$1`.
    pub fn new(dialect: Dialect) -> Self {
        Self { dialect, next: 0 }
    }

    /// One parameter.
    pub fn one(&mut self) -> String {
        let mut text = String::new();
        self.push(&mut text);
        text
    }

    /// `…, …` for a list of `n` parameters: an `IN (…)` list, bound in order. On SQLite the
    /// anonymous form spares the n² of numbered ones (`sql::values` says why); a statement that
    /// takes its list this way takes every other parameter from the same `Placeholders`, for
    /// SQLite binds anonymous and numbered parameters by different counts.
    pub fn list(&mut self, n: usize) -> String {
        let mut text = String::with_capacity(n * 4);
        for i in 0..n {
            if i > 0 {
                text.push_str(", ");
            }
            self.push(&mut text);
        }
        text
    }

    /// `(…), (…)` for `rows` rows of `columns` parameters each, bound row by row. Written into one
    /// string: the points intake asks for some 100,000 parameters a batch.
    pub fn rows(&mut self, rows: usize, columns: usize) -> String {
        let mut text = String::with_capacity(rows * columns * 4);
        for row in 0..rows {
            text.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..columns {
                if column > 0 {
                    text.push_str(", ");
                }
                self.push(&mut text);
            }
            text.push(')');
        }
        text
    }

    fn push(&mut self, text: &mut String) {
        self.next += 1;
        match self.dialect {
            // Anonymous on SQLite for the reason `sql::values` gives; sqlx binds them in order,
            // across the statements of one text too.
            Dialect::Sqlite => text.push('?'),
            // Writing to a String cannot fail.
            Dialect::Postgres => drop(write!(text, "${}", self.next)),
        }
    }
}

/// Parameters one text may carry: PostgreSQL's limit for a statement (the CTE form is one).
/// Past it, the statements go in as many round trips as it takes, in order.
const PARAMETERS_PER_TRIP: usize = 65_535;

/// Statements sent as one text, and their parameters.
struct Trip<'q> {
    statements: Vec<String>,
    arguments: AnyArguments<'q>,
    placed: usize,
}

impl Trip<'_> {
    fn new() -> Self {
        Self { statements: Vec::new(), arguments: AnyArguments::default(), placed: 0 }
    }

    /// The one text the statements are sent as.
    fn text(&self, dialect: Dialect) -> String {
        match (dialect, self.statements.split_last()) {
            (_, None) => String::new(),
            (Dialect::Sqlite, Some(_)) => self.statements.join(";\n"),
            (Dialect::Postgres, Some((last, []))) => last.clone(),
            (Dialect::Postgres, Some((last, before))) => {
                let parts: Vec<String> =
                    before.iter().enumerate().map(|(i, statement)| format!("w{i} AS ({statement})")).collect();
                format!("WITH {} {last}", parts.join(", "))
            }
        }
    }
}

/// Statements and their parameters, executed by [`Writes::execute`] in one round trip (or one
/// per [`PARAMETERS_PER_TRIP`] parameters).
pub struct Writes<'q> {
    dialect: Dialect,
    trips: Vec<Trip<'q>>,
}

impl<'q> Writes<'q> {
    pub fn new(dialect: Dialect) -> Self {
        Self { dialect, trips: vec![Trip::new()] }
    }

    /// Adds an INSERT or UPDATE (no `RETURNING`: nothing is read back). `sql` writes its text
    /// with the placeholders it is given; bind its values next, in the same order. (It is called
    /// again, numbering from `$1`, when the statement starts a new round trip.)
    pub fn statement(&mut self, sql: impl Fn(&mut Placeholders) -> String) {
        let dialect = self.dialect;
        let place = |trip: &mut Trip<'q>| {
            let mut placeholders = Placeholders { dialect, next: trip.placed };
            let text = sql(&mut placeholders);
            (text, placeholders.next)
        };
        let Some(mut trip) = self.trips.pop() else { return };
        let (mut text, mut placed) = place(&mut trip);
        if placed > PARAMETERS_PER_TRIP && !trip.statements.is_empty() {
            self.trips.push(trip);
            trip = Trip::new();
            (text, placed) = place(&mut trip);
        }
        trip.statements.push(text);
        trip.placed = placed;
        self.trips.push(trip);
    }

    pub fn bind<T>(&mut self, value: T) -> Result<(), sqlx::Error>
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        let Some(trip) = self.trips.last_mut() else { return Ok(()) };
        trip.arguments.add(value).map_err(sqlx::Error::Encode)
    }

    /// Runs every statement, in as few round trips as the parameters allow (one, below
    /// [`PARAMETERS_PER_TRIP`]); returns the rows they changed, together. Inside the caller's
    /// transaction: a failure in a later trip leaves the earlier ones to its rollback.
    pub async fn execute(self, conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
        for trip in &self.trips {
            let bound = trip.arguments.len();
            if bound != trip.placed {
                // A caller's bug: sqlx would bind NULL for what is missing on SQLite.
                return Err(sqlx::Error::Protocol(format!("{} placeholders, {bound} values bound", trip.placed)));
            }
        }
        let mut changed = 0;
        for trip in self.trips.into_iter().filter(|trip| !trip.statements.is_empty()) {
            let text = trip.text(self.dialect);
            changed += sqlx::query_with(&text, trip.arguments).execute(&mut *conn).await?.rows_affected();
        }
        Ok(changed)
    }

    #[cfg(test)]
    fn texts(&self) -> Vec<String> {
        self.trips.iter().map(|trip| trip.text(self.dialect)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Database, DatabaseLocation};

    async fn database(dir: &std::path::Path) -> Database {
        let db = Database::connect(&DatabaseLocation::sqlite_in(dir, "writes").unwrap()).await.unwrap();
        sqlx::query("CREATE TABLE rows (n BIGINT PRIMARY KEY, label TEXT NOT NULL)").execute(db.pool()).await.unwrap();
        sqlx::query("CREATE TABLE head (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)").execute(db.pool()).await.unwrap();
        sqlx::query("INSERT INTO head (id, n) VALUES (1, 0)").execute(db.pool()).await.unwrap();
        db
    }

    fn append<'q>(writes: &mut Writes<'q>, rows: &'q [(i64, &'q str)]) {
        writes.statement(|p| format!("INSERT INTO rows (n, label) VALUES {}", p.rows(rows.len(), 2)));
        for (n, label) in rows {
            writes.bind(*n).unwrap();
            writes.bind(*label).unwrap();
        }
        writes.statement(|p| format!("UPDATE head SET n = {} WHERE id = 1", p.one()));
        writes.bind(rows.last().map_or(0, |row| row.0)).unwrap();
    }

    #[tokio::test]
    async fn every_statement_runs_with_its_own_values_and_a_failure_rolls_back_with_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let mut tx = db.begin().await.unwrap();
        let mut writes = Writes::new(db.dialect());
        append(&mut writes, &[(1, "一"), (2, "二")]);
        assert_eq!(writes.execute(&mut tx).await.unwrap(), 3, "two rows inserted, one head moved");
        tx.commit().await.unwrap();
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT n, label FROM rows ORDER BY n").fetch_all(db.pool()).await.unwrap();
        assert_eq!(rows, vec![(1, "一".to_owned()), (2, "二".to_owned())]);
        let head: i64 = sqlx::query_scalar("SELECT n FROM head").fetch_one(db.pool()).await.unwrap();
        assert_eq!(head, 2);

        // The second row repeats a key: the INSERT fails after nothing else ran, and the caller's
        // transaction takes the rest back.
        let mut tx = db.begin().await.unwrap();
        let mut writes = Writes::new(db.dialect());
        append(&mut writes, &[(3, "三"), (1, "again")]);
        assert!(writes.execute(&mut tx).await.is_err());
        drop(tx);
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rows").fetch_one(db.pool()).await.unwrap();
        let head: i64 = sqlx::query_scalar("SELECT n FROM head").fetch_one(db.pool()).await.unwrap();
        assert_eq!((count, head), (2, 2));
    }

    #[tokio::test]
    async fn values_short_of_the_placeholders_are_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let mut writes = Writes::new(db.dialect());
        writes.statement(|p| format!("INSERT INTO rows (n, label) VALUES {}", p.rows(1, 2)));
        writes.bind(7_i64).unwrap();
        let mut conn = db.pool().acquire().await.unwrap();
        let error = writes.execute(&mut conn).await.unwrap_err();
        assert!(error.to_string().contains("2 placeholders, 1 values bound"), "{error}");
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rows").fetch_one(db.pool()).await.unwrap();
        assert_eq!(count, 0);
    }

    #[test]
    fn postgres_numbers_parameters_across_statements_and_wraps_all_but_the_last_as_ctes() {
        let mut writes = Writes::new(Dialect::Postgres);
        writes.statement(|p| format!("INSERT INTO a (x, y) VALUES {}", p.rows(2, 2)));
        writes.statement(|p| format!("UPDATE b SET z = {} WHERE id = 1", p.one()));
        assert_eq!(
            writes.texts(),
            vec!["WITH w0 AS (INSERT INTO a (x, y) VALUES ($1, $2), ($3, $4)) UPDATE b SET z = $5 WHERE id = 1"]
        );
    }

    #[test]
    fn past_postgres_parameter_limit_the_statements_go_in_more_round_trips_numbered_afresh() {
        let mut writes = Writes::new(Dialect::Postgres);
        writes.statement(|p| format!("INSERT INTO a (x) VALUES {}", p.rows(40_000, 1)));
        writes.statement(|p| format!("INSERT INTO a (x) VALUES {}", p.rows(40_000, 1)));
        writes.statement(|p| format!("UPDATE b SET z = {} WHERE id = 1", p.one()));
        let texts = writes.texts();
        assert_eq!(texts.len(), 2, "80,001 parameters do not fit one statement");
        assert!(texts[0].starts_with("INSERT INTO a (x) VALUES ($1), ($2)") && texts[0].ends_with("($40000)"));
        assert!(texts[1].starts_with("WITH w0 AS (INSERT INTO a (x) VALUES ($1), "), "{}", &texts[1][..60]);
        assert!(texts[1].ends_with("($40000)) UPDATE b SET z = $40001 WHERE id = 1"));
    }

    #[test]
    fn sqlite_sends_the_statements_as_one_text_with_anonymous_parameters() {
        let mut writes = Writes::new(Dialect::Sqlite);
        writes.statement(|p| format!("INSERT INTO a (x) VALUES {}", p.rows(2, 1)));
        writes.statement(|p| format!("UPDATE b SET z = {} WHERE id = 1", p.one()));
        assert_eq!(writes.texts(), vec!["INSERT INTO a (x) VALUES (?), (?);\nUPDATE b SET z = ? WHERE id = 1"]);
        let mut single = Writes::new(Dialect::Postgres);
        single.statement(|p| format!("UPDATE b SET z = {}", p.one()));
        assert_eq!(single.texts(), vec!["UPDATE b SET z = $1"]);
    }
}
