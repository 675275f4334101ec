-- An email belongs to one mode's world, like the order, pool or webhook endpoint it is
-- about; see the PostgreSQL migration of the same number.
ALTER TABLE emails ADD COLUMN livemode INTEGER NOT NULL DEFAULT 1;
UPDATE emails SET livemode = 0
 WHERE order_id IS NOT NULL AND EXISTS (
       SELECT 1 FROM orders o WHERE o.tenant_id = emails.tenant_id
          AND o.id = emails.order_id AND o.test_mode = 1);
UPDATE emails SET livemode = 0
 WHERE order_id IS NULL AND kind = 'endpoint_disabled' AND EXISTS (
       SELECT 1 FROM webhook_endpoints e WHERE e.tenant_id = emails.tenant_id
          AND e.livemode = 0 AND emails.dedupe_key LIKE 'endpoint_disabled:' || e.id || ':%');
UPDATE emails SET livemode = 0
 WHERE order_id IS NULL AND kind = 'pool_low' AND EXISTS (
       SELECT 1 FROM license_pools p WHERE p.tenant_id = emails.tenant_id
          AND p.livemode = 0 AND emails.dedupe_key LIKE 'pool_low:' || p.id || ':%');
