-- Village-local rules: the org node a rule applies under ('' for the whole deployment).
ALTER TABLE rules ADD COLUMN scope_node_id TEXT NOT NULL DEFAULT '';
