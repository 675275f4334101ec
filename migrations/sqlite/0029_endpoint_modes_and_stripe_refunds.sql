-- Webhook endpoints belong to a mode, as on Stripe (docs/payments.md): an endpoint
-- receives only its own world's events, and a test key sees only test endpoints.
-- Before, every endpoint received both worlds' events; so that no receiver loses an
-- event it got before, each existing endpoint stays live and gets a test twin with
-- the same URL, description, filter, state and signing secrets. The twin's id keeps
-- its original's time part (the first 10 characters of the ULID), so lists keep
-- their order. The deliveries of test events (and their attempts) move to the twin,
-- so each endpoint's log holds only its own world's events.
ALTER TABLE webhook_endpoints ADD COLUMN livemode INTEGER NOT NULL DEFAULT 1;

CREATE TEMP TABLE endpoint_twins (tenant_id TEXT NOT NULL, id TEXT NOT NULL, twin TEXT NOT NULL);
INSERT INTO endpoint_twins (tenant_id, id, twin)
SELECT tenant_id, id, 'ep_' || substr(id, 4, 10) || lower(hex(randomblob(8)))
  FROM webhook_endpoints;

INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, secret,
    previous_secret, previous_secret_expires_at, disabled_at, failing_since, created_at, livemode)
SELECT e.tenant_id, t.twin, e.url, e.description, e.event_types, e.secret,
       e.previous_secret, e.previous_secret_expires_at, e.disabled_at, e.failing_since, e.created_at, 0
  FROM webhook_endpoints e JOIN endpoint_twins t ON t.tenant_id = e.tenant_id AND t.id = e.id;

UPDATE webhook_deliveries SET endpoint_id = (SELECT t.twin FROM endpoint_twins t
        WHERE t.tenant_id = webhook_deliveries.tenant_id AND t.id = webhook_deliveries.endpoint_id)
 WHERE EXISTS (SELECT 1 FROM endpoint_twins t
        WHERE t.tenant_id = webhook_deliveries.tenant_id AND t.id = webhook_deliveries.endpoint_id)
   AND event_id IN (SELECT ev.id FROM events ev
        WHERE ev.tenant_id = webhook_deliveries.tenant_id AND ev.livemode = 0);
UPDATE webhook_attempts SET endpoint_id = (SELECT d.endpoint_id FROM webhook_deliveries d
        WHERE d.tenant_id = webhook_attempts.tenant_id AND d.id = webhook_attempts.delivery_id)
 WHERE EXISTS (SELECT 1 FROM webhook_deliveries d
        WHERE d.tenant_id = webhook_attempts.tenant_id AND d.id = webhook_attempts.delivery_id
          AND d.endpoint_id <> webhook_attempts.endpoint_id);
DROP TABLE endpoint_twins;

CREATE INDEX webhook_endpoints_by_mode ON webhook_endpoints (tenant_id, livemode, id);

-- Refunds made in Stripe's dashboard reach Kassa as Stripe's refund events, which
-- name the PaymentIntent refunded (found by the payment it paid) and Stripe's refund
-- id: a refund is recorded once per provider id, whoever made it.
CREATE INDEX payments_by_charge ON payments (tenant_id, charge_reference)
    WHERE charge_reference IS NOT NULL;
CREATE UNIQUE INDEX refunds_by_reference ON refunds (tenant_id, reference)
    WHERE reference IS NOT NULL;
