-- Unpaid orders: when the reminder went out. Deleted orders keep their row (status
-- deleted) with the customer's personal data erased.
ALTER TABLE orders ADD COLUMN reminded_at INTEGER;
