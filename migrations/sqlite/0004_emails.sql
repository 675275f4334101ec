-- The email outbox. A row is written in the transaction of the change that causes the
-- email (an order paid, a payment failed); a worker renders it from the templates under
-- web/emails, sends it over SMTP when configured (retrying transient failures) or keeps
-- it here when not, so a fresh install loses none.

CREATE TABLE emails (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    id               TEXT NOT NULL,
    kind             TEXT NOT NULL,
    order_id         TEXT,
    dedupe_key       TEXT NOT NULL,
    to_address       TEXT NOT NULL,
    locale           TEXT NOT NULL,
    status           TEXT NOT NULL,
    subject          TEXT,
    text_body        TEXT,
    html_body        TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    locked_until     INTEGER,
    last_error       TEXT,
    sent_at          INTEGER,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, dedupe_key)
);
CREATE INDEX emails_due ON emails (status, next_attempt_at);
