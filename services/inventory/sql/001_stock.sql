-- Stock per SKU. available + reserved + shipped only changes through PUT /inventory (a
-- StockAdjusted event); reservations move units between the three columns.
CREATE TABLE stock (
    sku text PRIMARY KEY,
    seq bigserial UNIQUE,
    name text NOT NULL,
    available integer NOT NULL CHECK (available >= 0),
    reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    shipped integer NOT NULL DEFAULT 0 CHECK (shipped >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- What inventory decided for each order: all items reserved, or the order rejected; then
-- released (cancelled) or shipped (dispatched). items: [{"sku", "quantity"}] per distinct SKU.
CREATE TABLE reservations (
    order_id uuid PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('RESERVED', 'REJECTED', 'RELEASED', 'SHIPPED')),
    items jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
