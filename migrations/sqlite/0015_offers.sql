-- Signed offers (issue 14). A checkout link keeps the offer it signs (JSON); an order
-- keeps when the earliest signed offer of its lines stops holding, so that it is not
-- paid online after (Unix milliseconds, like every time on SQLite).
ALTER TABLE checkout_links ADD COLUMN offer TEXT;
ALTER TABLE orders ADD COLUMN offer_expires_at INTEGER;
