-- Tenancy and the merchant catalog. Times are Unix milliseconds; money is integer
-- minor units; flags are 0/1 integers. Every tenant-owned row has tenant_id first in
-- its primary key, as on PostgreSQL.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT,
    created_at     INTEGER NOT NULL
);

CREATE TABLE memberships (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE api_keys (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE products (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    prices       TEXT NOT NULL,
    delivery     TEXT NOT NULL,
    active       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE coupons (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    id               TEXT NOT NULL,
    code             TEXT NOT NULL,
    percent_off      INTEGER,
    amount_off       INTEGER,
    currency         TEXT,
    expires_at       INTEGER,
    max_redemptions  INTEGER,
    times_redeemed   INTEGER NOT NULL DEFAULT 0,
    product_ids      TEXT NOT NULL,
    active           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, code)
);

CREATE TABLE checkout_links (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    product_id   TEXT NOT NULL,
    quantity     INTEGER NOT NULL,
    currency     TEXT,
    coupon_code  TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);

CREATE TABLE license_pools (
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    id                   TEXT NOT NULL,
    name                 TEXT NOT NULL,
    low_stock_threshold  INTEGER,
    created_at           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE license_keys (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    pool_id      TEXT NOT NULL,
    value        TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'available',
    created_at   INTEGER NOT NULL,
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
    previous_secret_expires_at  INTEGER,
    disabled_at                 INTEGER,
    created_at                  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status_code   INTEGER,
    content_type  TEXT,
    body          TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
