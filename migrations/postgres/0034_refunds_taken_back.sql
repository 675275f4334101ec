-- Refunds that fail at the provider, and refunded lines that were never delivered
-- (issue 12, docs/payments.md "Refunds").
--
-- A refund pending at Stripe that then fails there is taken back: `failed`, with
-- Stripe's reason, its amount no longer counted, `refund.failed` and an email to the
-- owners. A line's keys are revoked only once its refund's money went back, so a line
-- refunded (`refunded_at`) by a refund still pending keeps them: `revoked_at` says
-- when they were revoked. Before this migration keys were revoked with the refund.
-- A refunded line that was not delivered ends as `cancelled` instead of staying
-- `pending` or `waiting_stock` for ever.
ALTER TABLE refunds ADD COLUMN failure_reason text;
ALTER TABLE refunds DROP CONSTRAINT refunds_status_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_status_check
    CHECK (status IN ('pending', 'succeeded', 'failed'));

ALTER TABLE order_lines ADD COLUMN revoked_at timestamptz;
UPDATE order_lines SET revoked_at = refunded_at WHERE refunded_at IS NOT NULL;
ALTER TABLE order_lines DROP CONSTRAINT order_lines_delivery_status;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_delivery_status
    CHECK (delivery_status IN ('pending', 'waiting_stock', 'delivered', 'failed', 'cancelled'));
UPDATE order_lines SET delivery_status = 'cancelled', next_delivery_at = NULL,
    claimed_by = NULL, claimed_until = NULL,
    delivery_error = 'refunded before it was delivered'
WHERE refunded_at IS NOT NULL AND delivery_status <> 'delivered';

ALTER TABLE events DROP CONSTRAINT events_type;
ALTER TABLE events ADD CONSTRAINT events_type CHECK (type IN ('order.created',
    'payment.succeeded', 'payment.failed', 'product.delivered', 'order.delivered',
    'order.deleted', 'license_pool.low_stock', 'refund.succeeded', 'order.refunded',
    'refund.failed'));

ALTER TABLE emails DROP CONSTRAINT emails_kind;
ALTER TABLE emails ADD CONSTRAINT emails_kind CHECK (kind IN ('payment_instructions',
    'payment_succeeded', 'payment_failed', 'licenses', 'unpaid_reminder',
    'endpoint_disabled', 'pool_empty', 'pool_low', 'delivery_failed', 'refund',
    'refund_failed'));
