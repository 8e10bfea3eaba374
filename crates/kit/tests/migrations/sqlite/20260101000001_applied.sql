-- What the test consumer applied, in order.
CREATE TABLE applied (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    label TEXT NOT NULL
);
