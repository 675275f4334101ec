-- PostgreSQL's own types, converted in place. Until 0009 both backends shared one
-- schema through sqlx's `Any` driver; now each backend is typed in Rust, so here times
-- become timestamptz (they were Unix milliseconds), JSON documents jsonb, 0/1 flags
-- boolean; statuses and kinds get CHECK constraints, every reference a foreign key
-- with its ON DELETE, and the list pages their indexes. apalis's tables are apalis's.

-- Unix milliseconds to an instant, exactly (no floating point on the way).
CREATE FUNCTION pg_temp.ms_to_timestamptz(ms BIGINT) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE AS $$ SELECT 'epoch'::timestamptz + ms * INTERVAL '1 millisecond' $$;

-- Foreign keys are dropped first and made again below, each with its ON DELETE.
DO $$
DECLARE fk record;
BEGIN
    FOR fk IN
        SELECT c.conname, t.relname FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE c.contype = 'f' AND n.nspname = current_schema()
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', fk.relname, fk.conname);
    END LOOP;
END $$;

ALTER TABLE tenants
    ALTER COLUMN settings DROP DEFAULT,
    ALTER COLUMN settings TYPE jsonb USING settings::jsonb,
    ALTER COLUMN settings SET DEFAULT '{}'::jsonb,
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at);

ALTER TABLE users
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at);

ALTER TABLE memberships
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD CONSTRAINT memberships_role CHECK (role IN ('owner', 'admin')),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

ALTER TABLE api_keys
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER COLUMN revoked_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(revoked_at),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

ALTER TABLE products
    ALTER COLUMN prices TYPE jsonb USING prices::jsonb,
    ALTER COLUMN delivery TYPE jsonb USING delivery::jsonb,
    ALTER COLUMN active TYPE boolean USING active <> 0,
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER COLUMN updated_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(updated_at),
    ADD CONSTRAINT products_delivery_method
        CHECK (delivery ->> 'method' IN ('license_pool', 'web_service', 'plugin')),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

ALTER TABLE coupons
    ALTER COLUMN expires_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(expires_at),
    ALTER COLUMN product_ids TYPE jsonb USING product_ids::jsonb,
    ALTER COLUMN active TYPE boolean USING active <> 0,
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

ALTER TABLE checkout_links
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id) ON DELETE CASCADE;

ALTER TABLE license_pools
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

ALTER TABLE webhook_endpoints
    ALTER COLUMN event_types TYPE jsonb USING event_types::jsonb,
    ALTER COLUMN previous_secret_expires_at TYPE timestamptz
        USING pg_temp.ms_to_timestamptz(previous_secret_expires_at),
    ALTER COLUMN disabled_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(disabled_at),
    ALTER COLUMN failing_since TYPE timestamptz USING pg_temp.ms_to_timestamptz(failing_since),
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

ALTER TABLE idempotency_keys
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

ALTER TABLE carts
    ALTER COLUMN lines TYPE jsonb USING lines::jsonb,
    ALTER COLUMN custom TYPE jsonb USING custom::jsonb,
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER COLUMN updated_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(updated_at),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

ALTER TABLE orders
    ALTER COLUMN custom TYPE jsonb USING custom::jsonb,
    ALTER COLUMN test_mode TYPE boolean USING test_mode <> 0,
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER COLUMN updated_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(updated_at),
    ALTER COLUMN paid_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(paid_at),
    ALTER COLUMN reminded_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(reminded_at),
    ADD CONSTRAINT orders_status CHECK (status IN ('not_paid', 'paid', 'refunded', 'deleted')),
    ADD CONSTRAINT orders_delivery_status CHECK (delivery_status IN ('not_delivered', 'delivered')),
    ADD CONSTRAINT orders_payment_method CHECK (payment_method IN ('test_card', 'bank_transfer')),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

ALTER TABLE order_lines
    ALTER COLUMN licenses TYPE jsonb USING licenses::jsonb,
    ALTER COLUMN delivery DROP DEFAULT,
    ALTER COLUMN delivery TYPE jsonb USING delivery::jsonb,
    ALTER COLUMN delivery SET DEFAULT '{}'::jsonb,
    ALTER COLUMN next_delivery_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(next_delivery_at),
    ALTER COLUMN delivered_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(delivered_at),
    ADD CONSTRAINT order_lines_delivery_status
        CHECK (delivery_status IN ('pending', 'waiting_stock', 'delivered', 'failed')),
    ADD FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE;

