-- Identity: org tree, households, residents, memberships, accounts, tokens and signing keys.
-- The SQLite twin explains each table; here only the dialect differs.

-- COLLATE "C": subtree queries compare paths bytewise ('/' < '0'), whatever the database locale.
CREATE TABLE org_nodes (
    id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES org_nodes (id),
    kind BIGINT NOT NULL CHECK (kind BETWEEN 1 AND 8),
    name TEXT NOT NULL CHECK (length(name) > 0),
    code TEXT NOT NULL DEFAULT '',
    path TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    UNIQUE (parent_id, name)
);
CREATE INDEX org_nodes_children ON org_nodes (parent_id, id);
CREATE INDEX org_nodes_code ON org_nodes (code) WHERE code <> '';

CREATE TABLE households (
    id TEXT PRIMARY KEY,
    grid_id TEXT NOT NULL REFERENCES org_nodes (id),
    address TEXT NOT NULL,
    head_resident_id TEXT,
    status BIGINT NOT NULL CHECK (status IN (1, 2)),
    created_at BIGINT NOT NULL,
    dissolved_at BIGINT
);
CREATE INDEX households_grid ON households (grid_id, id);

CREATE TABLE residents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    gender BIGINT NOT NULL,
    birth_date TEXT NOT NULL,
    id_number_ct BYTEA NOT NULL,
    id_number_bidx TEXT NOT NULL UNIQUE,
    id_number_masked TEXT NOT NULL,
    phone_ct BYTEA,
    phone_masked TEXT NOT NULL DEFAULT '',
    death_date TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents (id),
    household_id TEXT NOT NULL REFERENCES households (id),
    relation BIGINT NOT NULL,
    joined_at BIGINT NOT NULL,
    join_reason BIGINT NOT NULL,
    left_at BIGINT,
    leave_reason BIGINT
);
CREATE UNIQUE INDEX memberships_current ON memberships (resident_id) WHERE left_at IS NULL;
CREATE INDEX memberships_household ON memberships (household_id, left_at);
CREATE INDEX memberships_resident ON memberships (resident_id, joined_at);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    roles TEXT NOT NULL,
    org_node_id TEXT NOT NULL REFERENCES org_nodes (id),
    resident_id TEXT REFERENCES residents (id),
    service_account BIGINT NOT NULL DEFAULT 0,
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX accounts_org ON accounts (org_node_id, id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL,
    private_key_ct BYTEA NOT NULL,
    active BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (active) WHERE active = 1;

CREATE TABLE idempotency_keys (
    operation TEXT NOT NULL,
    request_id TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    result_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (operation, request_id)
);
