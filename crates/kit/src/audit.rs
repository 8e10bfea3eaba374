//! The append-only, hash-chained audit log a service keeps in its own database for what must be
//! answerable later: eligibility checks, bank reports. Each entry's hash covers its fields and the
//! previous entry's hash, so changing, removing or reordering any entry breaks every later one.
//!
//! Appending reads the chain's head row (`audit_head`) locked until the transaction ends
//! ([`head_for_append`]): concurrent appends on PostgreSQL wait in line instead of forking the
//! chain, and the entry commits or rolls back with the answer it records. A service that uses
//! this module creates the two tables in its migrations:
//!
//! ```sql
//! CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL,
//!     action TEXT NOT NULL, subject TEXT NOT NULL, details TEXT NOT NULL,
//!     prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
//! CREATE TABLE audit_head (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL);
//! INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '<GENESIS>');
//! ```
//!
//! No index on the hashes is needed to keep the chain from forking: an entry's seq is always its
//! predecessor's plus one ([`Chained::after`]), so two successors of one entry would share a seq,
//! which the key refuses. An index on a hash puts every entry at a random place in a B-tree as
//! large as the log — on the credit reports' path, a page of its own in every commit (the bank
//! dropped its one; docs/benchmarks.md). On SQLite `INTEGER PRIMARY KEY` makes seq the rowid
//! instead of a second B-tree beside it; PostgreSQL spells it `BIGINT PRIMARY KEY`.

use sha2::{Digest, Sha256};

use sqlx::AnyConnection;

use crate::{
    group_commit::BatchWriter,
    storage::{Dialect, Tx},
    writes::Writes,
};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit entry records.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub details: &'a str,
}

pub fn hash(prev: &str, entry: &Entry<'_>) -> String {
    let mut hasher = Sha256::new();
    for field in [prev, &entry.at.to_string(), entry.actor, entry.action, entry.subject, entry.details] {
        // Length-prefixed, so no two different entries hash the same bytes.
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// An entry that owns its fields, for handing to [`AuditWriter`] from a request.
#[derive(Debug, Clone)]
pub struct OwnedEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
}

impl OwnedEntry {
    pub fn entry(&self) -> Entry<'_> {
        Entry { at: self.at, actor: &self.actor, action: &self.action, subject: &self.subject, details: &self.details }
    }
}

/// Appends the entries of many concurrent answers in one transaction (group commit): an answer
/// that must be audited submits its entry and is given once the batch holding it has committed.
pub struct AuditWriter;

impl BatchWriter for AuditWriter {
    type Item = OwnedEntry;
    type Answer = ();

    async fn write(&self, tx: &mut AnyConnection, items: Vec<OwnedEntry>) -> Result<Vec<()>, sqlx::Error> {
        let entries: Vec<Entry<'_>> = items.iter().map(OwnedEntry::entry).collect();
        append(tx, &entries).await?;
        Ok(vec![(); items.len()])
    }
}

/// Rows per INSERT when appending many entries (8 parameters each, under every driver's limit).
const CHUNK: usize = 500;

/// The chain's last entry, read in the transaction that appends after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// Reads the head for an append. On PostgreSQL the row is locked until the transaction ends, so
/// concurrent appends wait in line instead of forking the chain; on SQLite the write transaction
/// (`BEGIN IMMEDIATE`, `Database::begin`) already excludes every other writer.
pub async fn head_for_append(conn: &mut AnyConnection) -> Result<Head, sqlx::Error> {
    let lock = match Dialect::of(conn) {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    };
    let (seq, hash) =
        sqlx::query_as(&format!("SELECT seq, hash FROM audit_head WHERE id = 1{lock}")).fetch_one(&mut *conn).await?;
    Ok(Head { seq, hash })
}

/// Entries hashed in order after a head: the rows to write and the head they leave.
pub struct Chained<'a> {
    rows: Vec<(i64, &'a Entry<'a>, String, String)>,
    head: Head,
}

impl<'a> Chained<'a> {
    pub fn after(head: Head, entries: &'a [Entry<'a>]) -> Self {
        let Head { seq, hash: mut prev } = head;
        let mut rows = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let hash = hash(&prev, entry);
            rows.push((seq + 1 + i as i64, entry, std::mem::replace(&mut prev, hash.clone()), hash));
        }
        let head = Head { seq: seq + entries.len() as i64, hash: prev };
        Self { rows, head }
    }

    /// The sequence number the first entry gets.
    pub fn first_seq(&self) -> i64 {
        self.head.seq - self.rows.len() as i64 + 1
    }

    /// Adds the entries' INSERTs and the head's move to `writes`, so they go to the database
    /// with whatever else the transaction writes.
    pub fn write_into(&'a self, writes: &mut Writes<'a>) -> Result<(), sqlx::Error> {
        for chunk in self.rows.chunks(CHUNK) {
            writes.statement(|p| {
                format!(
                    "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) VALUES {}",
                    p.rows(chunk.len(), 8)
                )
            });
            for (seq, entry, prev_hash, hash) in chunk {
                writes.bind(*seq)?;
                writes.bind(entry.at)?;
                writes.bind(entry.actor)?;
                writes.bind(entry.action)?;
                writes.bind(entry.subject)?;
                writes.bind(entry.details)?;
                writes.bind(prev_hash.as_str())?;
                writes.bind(hash.as_str())?;
            }
        }
        writes.statement(|p| format!("UPDATE audit_head SET seq = {}, hash = {} WHERE id = 1", p.one(), p.one()));
        writes.bind(self.head.seq)?;
        writes.bind(self.head.hash.as_str())
    }
}

