-- Benefits (PostgreSQL twin): providers and the benefit catalogue, redemptions, annual honours, the audit log,
-- and read models of identity (org tree, households, members), pledges and points (standing).

CREATE TABLE org_nodes (
    id TEXT PRIMARY KEY,
    path TEXT COLLATE "C" NOT NULL,
    kind BIGINT NOT NULL
);
CREATE INDEX org_nodes_path ON org_nodes (path);

CREATE TABLE households (
    id TEXT PRIMARY KEY,
    -- Org path root first, down to the grid; the village is the grid's parent.
    path TEXT COLLATE "C" NOT NULL,
    dissolved BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX households_path ON households (path);

CREATE TABLE memberships (
    household_id TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    current BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (household_id, resident_id)
);
CREATE INDEX memberships_resident ON memberships (resident_id);

-- Each household's standing as points last published it, with what was spent here. A row
-- exists once any event about the household arrived; none means the base standing.
CREATE TABLE standings (
    household_id TEXT PRIMARY KEY,
    score BIGINT NOT NULL,
    tier TEXT NOT NULL,
    redeemable_earned BIGINT NOT NULL DEFAULT 0,
    redeemable_spent BIGINT NOT NULL DEFAULT 0 CHECK (redeemable_spent >= 0),
    -- When points' change took effect; NULL while at the base.
    as_of BIGINT,
    pledged_at BIGINT,
    revoked_at BIGINT
);

-- Every score change, by points' clock: the standing as of any moment (disputes, the year).
CREATE TABLE score_history (
    household_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    score BIGINT NOT NULL,
    tier TEXT NOT NULL,
    PRIMARY KEY (household_id, at)
);

-- Serious deductions (from points' record events), for the credit-household criterion.
CREATE TABLE serious_deductions (
    record_id TEXT PRIMARY KEY,
    household_id TEXT NOT NULL,
    effective_from BIGINT,
    expires_at BIGINT,
    reversed_at BIGINT
);
CREATE INDEX serious_deductions_household ON serious_deductions (household_id);

-- Loans the bank reported (from its events), for a village's non-performing ratio: disbursed,
-- and whether the latest outcome is overdue or written off.
CREATE TABLE loans (
    institution_id TEXT NOT NULL,
    loan_ref TEXT NOT NULL,
    household_id TEXT NOT NULL,
    disbursed BIGINT NOT NULL DEFAULT 0,
    bad BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (institution_id, loan_ref)
);
CREATE INDEX loans_household ON loans (household_id);

CREATE TABLE providers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind BIGINT NOT NULL CHECK (kind IN (1, 2)),
    org_node_id TEXT NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE provider_accounts (
    provider_id TEXT NOT NULL REFERENCES providers (id),
    account_id TEXT NOT NULL,
    PRIMARY KEY (provider_id, account_id)
);
CREATE INDEX provider_accounts_account ON provider_accounts (account_id);

CREATE TABLE benefits (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    scene BIGINT NOT NULL CHECK (scene BETWEEN 1 AND 7),
    kind BIGINT NOT NULL CHECK (kind BETWEEN 1 AND 4),
    provider_id TEXT NOT NULL REFERENCES providers (id),
    org_node_id TEXT NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    min_tier TEXT NOT NULL,
    min_score BIGINT NOT NULL,
    policy_basis TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    cost_points BIGINT NOT NULL CHECK (cost_points >= 0),
    stock BIGINT NOT NULL CHECK (stock >= 0),
    stock_left BIGINT NOT NULL CHECK (stock_left >= 0),
    per_household_yearly BIGINT NOT NULL CHECK (per_household_yearly >= 0),
    retired BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
CREATE INDEX benefits_provider ON benefits (provider_id);
CREATE INDEX benefits_path ON benefits (path);

CREATE TABLE redemptions (
    id TEXT PRIMARY KEY,
    benefit_id TEXT NOT NULL REFERENCES benefits (id),
    household_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity >= 1),
    points BIGINT NOT NULL CHECK (points >= 0),
    -- RedemptionStatus: 1 redeemed, 2 cancelled.
    status BIGINT NOT NULL CHECK (status IN (1, 2)),
    client_key TEXT NOT NULL,
    redeemed_by TEXT NOT NULL,
    redeemed_at BIGINT NOT NULL,
    -- The calendar year (China time) it counts against the per-household limit.
    year BIGINT NOT NULL,
    cancelled_by TEXT NOT NULL DEFAULT '',
    cancelled_at BIGINT,
    cancel_reason TEXT NOT NULL DEFAULT '',
    UNIQUE (redeemed_by, client_key)
);
CREATE INDEX redemptions_household ON redemptions (household_id, redeemed_at);

CREATE TABLE evaluations (
    id TEXT PRIMARY KEY,
    year BIGINT NOT NULL,
    org_node_id TEXT NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    -- EvaluationStatus: 1 draft, 2 published.
    status BIGINT NOT NULL,
    households BIGINT NOT NULL,
    credit_households BIGINT NOT NULL,
    villages BIGINT NOT NULL,
    credit_villages BIGINT NOT NULL,
    criteria TEXT NOT NULL,
    computed_at BIGINT NOT NULL,
    published_by TEXT NOT NULL DEFAULT '',
    published_at BIGINT,
    UNIQUE (year, org_node_id)
);

CREATE TABLE honour_households (
    evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
    household_id TEXT NOT NULL,
    village_id TEXT NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    honoured BIGINT NOT NULL,
    -- The lowest tier held during the year, whether a serious deduction counted, whether the
    -- pledge was in force at the year's end, the score at the year's end.
    lowest_tier TEXT NOT NULL,
    serious BIGINT NOT NULL,
    pledged BIGINT NOT NULL,
    score_end BIGINT NOT NULL,
    PRIMARY KEY (evaluation_id, household_id)
);
CREATE INDEX honour_households_path ON honour_households (evaluation_id, path);

CREATE TABLE honour_villages (
    evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
    village_id TEXT NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    households BIGINT NOT NULL,
    pledged BIGINT NOT NULL,
    credit_households BIGINT NOT NULL,
    average_score BIGINT NOT NULL,
    loans BIGINT NOT NULL,
    bad_loans BIGINT NOT NULL,
    honoured BIGINT NOT NULL,
    PRIMARY KEY (evaluation_id, village_id)
);
CREATE INDEX honour_villages_path ON honour_villages (evaluation_id, path);

-- The hash-chained audit log (jiaxin_kit::audit): every eligibility check and catalogue change.
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
