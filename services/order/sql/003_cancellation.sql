-- Cancellation as a saga: the order is CANCELLING until shipping decides. cancellation_*
-- records the customer's request and shipping's answer (accepted, refused with a reason).
-- shipment_cancelled: a ShipmentCancelled was seen (e.g. stock rejected before the customer
-- asked), so a later cancel needs no answer from shipping.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('PENDING', 'CONFIRMED', 'SHIPMENT_SCHEDULED', 'CANCELLING', 'DISPATCHED',
                      'DELIVERED', 'REJECTED', 'CANCELLED'));
ALTER TABLE orders
    ADD COLUMN cancellation_status text
        CHECK (cancellation_status IN ('requested', 'accepted', 'refused')),
    ADD COLUMN cancellation_reason text,
    ADD COLUMN cancellation_requested_at timestamptz,
    ADD COLUMN shipment_cancelled boolean NOT NULL DEFAULT false;
