-- The audit log loses the UNIQUE index on prev_hash, where each new entry landed at a random
-- place in a B-tree as large as the log. A fork of the chain stays unwritable: every entry's seq
-- is its predecessor's plus one (jiaxin_kit::audit), so two successors of one entry would share
-- a seq, and seq is the primary key.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_prev_hash_key;