ALTER TABLE order_consents
    ALTER COLUMN accepted_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(accepted_at),
    ADD CONSTRAINT order_consents_kind CHECK (kind IN ('terms', 'personal_data')),
    ADD FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE;

ALTER TABLE payments
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD CONSTRAINT payments_status CHECK (status IN ('succeeded', 'failed')),
    ADD CONSTRAINT payments_method CHECK (method IN ('test_card', 'bank_transfer')),
    ADD FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE;

-- A key keeps the line it went to; a line that goes takes its keys' assignment with it.
ALTER TABLE license_keys
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER COLUMN assigned_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(assigned_at),
    ADD CONSTRAINT license_keys_status CHECK (status IN ('available', 'assigned')),
    ADD FOREIGN KEY (tenant_id, pool_id) REFERENCES license_pools (tenant_id, id) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant_id, order_id, line_no) REFERENCES order_lines (tenant_id, order_id, line_no)
        ON DELETE SET NULL (order_id, line_no);

-- Events are the record of what happened: an order with events is not deleted.
ALTER TABLE events
    ALTER COLUMN payload TYPE jsonb USING payload::jsonb,
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD CONSTRAINT events_type CHECK (type IN ('order.created', 'payment.succeeded',
        'payment.failed', 'product.delivered', 'order.delivered', 'order.deleted',
        'license_pool.low_stock')),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE RESTRICT;

-- Deliveries to an endpoint that was deleted could never be sent or listed: they go
-- now, and with their endpoint from here on.
DELETE FROM webhook_attempts a WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
    WHERE d.tenant_id = a.tenant_id AND d.id = a.delivery_id);
DELETE FROM webhook_deliveries d WHERE NOT EXISTS (SELECT 1 FROM webhook_endpoints e
    WHERE e.tenant_id = d.tenant_id AND e.id = d.endpoint_id);

ALTER TABLE webhook_deliveries
    ALTER COLUMN next_attempt_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(next_attempt_at),
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER COLUMN updated_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(updated_at),
    ADD CONSTRAINT webhook_deliveries_status CHECK (status IN ('pending', 'succeeded', 'failed')),
    ADD FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant_id, event_id) REFERENCES events (tenant_id, id) ON DELETE CASCADE;

ALTER TABLE webhook_attempts
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD FOREIGN KEY (tenant_id, delivery_id) REFERENCES webhook_deliveries (tenant_id, id) ON DELETE CASCADE;

ALTER TABLE emails
    ALTER COLUMN next_attempt_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(next_attempt_at),
    ALTER COLUMN sent_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(sent_at),
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD CONSTRAINT emails_status CHECK (status IN ('queued', 'sent', 'kept', 'failed')),
    ADD CONSTRAINT emails_kind CHECK (kind IN ('payment_instructions', 'payment_succeeded',
        'payment_failed', 'licenses', 'unpaid_reminder', 'endpoint_disabled', 'pool_empty',
        'pool_low', 'delivery_failed')),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE;

ALTER TABLE plugins
    ALTER COLUMN config TYPE jsonb USING config::jsonb,
    ALTER COLUMN secrets TYPE jsonb USING secrets::jsonb,
    ALTER COLUMN allowed_hosts TYPE jsonb USING allowed_hosts::jsonb,
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER COLUMN updated_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(updated_at),
    ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

ALTER TABLE plugin_versions
    ALTER COLUMN created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ADD FOREIGN KEY (tenant_id, plugin_id) REFERENCES plugins (tenant_id, id) ON DELETE CASCADE;

-- The list pages: orders newest first (ids are ULIDs, so by id), by status, by email;
-- deliveries by endpoint and events by order exist since 0003 and 0002.
CREATE INDEX orders_newest ON orders (tenant_id, id DESC);
CREATE INDEX orders_by_email ON orders (tenant_id, email);
DROP INDEX orders_by_status;
CREATE INDEX orders_by_status ON orders (tenant_id, status, id DESC);
CREATE INDEX emails_by_order ON emails (tenant_id, order_id);
CREATE INDEX license_keys_by_line ON license_keys (tenant_id, order_id, line_no);
