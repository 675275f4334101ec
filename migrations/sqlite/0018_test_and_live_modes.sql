-- Test and live modes (docs/payments.md). Every API key, license pool and event belongs
-- to one world; orders already carry theirs (test_mode). What existed before is live,
-- except what the sandbox touched: orders placed or paid with the test card stay test
-- orders, and their events test events.
ALTER TABLE api_keys ADD COLUMN livemode INTEGER NOT NULL DEFAULT 1;
ALTER TABLE license_pools ADD COLUMN livemode INTEGER NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN livemode INTEGER NOT NULL DEFAULT 1;
UPDATE events SET livemode = 0
 WHERE order_id IN (SELECT o.id FROM orders o WHERE o.tenant_id = events.tenant_id AND o.test_mode = 1);
CREATE INDEX orders_by_mode ON orders (tenant_id, test_mode, id);
CREATE INDEX events_by_mode ON events (tenant_id, livemode, id);
