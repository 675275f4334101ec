-- The dashboard's order timeline reads every webhook attempt of an order's events.
CREATE INDEX webhook_attempts_by_event ON webhook_attempts (tenant_id, event_id);
