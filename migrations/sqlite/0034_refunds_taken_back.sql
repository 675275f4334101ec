-- Refunds that fail at the provider, and refunded lines that were never delivered
-- (issue 12, docs/payments.md "Refunds"); see the PostgreSQL migration of the same
-- number. SQLite keeps statuses and kinds without CHECK constraints.
ALTER TABLE refunds ADD COLUMN failure_reason TEXT;
ALTER TABLE order_lines ADD COLUMN revoked_at INTEGER;
UPDATE order_lines SET revoked_at = refunded_at WHERE refunded_at IS NOT NULL;
UPDATE order_lines SET delivery_status = 'cancelled', next_delivery_at = NULL,
    claimed_by = NULL, claimed_until = NULL,
    delivery_error = 'refunded before it was delivered'
WHERE refunded_at IS NOT NULL AND delivery_status <> 'delivered';
