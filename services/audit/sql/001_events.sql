-- Every record of the topics audit follows, once. event_id is the event's own id; records that
-- carry none (undecodable ones, dead letters) get one made of where they were read:
-- "<topic>/<partition>/<offset>".
CREATE TABLE events (
    seq bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    type text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    key text,
    order_id text,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    producer text,
    headers jsonb NOT NULL,
    data jsonb,
    raw bytea NOT NULL
);
CREATE INDEX events_occurred ON events (occurred_at, seq);
CREATE INDEX events_order ON events (order_id, occurred_at, seq);
CREATE INDEX events_type ON events (type, occurred_at, seq);
