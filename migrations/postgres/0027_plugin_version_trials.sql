-- A version made live is on trial until it delivers a line: if it fails in the sandbox
-- first, Kassa takes it off (`withdrawn`, why) and makes `fallback_version` (the version
-- that served before) live again. `last_version` numbers uploads without reusing the
-- number of a deleted version.
ALTER TABLE plugins ADD COLUMN fallback_version BIGINT;
ALTER TABLE plugins ADD COLUMN last_version BIGINT NOT NULL DEFAULT 0;
UPDATE plugins SET last_version = (
    SELECT MAX(version) FROM plugin_versions v
    WHERE v.tenant_id = plugins.tenant_id AND v.plugin_id = plugins.id
);
ALTER TABLE plugin_versions ADD COLUMN proven_at timestamptz;
ALTER TABLE plugin_versions ADD COLUMN withdrawn TEXT;
ALTER TABLE plugin_versions ADD COLUMN withdrawn_at timestamptz;
-- Versions that served before this migration have delivered (or were never tried on a
-- real order): they count as proven, so nothing is on trial after it.
UPDATE plugin_versions SET proven_at = created_at;
