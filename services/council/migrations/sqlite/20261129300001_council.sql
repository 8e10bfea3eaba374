-- Council: councils and members, review tasks and votes, the audit log, and read models of
-- identity (org tree, households, membership history for recusal).

CREATE TABLE org_nodes (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    kind BIGINT NOT NULL
);
CREATE INDEX org_nodes_path ON org_nodes (path);

CREATE TABLE households (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL
);

-- Every (household, resident) that ever was: recusal looks at family ties through history.
CREATE TABLE memberships (
    household_id TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    -- 1 while the resident belongs to the household (who may object or apply for repair).
    current BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (household_id, resident_id)
);
CREATE INDEX memberships_resident ON memberships (resident_id);

CREATE TABLE councils (
    id TEXT PRIMARY KEY,
    org_node_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    quorum BIGINT NOT NULL CHECK (quorum >= 1),
    majority_permille BIGINT NOT NULL CHECK (majority_permille BETWEEN 501 AND 1000),
    review_days BIGINT NOT NULL CHECK (review_days BETWEEN 1 AND 60),
    -- Days after a deduction takes effect before repair may be applied for, by severity class.
    repair_wait_days_minor BIGINT NOT NULL,
    repair_wait_days_general BIGINT NOT NULL,
    repair_wait_days_serious BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- When each household last signed its pledge (from pledges' events): repair needs a fresh one.
CREATE TABLE household_pledges (
    household_id TEXT PRIMARY KEY,
    signed_at BIGINT NOT NULL
);

CREATE TABLE council_members (
    council_id TEXT NOT NULL REFERENCES councils (id),
    account_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    kind BIGINT NOT NULL CHECK (kind BETWEEN 1 AND 4),
    term_from TEXT NOT NULL,
    term_to TEXT NOT NULL,
    PRIMARY KEY (council_id, account_id)
);

-- What the council decides by vote: a record's review (one per record), an objection's
-- re-review, a repair application. Each carries the record as points published it.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    -- TaskKind: 1 review, 2 objection, 3 repair; case_id names the objection or repair.
    kind BIGINT NOT NULL CHECK (kind IN (1, 2, 3)),
    case_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    household_id TEXT NOT NULL,
    -- The household's grid path when the task opened.
    path TEXT NOT NULL,
    record BLOB NOT NULL,
    recorded_by TEXT NOT NULL,
    rule_code TEXT NOT NULL,
    points BIGINT NOT NULL,
    points_min BIGINT NOT NULL,
    points_max BIGINT NOT NULL,
    disclosure_days BIGINT NOT NULL,
    severity BIGINT NOT NULL,
    -- TaskStatus: 1 open, 2 decided.
    status BIGINT NOT NULL CHECK (status IN (1, 2)),
    opened_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    reminded BIGINT NOT NULL DEFAULT 0,
    outcome BIGINT NOT NULL DEFAULT 0,
    amended_points BIGINT NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    decided_at BIGINT,
    disclosed_until BIGINT,
    disclosure_closed BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX tasks_review_once ON tasks (record_id) WHERE kind = 1;
CREATE INDEX tasks_record ON tasks (record_id);
CREATE INDEX tasks_path ON tasks (path, id);
CREATE INDEX tasks_household ON tasks (household_id, opened_at);
CREATE INDEX tasks_due ON tasks (status, due_at);
CREATE INDEX tasks_disclosure ON tasks (disclosure_closed, disclosed_until);

CREATE TABLE votes (
    task_id TEXT NOT NULL REFERENCES tasks (id),
    account_id TEXT NOT NULL,
    choice BIGINT NOT NULL CHECK (choice BETWEEN 1 AND 3),
    amended_points BIGINT NOT NULL,
    reason TEXT NOT NULL,
    cast_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, account_id)
);

-- Objections (异议): one open per record; answered within 20 days or escalated to the town.
CREATE TABLE objections (
    id TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    household_id TEXT NOT NULL,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    filed_by TEXT NOT NULL,
    filed_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    escalated BIGINT NOT NULL DEFAULT 0,
    task_id TEXT NOT NULL,
    -- CaseStatus: 1 open, 2 resolved; outcome is ObjectionOutcome.
    status BIGINT NOT NULL CHECK (status IN (1, 2)),
    outcome BIGINT NOT NULL DEFAULT 0,
    amended_points BIGINT NOT NULL DEFAULT 0,
    resolved_at BIGINT
);
CREATE UNIQUE INDEX objections_one_open ON objections (record_id) WHERE status = 1;
CREATE INDEX objections_path ON objections (path, id);
CREATE INDEX objections_due ON objections (status, escalated, due_at);

-- Credit repair (信用修复) applications: one open per record.
CREATE TABLE repairs (
    id TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    household_id TEXT NOT NULL,
    statement TEXT NOT NULL,
    evidence TEXT NOT NULL,
    applied_by TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    task_id TEXT NOT NULL,
    status BIGINT NOT NULL CHECK (status IN (1, 2)),
    approved BIGINT NOT NULL DEFAULT 0,
    decided_at BIGINT
);
CREATE UNIQUE INDEX repairs_one_open ON repairs (record_id) WHERE status = 1;

-- Append-only; each entry's hash covers it and the previous hash.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
