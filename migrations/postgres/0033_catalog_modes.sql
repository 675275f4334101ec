-- Products, coupons and checkout links belong to a mode, as on Stripe
-- (docs/payments.md): a test key sees and changes only the test catalog, the test
-- checkout sells only test products with test coupons, the live checkout only live
-- ones. So that no one loses what worked, every existing product, coupon and checkout
-- link stays live and gets a test twin with the same id: an existing test buy link,
-- signed link or test cart keeps naming a product of its world, and so does a test
-- order's line. The keys become (tenant_id, livemode, id), a coupon's code is unique
-- per (tenant_id, livemode, code), and a link names a product of its own mode.
-- A coupon's `times_redeemed` counts the paid orders of its own world. `livemode` has
-- no default: every row written says its mode.

ALTER TABLE checkout_links DROP CONSTRAINT checkout_links_tenant_id_product_id_fkey;

ALTER TABLE products ADD COLUMN livemode boolean NOT NULL DEFAULT true;
ALTER TABLE products DROP CONSTRAINT products_pkey;
INSERT INTO products (tenant_id, livemode, id, name, description, prices, delivery, active,
    created_at, updated_at)
SELECT tenant_id, false, id, name, description, prices, delivery, active, created_at,
       updated_at
  FROM products;
ALTER TABLE products ADD PRIMARY KEY (tenant_id, livemode, id),
    ALTER COLUMN livemode DROP DEFAULT;

ALTER TABLE coupons ADD COLUMN livemode boolean NOT NULL DEFAULT true;
ALTER TABLE coupons DROP CONSTRAINT coupons_pkey,
    DROP CONSTRAINT coupons_tenant_id_code_key;
INSERT INTO coupons (tenant_id, livemode, id, code, percent_off, amount_off, currency,
    expires_at, max_redemptions, times_redeemed, product_ids, active, created_at)
SELECT tenant_id, false, id, code, percent_off, amount_off, currency, expires_at,
       max_redemptions, 0, product_ids, active, created_at
  FROM coupons;
UPDATE coupons c SET times_redeemed = (
    SELECT COUNT(*) FROM orders o
     WHERE o.tenant_id = c.tenant_id AND o.coupon_code = c.code
       AND o.status IN ('paid', 'refunded') AND o.test_mode = NOT c.livemode);
ALTER TABLE coupons ADD PRIMARY KEY (tenant_id, livemode, id),
    ADD UNIQUE (tenant_id, livemode, code),
    ALTER COLUMN livemode DROP DEFAULT;

ALTER TABLE checkout_links ADD COLUMN livemode boolean NOT NULL DEFAULT true;
ALTER TABLE checkout_links DROP CONSTRAINT checkout_links_pkey;
INSERT INTO checkout_links (tenant_id, livemode, id, product_id, quantity, currency,
    coupon_code, offer, created_at)
SELECT tenant_id, false, id, product_id, quantity, currency, coupon_code, offer, created_at
  FROM checkout_links;
ALTER TABLE checkout_links ADD PRIMARY KEY (tenant_id, livemode, id),
    ALTER COLUMN livemode DROP DEFAULT,
    ADD FOREIGN KEY (tenant_id, livemode, product_id)
        REFERENCES products (tenant_id, livemode, id) ON DELETE CASCADE;
