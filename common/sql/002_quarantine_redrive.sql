-- Outbox rows the broker can never take (too large, invalid, not authorised, no such topic):
-- the relay moves them here with the reason instead of retrying them for ever, so that the
-- rows behind them go on. An operator fixes the cause and moves a row back with
--   WITH q AS (DELETE FROM outbox_quarantine WHERE id = <id> RETURNING *)
--   INSERT INTO outbox (topic, key, value, headers) SELECT topic, key, value, headers FROM q;
CREATE TABLE outbox_quarantine (
    id bigint PRIMARY KEY,
    topic text NOT NULL,
    key bytea,
    value bytea NOT NULL,
    headers jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL
);

-- Housekeeping purges processed event ids by age.
CREATE INDEX processed_events_at ON processed_events (processed_at);

-- dead_lettered: the event was dead-lettered, not applied. A redriven copy of it (header
-- redriven_from) may then claim it once; a redelivered one is still skipped.
ALTER TABLE processed_events ADD COLUMN dead_lettered boolean NOT NULL DEFAULT false;
