-- Each household's chain head: how many entries its chain has and the hash of the last, moved in
-- the transaction of every append. The links between entries show a changed, removed or moved
-- entry inside a chain, but not a chain cut short: removing a household's last entries (or all
-- of them) leaves a shorter chain that is intact. Verification compares the chain's end with the
-- head; and new entries chain after the head, not after whatever entry is last in the table, so
-- such a removal stays visible after later appends. (A count, not the last entry's seq: a batch
-- of records appends with one multi-row INSERT that returns nothing; having it return every seq
-- cost the intake about a tenth of its rate, docs/benchmarks.md.)
CREATE TABLE ledger_heads (
    household_id TEXT PRIMARY KEY,
    entries BIGINT NOT NULL,
    hash TEXT NOT NULL
);
-- The heads of the chains already written.
INSERT INTO ledger_heads (household_id, entries, hash)
SELECT l.household_id, c.entries, l.hash
FROM ledger l
JOIN (SELECT MAX(seq) AS last, COUNT(*) AS entries FROM ledger GROUP BY household_id) c ON l.seq = c.last;
