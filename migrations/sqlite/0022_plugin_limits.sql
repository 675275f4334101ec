-- A plugin's own limits (memory in MiB, fuel, timeout in ms), as its merchant set them
-- within the operator's caps; absent ones take the operator's defaults.
ALTER TABLE plugins ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
