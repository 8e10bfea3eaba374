-- Pledges (PostgreSQL twin): templates and their versions, signatures, campaigns, read models of
-- identity, and the maintained coverage aggregates.

-- Read model of identity's org tree (paths are '/root/…/id/').
CREATE TABLE org_nodes (
    id TEXT PRIMARY KEY,
    parent_id TEXT NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    kind BIGINT NOT NULL
);
CREATE INDEX org_nodes_parent ON org_nodes (parent_id);
CREATE INDEX org_nodes_path ON org_nodes (path);

-- Read model of identity's households, with where each stands with its village's template.
CREATE TABLE households (
    id TEXT PRIMARY KEY,
    grid_id TEXT NOT NULL,
    -- The grid's path: every node whose coverage counts this household.
    path TEXT COLLATE "C" NOT NULL,
    address TEXT COLLATE "C" NOT NULL,
    head_resident_id TEXT NOT NULL,
    active BIGINT NOT NULL,
    -- PledgeState: 1 unsigned, 2 signed, 3 renewal due, 4 revoked.
    state BIGINT NOT NULL CHECK (state BETWEEN 1 AND 4),
    -- The signature in force, or the last one revoked, and its template and version.
    signature_id TEXT,
    template_id TEXT,
    signed_version BIGINT NOT NULL DEFAULT 0
);
-- The unsigned list: a grid's households by state, door to door.
CREATE INDEX households_visit ON households (grid_id, state, address, id);
CREATE INDEX households_template ON households (template_id, state);
CREATE INDEX households_path ON households (path);

CREATE TABLE members (
    household_id TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    -- YYYY-MM-DD; empty when identity did not say.
    birth_date TEXT NOT NULL,
    PRIMARY KEY (household_id, resident_id)
);

-- Adult members the head has authorised to sign for the household.
CREATE TABLE authorised_signers (
    household_id TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    authorised_by TEXT NOT NULL,
    authorised_at BIGINT NOT NULL,
    PRIMARY KEY (household_id, resident_id)
);

-- Every version of every template; a template belongs to one village or community.
CREATE TABLE templates (
    id TEXT NOT NULL,
    version BIGINT NOT NULL CHECK (version > 0),
    org_node_id TEXT NOT NULL,
    kind BIGINT NOT NULL CHECK (kind IN (1, 2)),
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    consent_clause TEXT NOT NULL,
    effective_on TEXT NOT NULL,
    adopted_by TEXT NOT NULL,
    adopted_on TEXT NOT NULL,
    requires_resign BIGINT NOT NULL,
    published_at BIGINT NOT NULL,
    published_by TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE UNIQUE INDEX templates_node_version ON templates (org_node_id, version);

CREATE TABLE signatures (
    id TEXT PRIMARY KEY,
    household_id TEXT NOT NULL,
    template_id TEXT NOT NULL,
    template_version BIGINT NOT NULL,
    signer_resident_id TEXT NOT NULL,
    channel BIGINT NOT NULL CHECK (channel BETWEEN 1 AND 3),
    scan_reference TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    collected_by TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    -- 1 in force, 2 renewed (a later signature took over), 3 revoked.
    status BIGINT NOT NULL CHECK (status BETWEEN 1 AND 3),
    revoked_at BIGINT,
    revoke_reason TEXT NOT NULL DEFAULT '',
    revoked_by TEXT NOT NULL DEFAULT ''
);
-- One pledge in force per household and template.
CREATE UNIQUE INDEX signatures_in_force ON signatures (household_id, template_id) WHERE status = 1;
CREATE INDEX signatures_household ON signatures (household_id, recorded_at);

CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    moment BIGINT NOT NULL CHECK (moment BETWEEN 1 AND 4),
    starts_on TEXT NOT NULL,
    ends_on TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Signatures collected under the campaign, kept with each signing.
    collected BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE campaign_nodes (
    campaign_id TEXT NOT NULL,
    org_node_id TEXT NOT NULL,
    -- The node's path when the campaign was made, to list campaigns of a subtree.
    path TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (campaign_id, org_node_id)
);
CREATE INDEX campaign_nodes_path ON campaign_nodes (path);

-- Maintained per org node (every node on a household's path): no request counts households.
CREATE TABLE coverage (
    org_node_id TEXT PRIMARY KEY,
    households BIGINT NOT NULL,
    signed BIGINT NOT NULL,
    renewal_due BIGINT NOT NULL,
    revoked BIGINT NOT NULL
);
