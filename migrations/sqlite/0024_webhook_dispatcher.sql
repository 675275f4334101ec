-- Webhook deliveries are sent by a dispatcher that claims due rows in batches
-- (issue 15, docs/background-work.md) instead of one apalis job per attempt: the
-- delivery rows are the queue. A claim names its batch (`claimed_by`) and lasts until
-- `claimed_until` (Unix milliseconds), which the claiming node extends while the
-- batch is in its hands; a claim that runs out (the node died) returns the row to the
-- queue. `priority` puts a paid order's webhooks first; `request_id` is the request
-- that caused the delivery, logged with each attempt.
ALTER TABLE webhook_deliveries ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN claimed_until INTEGER;
ALTER TABLE webhook_deliveries ADD COLUMN request_id TEXT;

-- The deliveries' apalis jobs were only wake-ups for rows that say themselves when
-- they are due; their priority and request id move onto the rows, and the jobs go.
CREATE TEMP TABLE queued_webhooks (
    delivery_id TEXT PRIMARY KEY,
    priority    INTEGER NOT NULL,
    request_id  TEXT
);
INSERT OR REPLACE INTO queued_webhooks (delivery_id, priority, request_id)
SELECT json_extract(CAST(job AS TEXT), '$.delivery_id'), priority,
       json_extract(CAST(job AS TEXT), '$.request_id')
FROM Jobs WHERE job_type = 'kassa::deliver_webhook' AND status NOT IN ('Done', 'Killed')
ORDER BY priority;
UPDATE webhook_deliveries SET
    priority = (SELECT q.priority FROM queued_webhooks q WHERE q.delivery_id = webhook_deliveries.id),
    request_id = (SELECT q.request_id FROM queued_webhooks q WHERE q.delivery_id = webhook_deliveries.id)
WHERE status = 'pending' AND id IN (SELECT delivery_id FROM queued_webhooks);
DROP TABLE queued_webhooks;
DELETE FROM Jobs WHERE job_type = 'kassa::deliver_webhook';

CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (priority DESC, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_claims ON webhook_deliveries (claimed_by)
    WHERE claimed_by IS NOT NULL;
