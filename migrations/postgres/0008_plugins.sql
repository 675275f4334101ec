-- Fulfillment plugins: each upload is a version; the newest is the one that runs.
-- Config is shown to the plugin and the merchant; secrets only to the plugin.

CREATE TABLE plugins (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    id               TEXT NOT NULL,
    name             TEXT NOT NULL,
    current_version  BIGINT NOT NULL,
    config           TEXT NOT NULL,
    secrets          TEXT NOT NULL,
    allowed_hosts    TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE plugin_versions (
    tenant_id   TEXT NOT NULL,
    plugin_id   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    wasm        BYTEA NOT NULL,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id, version),
    FOREIGN KEY (tenant_id, plugin_id) REFERENCES plugins (tenant_id, id)
);
