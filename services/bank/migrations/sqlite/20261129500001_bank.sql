-- Bank: institutions, branches, products, consents and their queries, loan events, the audit
-- log, and read models of identity (org tree, households, members), pledges, points (standing,
-- score history, records by category) and benefits (credit households).

CREATE TABLE org_nodes (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    kind BIGINT NOT NULL
);
CREATE INDEX org_nodes_path ON org_nodes (path);

CREATE TABLE households (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    head_resident_id TEXT NOT NULL,
    dissolved BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX households_path ON households (path);

CREATE TABLE memberships (
    household_id TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    current BIGINT NOT NULL DEFAULT 1,
    -- YYYY-MM-DD from identity, to tell adults from minors.
    birth_date TEXT NOT NULL DEFAULT '',
    -- 1 when the head authorised this adult member to grant and revoke consents.
    authorised BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (household_id, resident_id)
);
CREATE INDEX memberships_resident ON memberships (resident_id);

CREATE TABLE standings (
    household_id TEXT PRIMARY KEY,
    score BIGINT NOT NULL,
    tier TEXT NOT NULL,
    as_of BIGINT,
    pledged_at BIGINT,
    revoked_at BIGINT,
    -- The year of the latest published evaluation that named it a credit household (0: none).
    credit_household_year BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE score_history (
    household_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    score BIGINT NOT NULL,
    tier TEXT NOT NULL,
    PRIMARY KEY (household_id, at)
);

-- Records as points published them: category and class, and the window they count in.
CREATE TABLE records (
    id TEXT PRIMARY KEY,
    household_id TEXT NOT NULL,
    category BIGINT NOT NULL,
    severity BIGINT NOT NULL,
    bonus BIGINT NOT NULL,
    effective_from BIGINT,
    expires_at BIGINT,
    reversed BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX records_household ON records (household_id);

CREATE TABLE institutions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE officers (
    institution_id TEXT NOT NULL REFERENCES institutions (id),
    account_id TEXT NOT NULL,
    PRIMARY KEY (institution_id, account_id)
);
CREATE INDEX officers_account ON officers (account_id);

CREATE TABLE branches (
    id TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL REFERENCES institutions (id),
    name TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE branch_villages (
    branch_id TEXT NOT NULL REFERENCES branches (id),
    village_id TEXT NOT NULL,
    PRIMARY KEY (branch_id, village_id)
);

CREATE TABLE branch_officers (
    branch_id TEXT NOT NULL REFERENCES branches (id),
    account_id TEXT NOT NULL,
    PRIMARY KEY (branch_id, account_id)
);

CREATE TABLE products (
    id TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL REFERENCES institutions (id),
    name TEXT NOT NULL,
    purpose TEXT NOT NULL,
    -- tier=limit_fen pairs, comma separated, highest tier first.
    limits TEXT NOT NULL,
    term_months BIGINT NOT NULL,
    rate_note TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX products_institution ON products (institution_id);

CREATE TABLE consents (
    id TEXT PRIMARY KEY,
    household_id TEXT NOT NULL,
    institution_id TEXT NOT NULL REFERENCES institutions (id),
    purpose BIGINT NOT NULL CHECK (purpose BETWEEN 1 AND 3),
    valid_until TEXT NOT NULL,
    channel BIGINT NOT NULL CHECK (channel IN (1, 2)),
    scan_reference TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    entered_by TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX consents_household ON consents (household_id);
CREATE INDEX consents_institution ON consents (institution_id, purpose);

-- Every query under a consent: what the household sees of who looked.
CREATE TABLE consent_queries (
    id TEXT PRIMARY KEY,
    consent_id TEXT NOT NULL REFERENCES consents (id),
    institution_id TEXT NOT NULL,
    officer_account_id TEXT NOT NULL,
    purpose BIGINT NOT NULL,
    at BIGINT NOT NULL,
    returned TEXT NOT NULL
);
CREATE INDEX consent_queries_consent ON consent_queries (consent_id, at);

-- Agricultural businesses (新型农业经营主体) linked to households.
CREATE TABLE businesses (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind BIGINT NOT NULL CHECK (kind BETWEEN 1 AND 3),
    household_id TEXT NOT NULL,
    credit_code TEXT NOT NULL,
    scale_mu BIGINT NOT NULL CHECK (scale_mu >= 0),
    registered_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX businesses_household ON businesses (household_id);

CREATE TABLE loan_events (
    id TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL,
    household_id TEXT NOT NULL,
    loan_ref TEXT NOT NULL,
    kind BIGINT NOT NULL CHECK (kind BETWEEN 1 AND 5),
    amount_fen BIGINT NOT NULL CHECK (amount_fen >= 0),
    occurred_on TEXT NOT NULL,
    reported_by TEXT NOT NULL,
    reported_at BIGINT NOT NULL,
    client_key TEXT NOT NULL,
    -- '' for the household's own line; a business's id for the business's.
    business_id TEXT NOT NULL DEFAULT '',
    UNIQUE (reported_by, client_key)
);
CREATE INDEX loan_events_household ON loan_events (household_id);

-- The hash-chained audit log (jiaxin_kit::audit): every report and pre-approval.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL,
    -- One successor per entry: a forked chain cannot be written.
    prev_hash TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL
);
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
