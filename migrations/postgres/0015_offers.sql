-- Signed offers (issue 14). A checkout link keeps the offer it signs; an order keeps
-- when the earliest signed offer of its lines stops holding, so that it is not paid
-- online after.
ALTER TABLE checkout_links ADD COLUMN offer jsonb;
ALTER TABLE orders ADD COLUMN offer_expires_at timestamptz;
