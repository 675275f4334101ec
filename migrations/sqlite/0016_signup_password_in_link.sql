-- A sign-up's password waits in its verification link's row and becomes the account's
-- only when that link is used: someone who signs up with another person's email first
-- cannot set the password that person's own verification then unlocks.
ALTER TABLE account_tokens ADD COLUMN password_hash TEXT;
