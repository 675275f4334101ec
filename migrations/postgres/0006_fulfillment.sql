-- Fulfillment: each order line keeps the delivery method it was sold with, and is
-- delivered by a worker once the order is paid. A pool key records the line it went to.

ALTER TABLE order_lines ADD COLUMN delivery TEXT NOT NULL DEFAULT '{}';
ALTER TABLE order_lines ADD COLUMN pool_id TEXT;
ALTER TABLE order_lines ADD COLUMN delivery_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN next_delivery_at BIGINT;
ALTER TABLE order_lines ADD COLUMN locked_until BIGINT;
ALTER TABLE order_lines ADD COLUMN delivery_error TEXT;
ALTER TABLE order_lines ADD COLUMN delivered_at BIGINT;
CREATE INDEX order_lines_due ON order_lines (delivery_status, next_delivery_at);
CREATE INDEX order_lines_waiting ON order_lines (tenant_id, pool_id, delivery_status);

ALTER TABLE license_keys ADD COLUMN order_id TEXT;
ALTER TABLE license_keys ADD COLUMN line_no BIGINT;
ALTER TABLE license_keys ADD COLUMN assigned_at BIGINT;
