-- Webhook deliveries are sent by a dispatcher that claims due rows in batches
-- (issue 15, docs/background-work.md) instead of one apalis job per attempt: the
-- delivery rows are the queue. A claim names its batch (`claimed_by`) and lasts until
-- `claimed_until`, which the claiming node extends while the batch is in its hands;
-- a claim that runs out (the node died) returns the row to the queue, and two nodes
-- claim with `FOR UPDATE SKIP LOCKED`. `priority` puts a paid order's webhooks first;
-- `request_id` is the request that caused the delivery, logged with each attempt.
ALTER TABLE webhook_deliveries
    ADD COLUMN priority integer NOT NULL DEFAULT 0,
    ADD COLUMN claimed_by text,
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN request_id text;

-- The deliveries' apalis jobs were only wake-ups for rows that say themselves when
-- they are due; their priority and request id move onto the rows, and the jobs go.
UPDATE webhook_deliveries d SET priority = q.priority, request_id = q.request_id
FROM (
    SELECT convert_from(job, 'UTF8')::jsonb ->> 'delivery_id' AS delivery_id,
           MAX(priority) AS priority,
           MAX(convert_from(job, 'UTF8')::jsonb ->> 'request_id') AS request_id
    FROM apalis.jobs
    WHERE job_type = 'kassa::deliver_webhook' AND status NOT IN ('Done', 'Killed')
    GROUP BY 1
) q
WHERE d.id = q.delivery_id AND d.status = 'pending';
DELETE FROM apalis.jobs WHERE job_type = 'kassa::deliver_webhook';

CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (priority DESC, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_claims ON webhook_deliveries (claimed_by)
    WHERE claimed_by IS NOT NULL;

-- Every node's dispatcher is woken when deliveries are written (at the commit).
CREATE FUNCTION kassa_webhook_deliveries_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kassa_webhook_deliveries', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_deliveries_written AFTER INSERT ON webhook_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION kassa_webhook_deliveries_written();
