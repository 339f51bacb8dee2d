-- Transactional outbox: events written in the same transaction as the state they describe,
-- published to Kafka by the relay and deleted once the broker acknowledged them.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    key bytea,
    value bytea NOT NULL,
    -- [{"k": name, "v": text} or {"k": name, "x": hex} for values that are not text]
    headers jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Idempotent consumers: an event's id is recorded in the transaction that applies its effect.
CREATE TABLE processed_events (
    consumer text NOT NULL,
    event_id text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
