-- Hosted checkout: carts, orders with their lines, consents and payment attempts, and
-- the events each state change emits.

ALTER TABLE tenants ADD COLUMN link_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN order_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE carts (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    id              TEXT NOT NULL,
    token           TEXT NOT NULL UNIQUE,
    lines           TEXT NOT NULL,
    currency        TEXT,
    coupon_code     TEXT,
    email           TEXT,
    name            TEXT,
    locale          TEXT,
    return_url      TEXT,
    custom          TEXT NOT NULL,
    payment_method  TEXT,
    order_id        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE orders (
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    id                 TEXT NOT NULL,
    number             BIGINT NOT NULL,
    token              TEXT NOT NULL UNIQUE,
    status             TEXT NOT NULL,
    delivery_status    TEXT NOT NULL,
    currency           TEXT NOT NULL,
    subtotal           BIGINT NOT NULL,
    discount           BIGINT NOT NULL,
    tax                BIGINT NOT NULL,
    total              BIGINT NOT NULL,
    email              TEXT,
    name               TEXT,
    locale             TEXT NOT NULL,
    payment_method     TEXT NOT NULL,
    payment_reference  TEXT NOT NULL UNIQUE,
    coupon_code        TEXT,
    custom             TEXT NOT NULL,
    test_mode          BIGINT NOT NULL,
    return_url         TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    paid_at            BIGINT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, number)
);
CREATE INDEX orders_by_status ON orders (tenant_id, status, created_at);

CREATE TABLE order_lines (
    tenant_id        TEXT NOT NULL,
    order_id         TEXT NOT NULL,
    line_no          BIGINT NOT NULL,
    product_id       TEXT NOT NULL,
    name             TEXT NOT NULL,
    quantity         BIGINT NOT NULL,
    unit_amount      BIGINT NOT NULL,
    subtotal         BIGINT NOT NULL,
    discount         BIGINT NOT NULL,
    total            BIGINT NOT NULL,
    delivery_status  TEXT NOT NULL,
    licenses         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, order_id, line_no),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id)
);

CREATE TABLE order_consents (
    tenant_id     TEXT NOT NULL,
    order_id      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    text_version  TEXT NOT NULL,
    accepted_at   BIGINT NOT NULL,
    ip            TEXT,
    user_agent    TEXT,
    PRIMARY KEY (tenant_id, order_id, kind),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id)
);

CREATE TABLE payments (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    order_id         TEXT NOT NULL,
    method           TEXT NOT NULL,
    status           TEXT NOT NULL,
    amount           BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    failure_code     TEXT,
    failure_message  TEXT,
    card_brand       TEXT,
    card_last4       TEXT,
    reference        TEXT,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id)
);
CREATE INDEX payments_by_order ON payments (tenant_id, order_id);

CREATE TABLE events (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    id          TEXT NOT NULL,
    type        TEXT NOT NULL,
    order_id    TEXT,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX events_by_order ON events (tenant_id, order_id);
