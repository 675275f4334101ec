-- Idempotent answers are kept sealed from now on (kassa-api's idempotency layer): the
-- answers kept in clear until now may hold a new API key, a `whsec_` secret or a
-- customer's personal data, so they go. A retry of one of those requests within its
-- 24 hours runs again; keys still in progress stay and are sealed when they finish.
DELETE FROM idempotency_keys WHERE status_code IS NOT NULL;
