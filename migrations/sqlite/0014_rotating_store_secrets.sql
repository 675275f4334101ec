-- The link-signing and web-service signing secrets rotate like webhook secrets: the
-- secret a rotation replaced stays valid until its `_until` time (an overlap window).
ALTER TABLE tenants ADD COLUMN previous_link_secret TEXT;
ALTER TABLE tenants ADD COLUMN previous_link_secret_until INTEGER;
ALTER TABLE tenants ADD COLUMN previous_service_secret TEXT;
ALTER TABLE tenants ADD COLUMN previous_service_secret_until INTEGER;
