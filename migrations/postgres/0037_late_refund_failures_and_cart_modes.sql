-- A refund that fails after it succeeded, pending refunds said as such, and carts of
-- one mode (issue 12, docs/payments.md "Refunds" and "Test and live modes").
--
-- Stripe may report a card refund failed after it reported it succeeded (the
-- customer's bank returned it). Kassa takes it back and reinstates the keys it
-- revoked. A key a refund returned to its pool has no order any more, so the refund
-- records which keys it returned, from which line: `refund_returned_keys`. A key
-- given to another line since is not taken from it; the line lists it in
-- `lost_licenses` (shown as revoked) and the owners' email says so.
CREATE TABLE refund_returned_keys (
    tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    refund_id  text NOT NULL,
    key_id     text NOT NULL,
    order_id   text NOT NULL,
    line_no    bigint NOT NULL,
    value      text NOT NULL,
    PRIMARY KEY (refund_id, key_id, tenant_id)
);
ALTER TABLE order_lines ADD COLUMN lost_licenses jsonb;

-- A refund the provider is still working on sends `refund.pending`; `refund.succeeded`
-- follows when it succeeds.
ALTER TABLE events DROP CONSTRAINT events_type;
ALTER TABLE events ADD CONSTRAINT events_type CHECK (type IN ('order.created',
    'payment.succeeded', 'payment.failed', 'product.delivered', 'order.delivered',
    'order.deleted', 'license_pool.low_stock', 'refund.pending', 'refund.succeeded',
    'order.refunded', 'refund.failed'));

-- A cart belongs to the world it was filled in (the checkout of its page), and is no
-- cart on the other world's pages: a test cart's token put in the live cart cookie
-- finds nothing. A cart that became an order takes its order's mode; one not spent
-- yet is live (the cookie it was kept by is not known here). Kassa writes every cart
-- with its mode; the default is for a node still running the code before this (while
-- nodes are upgraded one by one), whose carts are live ones as before.
ALTER TABLE carts ADD COLUMN livemode boolean NOT NULL DEFAULT true;
UPDATE carts SET livemode = false
 WHERE order_id IN (SELECT o.id FROM orders o WHERE o.tenant_id = carts.tenant_id AND o.test_mode);
