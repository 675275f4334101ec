-- Stripe payments are confirmed on Kassa's own pay page by Stripe.js, which needs the
-- store's publishable key of the order's mode (not a secret). A mode whose account was
-- saved before has none: Stripe is offered again in that mode once it is set.
ALTER TABLE tenants ADD COLUMN stripe_test_publishable_key TEXT;
ALTER TABLE tenants ADD COLUMN stripe_live_publishable_key TEXT;
