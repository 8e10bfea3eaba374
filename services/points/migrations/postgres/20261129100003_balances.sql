-- Maintained figures, so views never compute over all households.

-- Each household's current score, refreshed on every ledger write and by the ticker when an entry
-- starts or stops counting.
CREATE TABLE balances (
    household_id TEXT PRIMARY KEY REFERENCES households (id),
    score BIGINT NOT NULL,
    tier TEXT NOT NULL,
    redeemable BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX balances_score ON balances (score);

-- Points and entries by grid, category and month of taking effect.
CREATE TABLE grid_totals (
    grid_id TEXT NOT NULL,
    category BIGINT NOT NULL,
    month TEXT NOT NULL,
    bonus_points BIGINT NOT NULL DEFAULT 0,
    deduction_points BIGINT NOT NULL DEFAULT 0,
    entries BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (grid_id, category, month)
);

-- How far the ticker has looked for entries starting or stopping to count.
CREATE TABLE ticker (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_tick BIGINT NOT NULL
);

CREATE INDEX ledger_effective ON ledger (effective_from);
CREATE INDEX ledger_expires ON ledger (expires_at);
CREATE INDEX ledger_resident ON ledger (resident_id) WHERE resident_id <> '';

ALTER TABLE org_nodes ADD COLUMN kind BIGINT NOT NULL DEFAULT 0;
