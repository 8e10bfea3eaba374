-- The audit chain's head row (jiaxin_kit::audit): appends take it with an UPDATE, so concurrent
-- appends queue on its lock instead of each reading the same last hash and forking the chain
-- (which could happen on PostgreSQL under READ COMMITTED). Sequence numbers become gapless and
-- are assigned by the append, not by the database; existing entries are renumbered in order
-- (the hash does not cover seq, so no hash changes).
UPDATE audit_log SET seq = -seq;
UPDATE audit_log AS a SET seq = r.n
FROM (SELECT seq, row_number() OVER (ORDER BY seq DESC) AS n FROM audit_log) AS r
WHERE a.seq = r.seq;

CREATE TABLE audit_head (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL);
INSERT INTO audit_head (id, seq, hash)
SELECT 1, COALESCE(MAX(seq), 0),
       COALESCE((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1),
                '0000000000000000000000000000000000000000000000000000000000000000')
FROM audit_log;
