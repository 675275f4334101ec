-- Secrets Kassa must read back in clear (Stripe keys, signing secrets, plugins'
-- secrets) are stored sealed under the operator's secrets key (`kassa-store`
-- `sealed.rs`). This row names that key by its id (derived from the key; never the
-- key), so a node started with another key refuses to start. The values stored in
-- clear before are sealed by Kassa when it starts, since SQL has no key to seal with.
CREATE TABLE secrets_key (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    key_id  TEXT NOT NULL
);
