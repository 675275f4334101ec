-- The dashboard: people sign in with a verified email and a password, work in a store
-- through a session, are sent one-time links (verify, reset) and invitations, and get
-- account emails that belong to no store. Tokens are kept only as SHA-256 hashes.

ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

ALTER TABLE memberships DROP CONSTRAINT memberships_role;
UPDATE memberships SET role = 'developer' WHERE role = 'admin';
ALTER TABLE memberships
    ADD CONSTRAINT memberships_role CHECK (role IN ('owner', 'developer', 'support'));

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The store the user is working in; none before they create or join one.
    tenant_id   TEXT REFERENCES tenants (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE account_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL
);

CREATE TABLE invitations (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    email        TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'developer', 'support')),
    token_hash   TEXT NOT NULL UNIQUE,
    invited_by   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Sent by a worker like the store outbox; the bodies (which hold a one-time link) are
-- cleared once the email is sent.
CREATE TABLE account_emails (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('verify_email', 'reset_password', 'invitation')),
    to_address       TEXT NOT NULL,
    subject          TEXT NOT NULL,
    text_body        TEXT,
    html_body        TEXT,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'kept', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    sent_at          timestamptz,
    created_at       timestamptz NOT NULL
);

-- A store's logo, uploaded on the dashboard and served at /{slug}/logo.
CREATE TABLE tenant_logos (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    content_type  TEXT NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/gif', 'image/webp')),
    data          bytea NOT NULL,
    updated_at    timestamptz NOT NULL
);
