-- The kit's tables, present in every service's schema. See the SQLite twin for the reasons.

CREATE TABLE kit_outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    envelope BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX kit_outbox_unsent ON kit_outbox (seq) WHERE sent_at IS NULL;

CREATE TABLE kit_inbox (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE kit_dead_letters (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    envelope BYTEA NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL CHECK (attempts > 0),
    parked_at BIGINT NOT NULL,
    replayed_at BIGINT,
    UNIQUE (consumer, event_id)
);
