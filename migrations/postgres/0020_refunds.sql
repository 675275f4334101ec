-- Refunds (issue 12, docs/payments.md "Refunds"): money going back to a customer, all
-- or part of what was paid, each a row of its own. An order keeps the sum refunded so
-- far (never more than its total: the check backs the order row's lock); a line
-- refunded in full keeps when, and its keys are revoked (`revoked`) or, when its pool
-- says so, returned to the pool (`available` again).
CREATE TABLE refunds (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    currency    TEXT NOT NULL,
    method      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'succeeded')),
    reason      TEXT,
    reference   TEXT,
    lines       jsonb NOT NULL DEFAULT '[]'::jsonb,
    livemode    boolean NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX refunds_by_order ON refunds (tenant_id, order_id, id);

ALTER TABLE orders ADD COLUMN amount_refunded bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD CONSTRAINT orders_refunded_within_total
    CHECK (amount_refunded >= 0 AND amount_refunded <= total);
ALTER TABLE order_lines ADD COLUMN refunded_at timestamptz;
ALTER TABLE license_pools ADD COLUMN return_refunded_keys boolean NOT NULL DEFAULT false;

ALTER TABLE license_keys DROP CONSTRAINT license_keys_status;
ALTER TABLE license_keys ADD CONSTRAINT license_keys_status
    CHECK (status IN ('available', 'assigned', 'revoked'));

ALTER TABLE events DROP CONSTRAINT events_type;
ALTER TABLE events ADD CONSTRAINT events_type CHECK (type IN ('order.created',
    'payment.succeeded', 'payment.failed', 'product.delivered', 'order.delivered',
    'order.deleted', 'license_pool.low_stock', 'refund.succeeded', 'order.refunded'));

ALTER TABLE emails DROP CONSTRAINT emails_kind;
ALTER TABLE emails ADD CONSTRAINT emails_kind CHECK (kind IN ('payment_instructions',
    'payment_succeeded', 'payment_failed', 'licenses', 'unpaid_reminder',
    'endpoint_disabled', 'pool_empty', 'pool_low', 'delivery_failed', 'refund'));
