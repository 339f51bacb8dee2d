-- /stats from counts kept on insert instead of a scan of events. One row per type, topic and
-- partition: a Kafka partition is consumed by one audit replica at a time, so replicas never
-- wait for each other's counters (a row per type alone would serialise their batches).
CREATE TABLE event_counts (
    type text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    n bigint NOT NULL,
    last_event_at timestamptz NOT NULL,
    last_recorded_at timestamptz NOT NULL,
    PRIMARY KEY (type, topic, partition)
);

CREATE FUNCTION event_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_counts AS c (type, topic, partition, n, last_event_at, last_recorded_at)
    VALUES (NEW.type, NEW.topic, NEW.partition, 1, NEW.occurred_at, NEW.recorded_at)
    ON CONFLICT (type, topic, partition) DO UPDATE
        SET n = c.n + 1,
            last_event_at = greatest(c.last_event_at, EXCLUDED.last_event_at),
            last_recorded_at = greatest(c.last_recorded_at, EXCLUDED.last_recorded_at);
    RETURN NULL;
END $$;

CREATE TRIGGER events_count AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION event_counts_add();

INSERT INTO event_counts (type, topic, partition, n, last_event_at, last_recorded_at)
SELECT type, topic, partition, count(*), max(occurred_at), max(recorded_at)
FROM events GROUP BY type, topic, partition;