/// Appends `entries` in order inside `tx` and returns the sequence number of the first. If the
/// append fails the caller's transaction must fail with it: the answer is not given unaudited.
/// Two round trips: the head read, then the entries and the head's move together.
pub async fn append(tx: &mut AnyConnection, entries: &[Entry<'_>]) -> Result<i64, sqlx::Error> {
    let head = head_for_append(tx).await?;
    let chained = Chained::after(head, entries);
    let mut writes = Writes::new(Dialect::of(tx));
    chained.write_into(&mut writes)?;
    writes.execute(tx).await?;
    Ok(chained.first_seq())
}

/// The result of walking the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    pub intact: bool,
    pub entries_checked: i64,
    /// The first entry that does not follow from the one before (0 when intact).
    pub broken_seq: i64,
}

type Row = (i64, i64, String, String, String, String, String, String);

/// Walks the whole chain in sequence order, a page at a time, and checks that every entry links
/// to the one before, hashes to what it says, and that the head names the last entry.
pub async fn verify(tx: &mut Tx) -> Result<Verification, sqlx::Error> {
    let mut answer = Verification { intact: true, ..Default::default() };
    let mut prev = GENESIS.to_owned();
    let mut expected_seq = 1;
    loop {
        let page: Vec<Row> = sqlx::query_as(
            "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log \
             WHERE seq >= $1 ORDER BY seq LIMIT 1000",
        )
        .bind(expected_seq)
        .fetch_all(&mut **tx)
        .await?;
        if page.is_empty() {
            break;
        }
        for (seq, at, actor, action, subject, details, prev_hash, stored) in &page {
            let entry = Entry { at: *at, actor, action, subject, details };
            if *seq != expected_seq || *prev_hash != prev || hash(&prev, &entry) != *stored {
                return Ok(Verification {
                    intact: false,
                    entries_checked: answer.entries_checked,
                    broken_seq: expected_seq,
                });
            }
            answer.entries_checked += 1;
            prev = stored.clone();
            expected_seq += 1;
        }
    }
    let (head_seq, head_hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&mut **tx).await?;
    if head_seq != expected_seq - 1 || head_hash != prev {
        // Entries were removed from the end, or the head was rewritten.
        answer.intact = false;
        answer.broken_seq = expected_seq;
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_changed_field_changes_the_hash() {
        let entry = Entry { at: 1, actor: "a", action: "vote", subject: "t", details: "approve" };
        let base = hash(GENESIS, &entry);
        assert_ne!(base, hash(GENESIS, &Entry { details: "reject", ..entry }));
        let shifted = Entry { at: 1, actor: "av", action: "ote", subject: "t", details: "approve" };
        assert_ne!(base, hash(GENESIS, &shifted));
        assert_ne!(base, hash(&base, &entry));
    }

    /// The tables as this module's documentation gives them, on SQLite.
    async fn log(dir: &std::path::Path) -> crate::storage::Database {
        use crate::storage::{Database, DatabaseLocation};
        let db = Database::connect(&DatabaseLocation::sqlite_in(dir, "audit").unwrap()).await.unwrap();
        let genesis = format!("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS}')");
        for statement in [
            "CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL, \
             action TEXT NOT NULL, subject TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, \
             hash TEXT NOT NULL)",
            "CREATE TABLE audit_head (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL)",
            &genesis,
        ] {
            sqlx::query(statement).execute(db.pool()).await.unwrap();
        }
        db
    }

    #[tokio::test]
    async fn a_second_successor_of_an_entry_is_refused_without_an_index_on_the_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let db = log(dir.path()).await;
        let first = Entry { at: 1, actor: "officer", action: "credit.report", subject: "r1", details: "d1" };
        let mut tx = db.begin().await.unwrap();
        let stale = head_for_append(&mut tx).await.unwrap();
        assert_eq!(append(&mut tx, &[first]).await.unwrap(), 1);
        tx.commit().await.unwrap();

        // An appender that read the head before that append names the same predecessor.
        let fork = [Entry { at: 2, actor: "officer", action: "credit.report", subject: "r2", details: "d2" }];
        let mut tx = db.begin().await.unwrap();
        let mut writes = Writes::new(Dialect::Sqlite);
        let chained = Chained::after(stale, &fork);
        chained.write_into(&mut writes).unwrap();
        let refused = writes.execute(&mut tx).await;
        assert!(refused.is_err(), "a fork must not be written: {refused:?}");
        tx.rollback().await.unwrap();

        let mut read = db.begin_read().await.unwrap();
        let verified = verify(&mut read).await.unwrap();
        assert_eq!(verified, Verification { intact: true, entries_checked: 1, broken_seq: 0 });
    }
}
