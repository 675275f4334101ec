-- The secret Kassa signs license web service requests with (Standard Webhooks, like
-- webhooks), one per store.
ALTER TABLE tenants ADD COLUMN service_secret TEXT NOT NULL DEFAULT '';
