-- Whether each household's records count, from pledges' events (kept apart from the households
-- read model: identity's and pledges' events arrive on different topics, in either order).
CREATE TABLE pledges (
    household_id TEXT PRIMARY KEY,
    -- PledgeStatus: 2 in force, 3 revoked.
    status BIGINT NOT NULL CHECK (status IN (2, 3)),
    since BIGINT NOT NULL
);

-- Records gain status 6: held until the household's pledge. SQLite cannot alter a CHECK
-- constraint, and rebuilding `records` would mean rebuilding the ledger that references it.
-- SQLite's documentation (ALTER TABLE, "other kinds of table schema changes") allows editing the
-- stored definition for a change that leaves every existing row valid, as widening this range
-- does; the DDL that follows bumps the schema version so every connection reloads it.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql, 'CHECK (status BETWEEN 1 AND 5)', 'CHECK (status BETWEEN 1 AND 6)')
WHERE type = 'table' AND name = 'records';
PRAGMA writable_schema = OFF;

-- A held record remembers whether the council must review it once it is released.
ALTER TABLE records ADD COLUMN needs_review BIGINT NOT NULL DEFAULT 0;
CREATE INDEX records_by_status ON records (household_id, status);
