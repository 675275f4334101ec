-- The test twin of a product delivered from a pool gets a test pool of its own (issue
-- 12, docs/payments.md "Existing catalog"); see the PostgreSQL migration of the same
-- number. Written so that running it again changes nothing more.
CREATE TABLE pool_twins_0038 (
    tenant_id  TEXT NOT NULL,
    live_id    TEXT NOT NULL,
    test_id    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, live_id)
);
INSERT INTO pool_twins_0038 (tenant_id, live_id, test_id)
SELECT p.tenant_id, p.id, 'lpl_' || substr(p.id, 5, 10) || lower(hex(randomblob(8)))
  FROM license_pools p
 WHERE p.livemode = 1 AND EXISTS (
       SELECT 1 FROM products d
        WHERE d.tenant_id = p.tenant_id AND d.livemode = 0
          AND json_extract(d.delivery, '$.method') = 'license_pool'
          AND json_extract(d.delivery, '$.pool_id') = p.id);
INSERT INTO license_pools (tenant_id, id, name, low_stock_threshold, created_at, livemode,
    return_refunded_keys)
SELECT p.tenant_id, t.test_id, p.name, p.low_stock_threshold, p.created_at, 0,
       p.return_refunded_keys
  FROM pool_twins_0038 t JOIN license_pools p ON p.tenant_id = t.tenant_id AND p.id = t.live_id;
UPDATE products SET delivery = json_set(delivery, '$.pool_id', (
       SELECT t.test_id FROM pool_twins_0038 t
        WHERE t.tenant_id = products.tenant_id
          AND t.live_id = json_extract(products.delivery, '$.pool_id')))
 WHERE livemode = 0 AND json_extract(delivery, '$.method') = 'license_pool'
   AND EXISTS (SELECT 1 FROM pool_twins_0038 t WHERE t.tenant_id = products.tenant_id
                  AND t.live_id = json_extract(products.delivery, '$.pool_id'));
-- Test order lines not delivered yet that name a live pool wait for the test pool
-- instead (a failed one, retried, takes from it too).
UPDATE order_lines SET
       delivery = json_set(delivery, '$.pool_id', (
           SELECT t.test_id FROM pool_twins_0038 t
            WHERE t.tenant_id = order_lines.tenant_id AND t.live_id = order_lines.pool_id)),
       pool_id = (SELECT t.test_id FROM pool_twins_0038 t
                   WHERE t.tenant_id = order_lines.tenant_id AND t.live_id = order_lines.pool_id)
 WHERE delivery_status <> 'delivered'
   AND EXISTS (SELECT 1 FROM pool_twins_0038 t WHERE t.tenant_id = order_lines.tenant_id
                  AND t.live_id = order_lines.pool_id)
   AND EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = order_lines.tenant_id
                  AND o.id = order_lines.order_id AND o.test_mode = 1);
DROP TABLE pool_twins_0038;
