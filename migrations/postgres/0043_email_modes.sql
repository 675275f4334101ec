-- An email belongs to one mode's world, like the order, pool or webhook endpoint it is
-- about (issue 12's leftovers, docs/payments.md "Test and live"). The outbox listed an
-- email about no order (a webhook endpoint disabled) to both modes' keys, so a test key
-- read a live endpoint's URL in it. Now each email keeps its mode and the outbox lists
-- only the reader's. Existing emails take their order's mode, or for one about no
-- order, the mode of the pool or endpoint its key names (`pool_low:<id>:…`,
-- `endpoint_disabled:<id>:…`); the rest stay live.
ALTER TABLE emails ADD COLUMN livemode boolean NOT NULL DEFAULT true;
UPDATE emails SET livemode = false
 WHERE order_id IS NOT NULL AND EXISTS (
       SELECT 1 FROM orders o WHERE o.tenant_id = emails.tenant_id
          AND o.id = emails.order_id AND o.test_mode);
UPDATE emails SET livemode = false
 WHERE order_id IS NULL AND kind = 'endpoint_disabled' AND EXISTS (
       SELECT 1 FROM webhook_endpoints e WHERE e.tenant_id = emails.tenant_id
          AND NOT e.livemode AND emails.dedupe_key LIKE 'endpoint_disabled:' || e.id || ':%');
UPDATE emails SET livemode = false
 WHERE order_id IS NULL AND kind = 'pool_low' AND EXISTS (
       SELECT 1 FROM license_pools p WHERE p.tenant_id = emails.tenant_id
          AND NOT p.livemode AND emails.dedupe_key LIKE 'pool_low:' || p.id || ':%');
