-- Refunds (issue 12, docs/payments.md "Refunds"): money going back to a customer, all
-- or part of what was paid, each a row of its own. An order keeps the sum refunded so
-- far; a line refunded in full keeps when, and its keys are revoked (`revoked`) or,
-- when its pool says so, returned to the pool (`available` again).
CREATE TABLE refunds (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    currency    TEXT NOT NULL,
    method      TEXT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT,
    reference   TEXT,
    lines       TEXT NOT NULL DEFAULT '[]',
    livemode    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX refunds_by_order ON refunds (tenant_id, order_id, id);
ALTER TABLE orders ADD COLUMN amount_refunded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN refunded_at INTEGER;
ALTER TABLE license_pools ADD COLUMN return_refunded_keys INTEGER NOT NULL DEFAULT 0;
