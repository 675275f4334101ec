//! Secrets sealed at rest: the values Kassa must read back in clear (a store's Stripe
//! keys and signing secrets, webhook endpoints' secrets, plugins' secrets) are stored
//! sealed with ChaCha20-Poly1305 (`ring`) under the operator's secrets key, so a
//! database dump, backup or replica holds none of them. Every read of those columns
//! opens here and every write seals here; nothing outside the store sees sealed text.
//!
//! A sealed value is `sealed:v1:<key id>:<base64url of nonce and ciphertext>`. The key
//! id is derived from the key (HMAC-SHA256, never the key itself), so a value names the
//! key that opens it and a rotation can keep the previous keys. The associated data
//! binds a value to its store and to the secret it is ([`Place`]): a value copied into
//! another store's row, another column or another endpoint or plugin does not open.
//! A secret and the one it replaced during a rotation's overlap (`previous_…`) share
//! one place, since the rotation moves the sealed value over as it is.
//!
//! The database remembers the id of the key its secrets are sealed under
//! (`secrets_key`, migration 0028): a node whose keys do not include it refuses to
//! start (`Store::use_secrets_key`, `secrets_key.rs`) instead of failing at the first
//! payment.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use kassa_domain::Secret;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::StoreError;

/// What every sealed value starts with (the format's version included).
pub(crate) const PREFIX: &str = "sealed:v1:";
/// Bytes of a secrets key.
const KEY_LEN: usize = 32;

/// One secrets key, ready to seal and open (the AEAD key is built once).
struct SealingKey {
    id: String,
    aead: LessSafeKey,
}

impl SealingKey {
    fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let bytes = [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(raw).ok())
            .filter(|b| b.len() == KEY_LEN)
            .ok_or_else(|| {
                "a secrets key must be base64 of 32 random bytes (make one with \
                 `openssl rand -base64 32`)"
                    .to_owned()
            })?;
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes),
            b"kassa secrets key id v1",
        );
        let id = tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let aead = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| "a bad key".to_owned())?,
        );
        Ok(Self { id, aead })
    }
}

/// The operator's secrets key and the previous ones that still open values during a
/// rotation. Its `Debug` shows key ids only.
pub struct Keyring {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_id", &self.current.id)
            .field("previous_key_ids", &self.previous_ids())
            .finish()
    }
}

impl Keyring {
    /// The keyring of `current` (base64 of 32 bytes) and `previous` keys.
    pub fn new(current: &str, previous: &[&str]) -> Result<Self, String> {
        Ok(Self {
            current: SealingKey::parse(current)?,
            previous: previous
                .iter()
                .map(|k| SealingKey::parse(k))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("a previous key: {e}"))?,
        })
    }

    /// A new random key, base64 of 32 bytes.
    pub fn generate_key() -> Secret {
        let mut key = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut key)
            .expect("the system's random source works");
        Secret::from(STANDARD.encode(key))
    }

    /// A keyring of one new random key (tests, and stores that live as long as the
    /// process).
    pub fn generate() -> Self {
        Self::new(Self::generate_key().expose_secret(), &[])
            .expect("a generated key is a secrets key")
    }

    /// The id of the key values are sealed under (derived from it; not secret).
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// The ids of the previous keys.
    pub fn previous_ids(&self) -> Vec<&str> {
        self.previous.iter().map(|k| k.id.as_str()).collect()
    }

    pub(crate) fn knows(&self, id: &str) -> bool {
        self.current.id == id || self.previous.iter().any(|k| k.id == id)
    }

    /// `clear` sealed under the current key for `place`.
    pub(crate) fn seal(&self, place: &Place, clear: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut sealed = clear.as_bytes().to_vec();
        self.current
            .aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(place.data.as_bytes()),
                &mut sealed,
            )
            .expect("ChaCha20-Poly1305 seals any secret of a sane length");
        format!(
            "{PREFIX}{}:{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat())
        )
    }

    /// The secret sealed in `stored` for `place`. A value in clear, sealed for another
    /// place, altered, or under a key this node does not have is an error that names
    /// no part of the value.
    pub(crate) fn open(&self, place: &Place, stored: &str) -> Result<Secret, StoreError> {
        let (id, sealed) = stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "a secret in {} is not sealed (run `kassa migrate`)",
                    place.column
                ))
            })?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| {
                StoreError::SecretsKey(format!(
                    "a secret in {} is sealed under the key {id}, which this node does not \
                     have: add it to secrets_previous_keys (KASSA_SECRETS_PREVIOUS_KEYS)",
                    place.column
                ))
            })?;
        let broken = || {
            StoreError::Corrupt(format!(
                "a sealed secret in {} does not open: it was altered or copied from \
                 another row",
                place.column
            ))
        };
        let sealed = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| broken())?;
        let (nonce, sealed) = sealed.split_at_checked(NONCE_LEN).ok_or_else(broken)?;
        let mut sealed = sealed.to_vec();
        let clear = key
            .aead
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| broken())?,
                Aad::from(place.data.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| broken())?;
        String::from_utf8(clear.to_vec())
            .map(Secret::from)
            .map_err(|_| broken())
    }

    /// Whether `stored` is sealed under the current key.
    pub(crate) fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current.id)
    }
}

/// Where a secret lives, as its sealed value's associated data: the store, and which
/// secret of it.
pub(crate) struct Place {
    data: String,
    /// For errors: the column, never the value.
    column: &'static str,
}

impl Place {
    /// The store's secret kept in `column` of `tenants` (its `previous_…` shares it).
    pub(crate) fn tenant(tenant: &str, column: &'static str) -> Self {
        Self {
            data: format!("kassa secret v1\0{tenant}\0tenants.{column}"),
            column,
        }
    }

    /// A webhook endpoint's signing secret (and its previous one).
    pub(crate) fn endpoint(tenant: &str, endpoint: &str) -> Self {
        Self {
            data: format!("kassa secret v1\0{tenant}\0webhook_endpoints.secret\0{endpoint}"),
            column: "webhook_endpoints.secret",
        }
    }

    /// The plugin's secret called `name`.
    pub(crate) fn plugin(tenant: &str, plugin: &str, name: &str) -> Self {
        Self {
            data: format!("kassa secret v1\0{tenant}\0plugins.secrets\0{plugin}\0{name}"),
            column: "plugins.secrets",
        }
    }
}
