-- The dashboard: people sign in with a verified email and a password, work in a store
-- through a session, are sent one-time links (verify, reset) and invitations, and get
-- account emails that belong to no store. Tokens are kept only as SHA-256 hashes.

ALTER TABLE users ADD COLUMN email_verified_at INTEGER;

UPDATE memberships SET role = 'developer' WHERE role = 'admin';

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The store the user is working in; none before they create or join one.
    tenant_id   TEXT REFERENCES tenants (id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE account_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    created_at  INTEGER NOT NULL
);

CREATE TABLE invitations (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    email        TEXT NOT NULL,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    invited_by   TEXT NOT NULL REFERENCES users (id),
    expires_at   INTEGER NOT NULL,
    accepted_at  INTEGER,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Sent by a worker like the store outbox; the bodies (which hold a one-time link) are
-- cleared once the email is sent.
CREATE TABLE account_emails (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    to_address       TEXT NOT NULL,
    subject          TEXT NOT NULL,
    text_body        TEXT,
    html_body        TEXT,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    sent_at          INTEGER,
    created_at       INTEGER NOT NULL
);

-- A store's logo, uploaded on the dashboard and served at /{slug}/logo.
CREATE TABLE tenant_logos (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    content_type  TEXT NOT NULL,
    data          BLOB NOT NULL,
    updated_at    INTEGER NOT NULL
);
