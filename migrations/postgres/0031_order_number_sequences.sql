-- A store's order numbers come from a sequence of its own (`order_numbers_<tenant id>`,
-- made with the store), taken in the order's INSERT: `nextval` locks nothing and is
-- not undone, so orders of one store are placed side by side without a counter row
-- updated, and committed, before each. Each sequence goes on from the store's counter.
DO $$
DECLARE
    t RECORD;
BEGIN
    FOR t IN SELECT id, order_seq FROM tenants LOOP
        EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I', 'order_numbers_' || t.id);
        IF t.order_seq > 0 THEN
            PERFORM setval(format('%I', 'order_numbers_' || t.id)::regclass, t.order_seq);
        END IF;
    END LOOP;
END
$$;
ALTER TABLE tenants DROP COLUMN order_seq;
