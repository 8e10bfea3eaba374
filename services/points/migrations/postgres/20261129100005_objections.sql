-- A record the household objected to (异议) is frozen: an opposite entry stops it counting until
-- the council re-reviews it.
ALTER TABLE records ADD COLUMN frozen BIGINT NOT NULL DEFAULT 0;
