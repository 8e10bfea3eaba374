-- The kit's tables, present in every service's database.

-- Events written in the same transaction as the state change they describe; the relay publishes
-- them in seq order and sets sent_at only once the bus has acknowledged them.
CREATE TABLE kit_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    envelope BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX kit_outbox_unsent ON kit_outbox (seq) WHERE sent_at IS NULL;

-- Event ids a consumer has applied, written in the same transaction as the effect.
CREATE TABLE kit_inbox (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Events whose handler kept failing, parked so they do not stall the consumer.
CREATE TABLE kit_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    envelope BLOB NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL CHECK (attempts > 0),
    parked_at BIGINT NOT NULL,
    replayed_at BIGINT,
    UNIQUE (consumer, event_id)
);
