-- Paid lines and outbox emails are worked by dispatchers that claim due rows in
-- batches, as webhook deliveries are since 0024 (issue 15, docs/background-work.md),
-- instead of one apalis job each: the rows are the queues. A claim names its batch
-- (`claimed_by`) and lasts until `claimed_until` (Unix milliseconds), which the
-- claiming node extends while the batch is in its hands; a claim that runs out (the
-- node died) returns the row to the queue. An email's `priority` puts a paid order's
-- receipt and licenses first; `request_id` is the request that made the row due,
-- logged when it is worked.
ALTER TABLE order_lines ADD COLUMN claimed_by TEXT;
ALTER TABLE order_lines ADD COLUMN claimed_until INTEGER;
ALTER TABLE order_lines ADD COLUMN request_id TEXT;
ALTER TABLE emails ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE emails ADD COLUMN claimed_by TEXT;
ALTER TABLE emails ADD COLUMN claimed_until INTEGER;
ALTER TABLE emails ADD COLUMN request_id TEXT;

-- The lines' and emails' apalis jobs were only wake-ups for rows that say themselves
-- when they are due (`next_delivery_at`, `next_attempt_at`); their priority and request
-- id move onto the rows, and the jobs go.
CREATE TEMP TABLE queued_emails (
    tenant_id  TEXT NOT NULL,
    email_id   TEXT NOT NULL,
    priority   INTEGER NOT NULL,
    request_id TEXT,
    PRIMARY KEY (tenant_id, email_id)
);
INSERT OR REPLACE INTO queued_emails (tenant_id, email_id, priority, request_id)
SELECT json_extract(CAST(job AS TEXT), '$.tenant_id'), json_extract(CAST(job AS TEXT), '$.email_id'),
       priority, json_extract(CAST(job AS TEXT), '$.request_id')
FROM Jobs WHERE job_type = 'kassa::send_email' AND status NOT IN ('Done', 'Killed')
ORDER BY priority;
UPDATE emails SET
    priority = (SELECT q.priority FROM queued_emails q
                WHERE q.tenant_id = emails.tenant_id AND q.email_id = emails.id),
    request_id = (SELECT q.request_id FROM queued_emails q
                  WHERE q.tenant_id = emails.tenant_id AND q.email_id = emails.id)
WHERE status = 'queued' AND EXISTS (SELECT 1 FROM queued_emails q
                                    WHERE q.tenant_id = emails.tenant_id AND q.email_id = emails.id);
DROP TABLE queued_emails;

CREATE TEMP TABLE queued_lines (
    tenant_id  TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    line_no    INTEGER NOT NULL,
    request_id TEXT,
    PRIMARY KEY (tenant_id, order_id, line_no)
);
INSERT OR REPLACE INTO queued_lines (tenant_id, order_id, line_no, request_id)
SELECT json_extract(CAST(job AS TEXT), '$.tenant_id'), json_extract(CAST(job AS TEXT), '$.order_id'),
       json_extract(CAST(job AS TEXT), '$.line_no'), json_extract(CAST(job AS TEXT), '$.request_id')
FROM Jobs WHERE job_type = 'kassa::deliver_line' AND status NOT IN ('Done', 'Killed');
UPDATE order_lines SET
    request_id = (SELECT q.request_id FROM queued_lines q WHERE q.tenant_id = order_lines.tenant_id
                  AND q.order_id = order_lines.order_id AND q.line_no = order_lines.line_no)
WHERE next_delivery_at IS NOT NULL AND EXISTS (SELECT 1 FROM queued_lines q
    WHERE q.tenant_id = order_lines.tenant_id AND q.order_id = order_lines.order_id
      AND q.line_no = order_lines.line_no);
DROP TABLE queued_lines;
DELETE FROM Jobs WHERE job_type IN ('kassa::send_email', 'kassa::deliver_line');

CREATE INDEX order_lines_queue ON order_lines (next_delivery_at)
    WHERE delivery_status IN ('pending', 'waiting_stock') AND refunded_at IS NULL
      AND next_delivery_at IS NOT NULL;
CREATE INDEX order_lines_claims ON order_lines (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE INDEX emails_queue ON emails (priority DESC, next_attempt_at) WHERE status = 'queued';
CREATE INDEX emails_claims ON emails (claimed_by) WHERE claimed_by IS NOT NULL;
