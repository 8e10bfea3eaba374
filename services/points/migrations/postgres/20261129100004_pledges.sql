-- Whether each household's records count, from pledges' events (kept apart from the households
-- read model: identity's and pledges' events arrive on different topics, in either order).
CREATE TABLE pledges (
    household_id TEXT PRIMARY KEY,
    -- PledgeStatus: 2 in force, 3 revoked.
    status BIGINT NOT NULL CHECK (status IN (2, 3)),
    since BIGINT NOT NULL
);

-- Records gain status 6 (held until the household's pledge) and remember whether the council
-- must review them once released.
ALTER TABLE records DROP CONSTRAINT records_status_check;
ALTER TABLE records ADD CONSTRAINT records_status_check CHECK (status BETWEEN 1 AND 6);
ALTER TABLE records ADD COLUMN needs_review BIGINT NOT NULL DEFAULT 0;
CREATE INDEX records_by_status ON records (household_id, status);
