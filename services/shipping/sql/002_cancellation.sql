-- Shipping decides cancellation requests. cancellation_refused: why a request was refused (the
-- goods had left), recorded once so that the refusal is emitted once.
ALTER TABLE shipments ADD COLUMN cancellation_refused text;
