-- Points: the rule catalogue, read models of identity, records, the ledger.

-- Every version of every rule; a record names the version it was made under.
CREATE TABLE rules (
    code TEXT NOT NULL,
    version BIGINT NOT NULL CHECK (version > 0),
    category BIGINT NOT NULL CHECK (category BETWEEN 1 AND 5),
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    kind BIGINT NOT NULL CHECK (kind IN (1, 2)),
    points_min BIGINT NOT NULL CHECK (points_min > 0),
    points_max BIGINT NOT NULL CHECK (points_max >= points_min),
    yearly_cap BIGINT NOT NULL CHECK (yearly_cap >= 0),
    recorders TEXT NOT NULL,
    evidence_required BIGINT NOT NULL,
    review_required BIGINT NOT NULL,
    severity BIGINT NOT NULL,
    disclosure_days BIGINT NOT NULL CHECK (disclosure_days >= 0),
    counts_days BIGINT NOT NULL CHECK (counts_days BETWEEN 1 AND 1826),
    article TEXT NOT NULL,
    adopted_by TEXT NOT NULL,
    adopted_on TEXT NOT NULL,
    basis TEXT NOT NULL,
    retired BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (code, version)
);

-- Read model of identity's org tree: enough for scope checks.
CREATE TABLE org_nodes (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL
);
CREATE INDEX org_nodes_path ON org_nodes (path);

-- Read model of identity's households and current members.
CREATE TABLE households (
    id TEXT PRIMARY KEY,
    grid_id TEXT NOT NULL,
    active BIGINT NOT NULL
);
CREATE TABLE members (
    household_id TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    PRIMARY KEY (household_id, resident_id)
);
CREATE INDEX members_resident ON members (resident_id);

CREATE TABLE records (
    id TEXT PRIMARY KEY,
    household_id TEXT NOT NULL REFERENCES households (id),
    resident_id TEXT,
    rule_code TEXT NOT NULL,
    rule_version BIGINT NOT NULL,
    points BIGINT NOT NULL CHECK (points <> 0),
    status BIGINT NOT NULL CHECK (status BETWEEN 1 AND 5),
    occurred_at BIGINT NOT NULL,
    place TEXT NOT NULL,
    evidence TEXT NOT NULL,
    note TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    submitted_at BIGINT NOT NULL,
    effective_from BIGINT,
    expires_at BIGINT,
    decision_reason TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL,
    year BIGINT NOT NULL,
    FOREIGN KEY (rule_code, rule_version) REFERENCES rules (code, version),
    UNIQUE (recorded_by, request_id)
);
CREATE INDEX records_household ON records (household_id, submitted_at);
CREATE INDEX records_cap ON records (household_id, rule_code, year);

-- The append-only ledger. Each household's entries form a hash chain: hash covers the entry and
-- the previous entry's hash, so any change to history breaks every later hash.
CREATE TABLE ledger (
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
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX ledger_household ON ledger (household_id, seq);
CREATE UNIQUE INDEX ledger_one_reversal ON ledger (reverses_seq) WHERE reverses_seq IS NOT NULL;
