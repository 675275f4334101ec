-- Products, coupons and checkout links belong to a mode, as on Stripe
-- (docs/payments.md): a test key sees and changes only the test catalog, the test
-- checkout sells only test products with test coupons, the live checkout only live
-- ones. So that no one loses what worked, every existing product, coupon and checkout
-- link stays live and gets a test twin with the same id: an existing test buy link,
-- signed link or test cart keeps naming a product of its world, and so does a test
-- order's line. The keys become (tenant_id, livemode, id), a coupon's code is unique
-- per (tenant_id, livemode, code), and a link names a product of its own mode.
-- A coupon's `times_redeemed` counts the paid orders of its own world.
--
-- SQLite changes a primary key only by making the table again. sqlx runs this in a
-- transaction, where `PRAGMA foreign_keys` cannot change: the new tables are made
-- and filled beside the old ones, the old ones dropped (the child first), and the new
-- ones renamed, which rewrites the link's reference to `products` (SQLite 3.26+).
PRAGMA defer_foreign_keys = ON;

CREATE TABLE products_moded (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    livemode     INTEGER NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    prices       TEXT NOT NULL,
    delivery     TEXT NOT NULL,
    active       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, livemode, id)
);
INSERT INTO products_moded (tenant_id, livemode, id, name, description, prices, delivery,
    active, created_at, updated_at)
SELECT tenant_id, m.livemode, id, name, description, prices, delivery, active, created_at,
       updated_at
  FROM products, (SELECT 1 AS livemode UNION ALL SELECT 0) m;

CREATE TABLE checkout_links_moded (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    livemode     INTEGER NOT NULL,
    id           TEXT NOT NULL,
    product_id   TEXT NOT NULL,
    quantity     INTEGER NOT NULL,
    currency     TEXT,
    coupon_code  TEXT,
    created_at   INTEGER NOT NULL,
    offer        TEXT,
    PRIMARY KEY (tenant_id, livemode, id),
    FOREIGN KEY (tenant_id, livemode, product_id)
        REFERENCES products_moded (tenant_id, livemode, id) ON DELETE CASCADE
);
INSERT INTO checkout_links_moded (tenant_id, livemode, id, product_id, quantity, currency,
    coupon_code, created_at, offer)
SELECT tenant_id, m.livemode, id, product_id, quantity, currency, coupon_code, created_at,
       offer
  FROM checkout_links, (SELECT 1 AS livemode UNION ALL SELECT 0) m;

CREATE TABLE coupons_moded (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    livemode         INTEGER NOT NULL,
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
    PRIMARY KEY (tenant_id, livemode, id),
    UNIQUE (tenant_id, livemode, code)
);
INSERT INTO coupons_moded (tenant_id, livemode, id, code, percent_off, amount_off, currency,
    expires_at, max_redemptions, times_redeemed, product_ids, active, created_at)
SELECT c.tenant_id, m.livemode, c.id, c.code, c.percent_off, c.amount_off, c.currency,
       c.expires_at, c.max_redemptions,
       (SELECT COUNT(*) FROM orders o
         WHERE o.tenant_id = c.tenant_id AND o.coupon_code = c.code
           AND o.status IN ('paid', 'refunded') AND o.test_mode = 1 - m.livemode),
       c.product_ids, c.active, c.created_at
  FROM coupons c, (SELECT 1 AS livemode UNION ALL SELECT 0) m;

DROP TABLE checkout_links;
DROP TABLE products;
DROP TABLE coupons;
ALTER TABLE products_moded RENAME TO products;
ALTER TABLE checkout_links_moded RENAME TO checkout_links;
ALTER TABLE coupons_moded RENAME TO coupons;

