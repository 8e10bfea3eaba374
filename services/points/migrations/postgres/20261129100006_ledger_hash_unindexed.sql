-- Each entry's hash loses its UNIQUE index. Nothing looks an entry up by its hash (verification
-- recomputes each household's chain in order), and the index put every new entry at a random
-- place in a B-tree as large as the ledger: the costliest write of a batch of records
-- (docs/benchmarks.md).
ALTER TABLE ledger DROP CONSTRAINT ledger_hash_key;
