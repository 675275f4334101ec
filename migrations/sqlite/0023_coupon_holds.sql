-- A coupon's use is held by an unpaid order for a while and counted for good when the
-- order is paid (issue 14): unpaid orders can no longer use up a limited coupon.
-- `times_redeemed` now counts paid orders only; an unpaid order holds its use until
-- `coupon_held_until` (Unix milliseconds). Existing unpaid orders hold theirs for a day
-- from when they were placed, as new ones do by default.
ALTER TABLE orders ADD COLUMN coupon_held_until INTEGER;
UPDATE orders SET coupon_held_until = created_at + 86400000
    WHERE coupon_code IS NOT NULL AND status = 'not_paid';
UPDATE coupons SET times_redeemed = (
    SELECT COUNT(*) FROM orders o
    WHERE o.tenant_id = coupons.tenant_id AND o.coupon_code = coupons.code
      AND o.status IN ('paid', 'refunded'));
CREATE INDEX orders_coupon_holds ON orders (tenant_id, coupon_code, coupon_held_until)
    WHERE coupon_code IS NOT NULL AND status = 'not_paid';
