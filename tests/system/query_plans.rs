//! Every SQL statement the demo's year runs, explained against the databases it leaves: none may
//! read a whole table. A lookup no index serves is fast on a demo's tables and slow at a county's
//! — points' lookups by record id scanned a 1,000,000-entry ledger inside the crash campaign's
//! transactions before anyone looked (docs/reliability.md). SQLite's plans, from sqlx's own
//! statement log (`sqlx::query` at debug level, JSON lines).

use std::{collections::BTreeSet, path::Path, process::Command};

use sqlx::{Connection, sqlite::SqliteConnectOptions};

/// Scans that are not findings: (the statement begins with, the plan step contains). The count
/// over a LIMITed subquery of unsent events; identity's signing keys (a handful, rotated by
/// hand); the outbox's partial index, which holds only the events not yet sent; the rule
/// catalogue (48 rules and their versions). And two steps SQLite plans but does not run: on an
/// insert into a parent table (records, benefits) it looks for child rows left orphaned, a scan
/// it skips unless a foreign-key violation is outstanding, which immediate constraints never
/// leave.
const ALLOWED: &[(&str, &str)] = &[
    ("", "SCAN unsent"),
    ("", "SCAN signing_keys"),
    ("", "USING INDEX kit_outbox_unsent"),
    ("", "USING INDEX sqlite_autoindex_rules_1"),
    ("INSERT INTO records ", "SCAN ledger"),
    ("INSERT INTO benefits ", "SCAN redemptions"),
];

const SERVICES: [&str; 6] = ["identity", "pledges", "points", "council", "benefits", "bank"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_statement_of_the_demos_year_scans_a_whole_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let run = Command::new(env!("CARGO_BIN_EXE_jiaxin"))
        .args(["demo", "--households", "200", "--no-serve", "--log-format", "json"])
        .args(["--data-dir", data.to_str().unwrap(), "--grpc-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("JIAXIN_LOG", "warn,sqlx::query=debug")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let statements = logged_statements(&String::from_utf8_lossy(&run.stdout));
    assert!(statements.len() > 100, "the log holds the year's statements: {}", statements.len());

    let mut databases = Vec::new();
    for service in SERVICES {
        databases.push((service, open(&data.join(format!("{service}.db"))).await));
    }
    let mut explained = 0;
    let mut scans = Vec::new();
    for statement in &statements {
        let mut plan = None;
        for (service, db) in &mut databases {
            if let Ok(steps) = explain(db, statement).await {
                plan = Some((*service, steps));
                break;
            }
        }
        let (service, steps) = plan.unwrap_or_else(|| panic!("no service's database prepares: {statement}"));
        explained += 1;
        for step in steps {
            // `SCAN t` reads the table whole; `SCAN t USING [COVERING] INDEX i` walks all of an
            // index; `SEARCH` is what a lookup should be. (`SCAN n-ROW VALUES CLAUSE` and
            // `SCAN CONSTANT ROW` read the statement's own values.)
            let own_values = step.ends_with("-ROW VALUES CLAUSE") || step == "SCAN CONSTANT ROW";
            if step.starts_with("SCAN ")
                && !own_values
                && !ALLOWED.iter().any(|(start, part)| statement.starts_with(start) && step.contains(part))
            {
                scans.push(format!("{service}: {step}\n    {}", one_line(statement)));
            }
        }
    }
    assert!(explained > 100, "{explained} statements explained");
    assert!(scans.is_empty(), "{} statements read a whole table:\n{}", scans.len(), scans.join("\n"));
}

/// The distinct data statements of sqlx's log lines, without the migrations and the
/// connection and transaction statements. A statement list sent as one text
/// (`jiaxin_kit::writes`, joined with `";\n"`) is explained statement by statement.
fn logged_statements(log: &str) -> BTreeSet<String> {
    let mut statements = BTreeSet::new();
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(text) = event.get("db.statement").and_then(|s| s.as_str()) else { continue };
        let text = text.trim();
        let first = text.split_whitespace().next().unwrap_or_default().to_uppercase();
        let data = ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains(&first.as_str());
        if data && !text.contains("_sqlx_migrations") {
            statements.extend(text.split(";\n").map(|statement| statement.trim().to_owned()));
        }
    }
    statements
}

async fn open(file: &Path) -> sqlx::SqliteConnection {
    let options = SqliteConnectOptions::new().filename(file).read_only(true);
    sqlx::SqliteConnection::connect_with(&options).await.unwrap()
}

/// The statement's query plan (each step's detail), its parameters bound to NULL.
async fn explain(db: &mut sqlx::SqliteConnection, statement: &str) -> sqlx::Result<Vec<String>> {
    let sql = format!("EXPLAIN QUERY PLAN {statement}");
    let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&sql);
    for _ in 0..parameters(statement) {
        query = query.bind(None::<i64>);
    }
    Ok(query.fetch_all(db).await?.into_iter().map(|(_, _, _, detail)| detail).collect())
}

/// How many parameters the statement takes: its highest `$n`, or its count of `?`.
fn parameters(statement: &str) -> usize {
    let numbered = statement
        .split('$')
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<usize>().ok())
        .max();
    numbered.unwrap_or_else(|| statement.matches('?').count())
}

fn one_line(statement: &str) -> String {
    statement.split_whitespace().collect::<Vec<_>>().join(" ")
}
