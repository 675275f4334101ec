-- Scoped API keys: `read_only`, `orders` or `full` (kassa_domain::access). Keys made
-- before could do everything, so they stay `full`.
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'full';
