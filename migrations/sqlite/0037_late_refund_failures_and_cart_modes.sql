-- A refund that fails after it succeeded, pending refunds said as such, and carts of
-- one mode (issue 12, docs/payments.md "Refunds" and "Test and live modes");
-- see the PostgreSQL migration of the same number.
-- SQLite keeps event types without CHECK constraints.
CREATE TABLE refund_returned_keys (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    refund_id  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    line_no    INTEGER NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, refund_id, key_id)
);
ALTER TABLE order_lines ADD COLUMN lost_licenses TEXT;

-- A cart belongs to the world it was filled in (the checkout of its page), and is no
-- cart on the other world's pages. A cart that became an order takes its order's
-- mode; one not spent yet is live (the cookie it was kept by is not known here).
ALTER TABLE carts ADD COLUMN livemode INTEGER NOT NULL DEFAULT 1;
UPDATE carts SET livemode = 0
 WHERE order_id IN (SELECT o.id FROM orders o WHERE o.tenant_id = carts.tenant_id AND o.test_mode = 1);
