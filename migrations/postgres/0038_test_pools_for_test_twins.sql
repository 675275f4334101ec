-- The test twin of a product delivered from a pool gets a test pool of its own (issue
-- 12, docs/payments.md "Existing catalog").
--
-- Migration 0033 gave every product a test twin with the same id and fields, and
-- pools no twins (0018 made every existing pool live), so the twin of a product
-- delivered from a pool named a live pool: its test orders failed their line ("a test
-- mode order takes no keys from a live mode license pool") until the merchant gave it
-- a test pool. Now each live pool such a twin names gets an empty test twin (a new
-- `lpl_…` id with the live pool's time part, its name, threshold and setting), the
-- twin is delivered from it, and test order lines not delivered yet that named the
-- live pool name it instead: a test order waits for test stock, and is delivered once
-- the merchant adds test keys. Written so that running it again changes nothing more.
CREATE TEMP TABLE pool_twins_0038 (
    tenant_id  text NOT NULL,
    live_id    text NOT NULL,
    test_id    text NOT NULL,
    PRIMARY KEY (tenant_id, live_id)
);
INSERT INTO pool_twins_0038 (tenant_id, live_id, test_id)
SELECT p.tenant_id, p.id, 'lpl_' || substr(p.id, 5, 10) || substr(md5(random()::text || p.id), 1, 16)
  FROM license_pools p
 WHERE p.livemode AND EXISTS (
       SELECT 1 FROM products d
        WHERE d.tenant_id = p.tenant_id AND NOT d.livemode
          AND d.delivery ->> 'method' = 'license_pool'
          AND d.delivery ->> 'pool_id' = p.id);
INSERT INTO license_pools (tenant_id, id, name, low_stock_threshold, created_at, livemode,
    return_refunded_keys)
SELECT p.tenant_id, t.test_id, p.name, p.low_stock_threshold, p.created_at, false,
       p.return_refunded_keys
  FROM pool_twins_0038 t JOIN license_pools p ON p.tenant_id = t.tenant_id AND p.id = t.live_id;
UPDATE products d SET delivery = jsonb_set(d.delivery, '{pool_id}', to_jsonb(t.test_id))
  FROM pool_twins_0038 t
 WHERE t.tenant_id = d.tenant_id AND t.live_id = d.delivery ->> 'pool_id'
   AND NOT d.livemode AND d.delivery ->> 'method' = 'license_pool';
UPDATE order_lines l SET delivery = jsonb_set(l.delivery, '{pool_id}', to_jsonb(t.test_id)),
       pool_id = t.test_id
  FROM pool_twins_0038 t, orders o
 WHERE t.tenant_id = l.tenant_id AND t.live_id = l.pool_id
   AND o.tenant_id = l.tenant_id AND o.id = l.order_id AND o.test_mode
   AND l.delivery_status <> 'delivered';
DROP TABLE pool_twins_0038;
