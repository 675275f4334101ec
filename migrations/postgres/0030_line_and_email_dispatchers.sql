-- Paid lines and outbox emails are worked by dispatchers that claim due rows in
-- batches, as webhook deliveries are since 0024 (issue 15, docs/background-work.md),
-- instead of one apalis job each: the rows are the queues. A claim names its batch
-- (`claimed_by`) and lasts until `claimed_until`, which the claiming node extends while
-- the batch is in its hands; a claim that runs out (the node died) returns the row to
-- the queue, and two nodes claim with `FOR UPDATE SKIP LOCKED`. An email's `priority`
-- puts a paid order's receipt and licenses first; `request_id` is the request that made
-- the row due, logged when it is worked. Nodes wake each other with NOTIFY on
-- `kassa_lines_due` and `kassa_emails_due`, sent by the transactions that make rows due.
ALTER TABLE order_lines
    ADD COLUMN claimed_by text,
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN request_id text;
ALTER TABLE emails
    ADD COLUMN priority integer NOT NULL DEFAULT 0,
    ADD COLUMN claimed_by text,
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN request_id text;

-- The lines' and emails' apalis jobs were only wake-ups for rows that say themselves
-- when they are due (`next_delivery_at`, `next_attempt_at`); their priority and request
-- id move onto the rows, and the jobs go.
UPDATE emails e SET priority = q.priority, request_id = q.request_id
FROM (
    SELECT convert_from(job, 'UTF8')::jsonb ->> 'tenant_id' AS tenant_id,
           convert_from(job, 'UTF8')::jsonb ->> 'email_id' AS email_id,
           MAX(priority) AS priority,
           MAX(convert_from(job, 'UTF8')::jsonb ->> 'request_id') AS request_id
    FROM apalis.jobs
    WHERE job_type = 'kassa::send_email' AND status NOT IN ('Done', 'Killed')
    GROUP BY 1, 2
) q
WHERE e.tenant_id = q.tenant_id AND e.id = q.email_id AND e.status = 'queued';
UPDATE order_lines l SET request_id = q.request_id
FROM (
    SELECT convert_from(job, 'UTF8')::jsonb ->> 'tenant_id' AS tenant_id,
           convert_from(job, 'UTF8')::jsonb ->> 'order_id' AS order_id,
           (convert_from(job, 'UTF8')::jsonb ->> 'line_no')::bigint AS line_no,
           MAX(convert_from(job, 'UTF8')::jsonb ->> 'request_id') AS request_id
    FROM apalis.jobs
    WHERE job_type = 'kassa::deliver_line' AND status NOT IN ('Done', 'Killed')
    GROUP BY 1, 2, 3
) q
WHERE l.tenant_id = q.tenant_id AND l.order_id = q.order_id AND l.line_no = q.line_no
  AND l.next_delivery_at IS NOT NULL;
DELETE FROM apalis.jobs WHERE job_type IN ('kassa::send_email', 'kassa::deliver_line');

CREATE INDEX order_lines_queue ON order_lines (next_delivery_at)
    WHERE delivery_status IN ('pending', 'waiting_stock') AND refunded_at IS NULL
      AND next_delivery_at IS NOT NULL;
CREATE INDEX order_lines_claims ON order_lines (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE INDEX emails_queue ON emails (priority DESC, next_attempt_at) WHERE status = 'queued';
CREATE INDEX emails_claims ON emails (claimed_by) WHERE claimed_by IS NOT NULL;
