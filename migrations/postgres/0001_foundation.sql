-- Tenancy and the merchant catalog, the same shape as on SQLite so one set of queries
-- serves both: times are Unix milliseconds (BIGINT); money is integer minor units;
-- flags are 0/1 integers. Every tenant-owned row has tenant_id first in its primary
-- key, so the schema can be distributed by tenant.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE memberships (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE api_keys (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE products (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    prices       TEXT NOT NULL,
    delivery     TEXT NOT NULL,
    active       BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE coupons (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    id               TEXT NOT NULL,
    code             TEXT NOT NULL,
    percent_off      BIGINT,
    amount_off       BIGINT,
    currency         TEXT,
    expires_at       BIGINT,
    max_redemptions  BIGINT,
    times_redeemed   BIGINT NOT NULL DEFAULT 0,
    product_ids      TEXT NOT NULL,
    active           BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, code)
);

CREATE TABLE checkout_links (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    product_id   TEXT NOT NULL,
    quantity     BIGINT NOT NULL,
    currency     TEXT,
    coupon_code  TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);

CREATE TABLE license_pools (
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    id                   TEXT NOT NULL,
    name                 TEXT NOT NULL,
    low_stock_threshold  BIGINT,
    created_at           BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE license_keys (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    pool_id      TEXT NOT NULL,
    value        TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'available',
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, pool_id, value),
    FOREIGN KEY (tenant_id, pool_id) REFERENCES license_pools (tenant_id, id)
);
CREATE INDEX license_keys_available ON license_keys (tenant_id, pool_id, status, id);

CREATE TABLE webhook_endpoints (
    tenant_id                   TEXT NOT NULL REFERENCES tenants (id),
    id                          TEXT NOT NULL,
    url                         TEXT NOT NULL,
    description                 TEXT,
    event_types                 TEXT NOT NULL,
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_at  BIGINT,
    disabled_at                 BIGINT,
    created_at                  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status_code   BIGINT,
    content_type  TEXT,
    body          TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
