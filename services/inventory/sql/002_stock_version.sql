-- Stock counters as bigint (shipped only grows), a version per stock row for ETag and
-- If-Match, and a record of every adjustment made with POST /inventory/{sku}/adjust.
ALTER TABLE stock
    ALTER COLUMN available TYPE bigint,
    ALTER COLUMN reserved TYPE bigint,
    ALTER COLUMN shipped TYPE bigint,
    ADD COLUMN version bigint NOT NULL DEFAULT 1;

-- Every write of a stock row moves its version on, whoever writes it (the HTTP API, the
-- reservations of the event handlers), so that an ETag read before any change is stale after.
CREATE FUNCTION stock_next_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER stock_version BEFORE UPDATE ON stock
    FOR EACH ROW EXECUTE FUNCTION stock_next_version();

-- One row per adjustment: why it was made (StockAdjusted carries no reason), the stock it left
-- (replayed as the answer to a retry with the same Idempotency-Key) and its version.
CREATE TABLE stock_adjustments (
    id bigserial PRIMARY KEY,
    sku text NOT NULL,
    delta bigint NOT NULL CHECK (delta <> 0),
    reason text NOT NULL,
    stock jsonb NOT NULL,
    version bigint NOT NULL,
    idempotency_key text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX stock_adjustments_sku ON stock_adjustments (sku, id);
