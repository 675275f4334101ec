-- Webhook delivery: one row per (event, endpoint), written in the transaction of the
-- event, and the log of every attempt. The delivery rows are the work queue: a worker
-- leases due rows (locked_until) and a lease that runs out returns the row to the queue.

CREATE TABLE webhook_deliveries (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    id               TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    locked_until     BIGINT,
    last_status      BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (tenant_id, endpoint_id, id);

CREATE TABLE webhook_attempts (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    delivery_id   TEXT NOT NULL,
    endpoint_id   TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    url           TEXT NOT NULL,
    status_code   BIGINT,
    latency_ms    BIGINT NOT NULL,
    response      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (tenant_id, delivery_id, attempt);

ALTER TABLE webhook_endpoints ADD COLUMN failing_since BIGINT;
CREATE INDEX events_by_tenant ON events (tenant_id, id);
