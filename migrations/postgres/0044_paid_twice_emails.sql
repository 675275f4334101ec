-- The owners' email when a provider's payment arrives for an order paid another way
-- meanwhile and is sent back (`paid_twice`, issue 12's leftovers; docs/payments.md).
ALTER TABLE emails DROP CONSTRAINT emails_kind;
ALTER TABLE emails ADD CONSTRAINT emails_kind CHECK (kind IN ('payment_instructions',
    'payment_succeeded', 'payment_failed', 'licenses', 'unpaid_reminder',
    'endpoint_disabled', 'pool_empty', 'pool_low', 'delivery_failed', 'refund',
    'refund_failed', 'paid_twice'));
