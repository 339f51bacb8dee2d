-- Long polls (GET /orders/{id}?wait_for=...) wait without a thread until their order changes.
-- The change may be made by any replica's consumer, so the database announces it: every status
-- change notifies "order_status" with the order id, delivered at commit to each replica's
-- LISTEN connection (common/src/waiters.c). A notification is only a hint: waiters read again.
CREATE FUNCTION orders_notify_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_status', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_status_notify
    AFTER UPDATE OF status ON orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION orders_notify_status();
