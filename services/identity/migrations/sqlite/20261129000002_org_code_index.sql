-- The import looks grids up by their administrative code.
CREATE INDEX org_nodes_code ON org_nodes (code) WHERE code <> '';
