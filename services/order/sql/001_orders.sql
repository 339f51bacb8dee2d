-- Orders as the order service knows them. items is the list the customer sent (validated),
-- status only moves forward (see events.c).
CREATE TABLE orders (
    id uuid PRIMARY KEY,
    seq bigserial UNIQUE,
    customer_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'SHIPMENT_SCHEDULED',
                                           'DISPATCHED', 'DELIVERED', 'REJECTED', 'CANCELLED')),
    reason text,
    items jsonb NOT NULL,
    total_cents bigint NOT NULL,
    shipping_address jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_status_seq ON orders (status, seq);
CREATE INDEX orders_customer_seq ON orders (customer_id, seq);

-- Idempotency-Key of POST /orders: the same key with the same request returns the same order.
CREATE TABLE idempotency_keys (
    key text PRIMARY KEY,
    request jsonb NOT NULL,
    order_id uuid NOT NULL REFERENCES orders (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
