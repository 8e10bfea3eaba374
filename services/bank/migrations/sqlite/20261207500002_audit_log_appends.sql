-- The audit log loses two B-trees every credit report wrote into: the UNIQUE index on prev_hash,
-- where each new entry landed at a random place (a page of its own in every commit), and the
-- separate index a BIGINT PRIMARY KEY gets beside the table's rowid. Now seq is the rowid itself.
-- A fork of the chain stays unwritable: every entry's seq is its predecessor's plus one
-- (jiaxin_kit::audit), so two successors of one entry would share a seq, and seq is the key.
-- Measured in docs/benchmarks.md (bank item 9). SQLite drops a column constraint only by
-- rebuilding the table; nothing references the log.
CREATE TABLE audit_log_rebuilt (
    seq INTEGER PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_log_rebuilt (seq, at, actor, action, subject, details, prev_hash, hash)
SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_rebuilt RENAME TO audit_log;
