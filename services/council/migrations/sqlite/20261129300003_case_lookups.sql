-- A record's objections and repairs are read by record whenever one is filed (is one open, was
-- the record reversed or repaired already). The partial unique indexes cover open cases only, so
-- each filing read the whole table: found by the demo's query-plan test
-- (tests/system/query_plans.rs), at the crash campaign's 17,000 objections a scan per filing.
CREATE INDEX objections_record ON objections (record_id, filed_at);
CREATE INDEX repairs_record ON repairs (record_id, applied_at);
