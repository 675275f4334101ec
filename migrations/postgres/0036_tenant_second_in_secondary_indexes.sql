-- PostgreSQL plans a prepared statement (sqlx prepares each query once per connection)
-- and a foreign key's check (`SELECT 1 FROM ONLY orders x WHERE tenant_id = $1 AND id =
-- $2 FOR KEY SHARE`) for the connection's life once it settles on a generic plan. While
-- a table is new and has no statistics, every index that begins with `tenant_id` costs
-- the same for such a query as the one that fits it, and the planner took the wrong
-- one: `orders_by_mode` for the checks (each then read every order of the store: 45
-- buffers a check in a 5 s benchmark, six checks per order placed), the primary key
-- for an order's payments. So in every secondary index of the busy tables `tenant_id`
-- comes after what narrows the index: the queries give both, so each is served as
-- before, and the index that fits a query is the only one whose first column it names.
-- Unique keys change their order too (`ON CONFLICT` names a set of columns, not an order).
DROP INDEX orders_by_mode;
CREATE INDEX orders_by_mode ON orders (test_mode, tenant_id, id);
DROP INDEX orders_by_status;
CREATE INDEX orders_by_status ON orders (status, tenant_id, id DESC);
DROP INDEX orders_by_email;
CREATE INDEX orders_by_email ON orders (email, tenant_id);
DROP INDEX orders_coupon_holds;
CREATE INDEX orders_coupon_holds ON orders (coupon_code, tenant_id, coupon_held_until)
    WHERE coupon_code IS NOT NULL AND status = 'not_paid';
ALTER TABLE orders DROP CONSTRAINT orders_tenant_id_number_key;
ALTER TABLE orders ADD CONSTRAINT orders_number_key UNIQUE (number, tenant_id);

DROP INDEX events_by_order;
CREATE INDEX events_by_order ON events (order_id, tenant_id);
DROP INDEX events_by_mode;
CREATE INDEX events_by_mode ON events (livemode, tenant_id, id);

DROP INDEX webhook_endpoints_by_mode;
CREATE INDEX webhook_endpoints_by_mode ON webhook_endpoints (livemode, tenant_id, id);

DROP INDEX webhook_deliveries_by_endpoint;
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, tenant_id, id);
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_tenant_id_endpoint_id_event_id_key;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_once
    UNIQUE (endpoint_id, event_id, tenant_id);

DROP INDEX webhook_attempts_by_delivery;
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, tenant_id, attempt);
DROP INDEX webhook_attempts_by_event;
CREATE INDEX webhook_attempts_by_event ON webhook_attempts (event_id, tenant_id);

DROP INDEX order_lines_waiting;
CREATE INDEX order_lines_waiting ON order_lines (pool_id, delivery_status, tenant_id);

DROP INDEX emails_by_order;
CREATE INDEX emails_by_order ON emails (order_id, tenant_id);
ALTER TABLE emails DROP CONSTRAINT emails_tenant_id_dedupe_key_key;
ALTER TABLE emails ADD CONSTRAINT emails_once UNIQUE (dedupe_key, tenant_id);

DROP INDEX payments_by_order;
CREATE INDEX payments_by_order ON payments (order_id, tenant_id);
DROP INDEX payments_by_reference;
CREATE INDEX payments_by_reference ON payments (reference, tenant_id);
DROP INDEX payments_by_charge;
CREATE INDEX payments_by_charge ON payments (charge_reference, tenant_id)
    WHERE charge_reference IS NOT NULL;

DROP INDEX refunds_by_order;
CREATE INDEX refunds_by_order ON refunds (order_id, tenant_id, id);
DROP INDEX refunds_by_reference;
CREATE UNIQUE INDEX refunds_by_reference ON refunds (reference, tenant_id)
    WHERE reference IS NOT NULL;

DROP INDEX provider_events_by_order;
CREATE INDEX provider_events_by_order ON provider_events (order_id, tenant_id);

DROP INDEX license_keys_available;
CREATE INDEX license_keys_available ON license_keys (pool_id, status, tenant_id, id);
DROP INDEX license_keys_by_line;
CREATE INDEX license_keys_by_line ON license_keys (order_id, line_no, tenant_id);
ALTER TABLE license_keys DROP CONSTRAINT license_keys_tenant_id_pool_id_value_key;
ALTER TABLE license_keys ADD CONSTRAINT license_keys_once UNIQUE (pool_id, value, tenant_id);
