-- Stripe as a payment method (docs/payments.md, "Stripe"): orders and payments may be
-- paid by `stripe`; a Stripe attempt is `pending` from the moment its Checkout Session
-- exists until Stripe's signed webhook says what happened.
ALTER TABLE orders
    DROP CONSTRAINT orders_payment_method,
    ADD CONSTRAINT orders_payment_method CHECK (payment_method IN ('test_card', 'bank_transfer', 'stripe'));

-- `charge_reference`: what the provider refunds (a Stripe PaymentIntent `pi_…`),
-- beside `reference`, the attempt's own id there (a Checkout Session `cs_…`).
ALTER TABLE payments
    DROP CONSTRAINT payments_status,
    ADD CONSTRAINT payments_status CHECK (status IN ('pending', 'succeeded', 'failed')),
    DROP CONSTRAINT payments_method,
    ADD CONSTRAINT payments_method CHECK (method IN ('test_card', 'bank_transfer', 'stripe')),
    ADD COLUMN charge_reference TEXT;
CREATE INDEX payments_by_reference ON payments (tenant_id, reference);

-- A store's Stripe account per mode: its secret key and its webhook endpoint's
-- signing secret, in clear like the store's other signing secrets (Kassa must use
-- them), never shown again once saved.
ALTER TABLE tenants
    ADD COLUMN stripe_test_secret_key TEXT,
    ADD COLUMN stripe_test_webhook_secret TEXT,
    ADD COLUMN stripe_live_secret_key TEXT,
    ADD COLUMN stripe_live_webhook_secret TEXT;

-- Every provider event acted on, once: a replayed or redelivered event (same provider,
-- same event id) finds its row and does nothing.
CREATE TABLE provider_events (
    provider     TEXT NOT NULL CHECK (provider IN ('stripe')),
    event_id     TEXT NOT NULL,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    order_id     TEXT NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (provider, event_id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX provider_events_by_order ON provider_events (tenant_id, order_id);
