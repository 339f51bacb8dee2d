-- One shipment per order. Its status only moves forward:
-- PENDING -> SCHEDULED -> DISPATCHED -> DELIVERED, and PENDING | SCHEDULED -> CANCELLED.
-- order_seen: OrderPlaced has been applied (items and address are known); the shipment can
-- exist before that when inventory's event overtook the order's.
CREATE TABLE shipments (
    order_id uuid PRIMARY KEY,
    seq bigserial UNIQUE,
    status text NOT NULL CHECK (status IN ('PENDING', 'SCHEDULED', 'DISPATCHED', 'DELIVERED',
                                           'CANCELLED')),
    reason text,
    carrier text,
    tracking_number text,
    eta timestamptz,
    items jsonb NOT NULL DEFAULT '[]',
    shipping_address jsonb,
    order_seen boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shipments_status_seq ON shipments (status, seq);
