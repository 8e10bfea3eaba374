-- What the test consumer applied, in order.
CREATE TABLE applied (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    label TEXT NOT NULL
);
