-- Each entry's hash loses its UNIQUE index. Nothing looks an entry up by its hash (verification
-- recomputes each household's chain in order), and the index put every new entry at a random
-- place in a B-tree as large as the ledger: the costliest write of a batch of records
-- (docs/benchmarks.md). SQLite drops a column constraint only by rebuilding the table; nothing
-- references the ledger.
CREATE TABLE ledger_rebuilt (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    household_id TEXT NOT NULL,
    record_id TEXT NOT NULL REFERENCES records (id),
    resident_id TEXT NOT NULL DEFAULT '',
    delta BIGINT NOT NULL CHECK (delta <> 0),
    effective_from BIGINT NOT NULL,
    expires_at BIGINT NOT NULL CHECK (expires_at > effective_from),
    rule_code TEXT NOT NULL,
    rule_version BIGINT NOT NULL,
    category BIGINT NOT NULL,
    serious BIGINT NOT NULL,
    reverses_seq BIGINT,
    created_at BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO ledger_rebuilt (
    seq, household_id, record_id, resident_id, delta, effective_from, expires_at, rule_code, rule_version,
    category, serious, reverses_seq, created_at, prev_hash, hash
)
SELECT
    seq, household_id, record_id, resident_id, delta, effective_from, expires_at, rule_code, rule_version,
    category, serious, reverses_seq, created_at, prev_hash, hash
FROM ledger;
-- The counter, not the highest seq left, is what AUTOINCREMENT carries on from.
UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'ledger'), 0))
WHERE name = 'ledger_rebuilt';
DROP TABLE ledger;
ALTER TABLE ledger_rebuilt RENAME TO ledger;
CREATE INDEX ledger_household ON ledger (household_id, seq);
CREATE UNIQUE INDEX ledger_one_reversal ON ledger (reverses_seq) WHERE reverses_seq IS NOT NULL;
CREATE INDEX ledger_effective ON ledger (effective_from);
CREATE INDEX ledger_expires ON ledger (expires_at);
CREATE INDEX ledger_resident ON ledger (resident_id) WHERE resident_id <> '';
