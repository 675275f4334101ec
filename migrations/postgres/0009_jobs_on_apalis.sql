-- Background work runs on apalis (docs/background-work.md): a job wakes a worker for
-- one row, and apalis's locks and heartbeats replace Kassa's leases. Work that was due
-- before this migration gets its job here (apalis's tables are created first).
ALTER TABLE webhook_deliveries DROP COLUMN locked_until;
ALTER TABLE emails DROP COLUMN locked_until;
ALTER TABLE order_lines DROP COLUMN locked_until;

-- A job id must be a ULID: '0' and 25 hex digits is one.
INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority)
SELECT convert_to(json_build_object('tenant_id', tenant_id, 'delivery_id', id)::text, 'UTF8'),
       '0' || upper(substr(md5(random()::text || id), 1, 25)), 'kassa::deliver_webhook', 'Pending', 0, 5,
       to_timestamp(next_attempt_at / 1000.0), 0
FROM webhook_deliveries WHERE status = 'pending';

INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority)
SELECT convert_to(json_build_object('tenant_id', tenant_id, 'email_id', id)::text, 'UTF8'),
       '0' || upper(substr(md5(random()::text || id), 1, 25)), 'kassa::send_email', 'Pending', 0, 5,
       to_timestamp(next_attempt_at / 1000.0), 0
FROM emails WHERE status = 'queued';

INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority)
SELECT convert_to(json_build_object('tenant_id', tenant_id, 'order_id', order_id, 'line_no', line_no)::text, 'UTF8'),
       '0' || upper(substr(md5(random()::text || order_id || line_no), 1, 25)), 'kassa::deliver_line', 'Pending', 0, 5,
       to_timestamp(next_delivery_at / 1000.0), 0
FROM order_lines
WHERE delivery_status IN ('pending', 'waiting_stock') AND next_delivery_at IS NOT NULL;
