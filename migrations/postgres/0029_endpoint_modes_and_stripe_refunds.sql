-- Webhook endpoints belong to a mode, as on Stripe (docs/payments.md): an endpoint
-- receives only its own world's events, and a test key sees only test endpoints.
-- Before, every endpoint received both worlds' events; so that no receiver loses an
-- event it got before, each existing endpoint stays live and gets a test twin with
-- the same URL, description, filter, state and signing secrets. The twin's id keeps
-- its original's time part (the first 10 characters of the ULID), so lists keep
-- their order. The deliveries of test events (and their attempts) move to the twin,
-- so each endpoint's log holds only its own world's events.
ALTER TABLE webhook_endpoints ADD COLUMN livemode boolean NOT NULL DEFAULT true;

CREATE TEMP TABLE endpoint_twins (tenant_id TEXT NOT NULL, id TEXT NOT NULL, twin TEXT NOT NULL);
INSERT INTO endpoint_twins (tenant_id, id, twin)
SELECT tenant_id, id, 'ep_' || substr(id, 4, 10) || substr(md5(random()::text || id), 1, 16)
  FROM webhook_endpoints;

INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, secret,
    previous_secret, previous_secret_expires_at, disabled_at, failing_since, created_at, livemode)
SELECT e.tenant_id, t.twin, e.url, e.description, e.event_types, e.secret,
       e.previous_secret, e.previous_secret_expires_at, e.disabled_at, e.failing_since, e.created_at, false
  FROM webhook_endpoints e JOIN endpoint_twins t ON t.tenant_id = e.tenant_id AND t.id = e.id;

UPDATE webhook_deliveries d SET endpoint_id = t.twin
  FROM endpoint_twins t, events ev
 WHERE t.tenant_id = d.tenant_id AND t.id = d.endpoint_id
   AND ev.tenant_id = d.tenant_id AND ev.id = d.event_id AND NOT ev.livemode;
UPDATE webhook_attempts a SET endpoint_id = d.endpoint_id
  FROM webhook_deliveries d
 WHERE d.tenant_id = a.tenant_id AND d.id = a.delivery_id AND d.endpoint_id <> a.endpoint_id;
DROP TABLE endpoint_twins;

CREATE INDEX webhook_endpoints_by_mode ON webhook_endpoints (tenant_id, livemode, id);

-- Refunds made in Stripe's dashboard reach Kassa as Stripe's refund events, which
-- name the PaymentIntent refunded (found by the payment it paid) and Stripe's refund
-- id: a refund is recorded once per provider id, whoever made it.
CREATE INDEX payments_by_charge ON payments (tenant_id, charge_reference)
    WHERE charge_reference IS NOT NULL;
CREATE UNIQUE INDEX refunds_by_reference ON refunds (tenant_id, reference)
    WHERE reference IS NOT NULL;
