//! What nearly every request reads and rarely changes, kept for a moment in this
//! process: an API key's store and key (by the key's hash), and a store by its URL
//! name. The rule:
//!
//! - a change made through this process (a key revoked, settings saved, a Stripe
//!   account set or removed) forgets everything kept, at once, before the change is
//!   acknowledged: the next request reads the database;
//! - a change made elsewhere (another `kassa serve` on the same PostgreSQL, the CLI)
//!   is seen here within [`KEPT_FOR`], the longest an entry is kept.
//!
//! A read that began before a change is not kept after it: an entry is kept only if
//! nothing was forgotten since its read began ([`Recent::generation`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::tenants::{ApiKeyRecord, TenantRecord};

/// The longest an entry is kept: how soon a change made by another process counts here.
pub const KEPT_FOR: Duration = Duration::from_secs(1);

/// Entries kept at most, per kind; past it everything is forgotten and read again.
const MOST_ENTRIES: usize = 10_000;

#[derive(Default)]
pub(crate) struct Recent {
    inner: Mutex<Kept>,
}

/// Counts only: the keys are hashes of API keys, which are not to be printed.
impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.kept();
        f.debug_struct("Recent")
            .field("keys", &kept.keys.len())
            .field("stores", &kept.slugs.len())
            .finish()
    }
}

#[derive(Default)]
struct Kept {
    /// Counts the times everything was forgotten.
    generation: u64,
    keys: HashMap<String, (Instant, (TenantRecord, ApiKeyRecord))>,
    slugs: HashMap<String, (Instant, TenantRecord)>,
}

fn fresh<K: Hash + Eq, V: Clone>(map: &HashMap<K, (Instant, V)>, key: &K) -> Option<V> {
    map.get(key)
        .filter(|(at, _)| at.elapsed() < KEPT_FOR)
        .map(|(_, v)| v.clone())
}

fn keep<K: Hash + Eq, V>(map: &mut HashMap<K, (Instant, V)>, key: K, value: V) {
    if map.len() >= MOST_ENTRIES {
        map.clear();
    }
    map.insert(key, (Instant::now(), value));
}

impl Recent {
    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A panic while holding the lock leaves nothing half-written worth refusing.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Taken before a read whose result is to be kept.
    pub(crate) fn generation(&self) -> u64 {
        self.kept().generation
    }

    pub(crate) fn key(&self, hash: &str) -> Option<(TenantRecord, ApiKeyRecord)> {
        fresh(&self.kept().keys, &hash.to_owned())
    }

    pub(crate) fn keep_key(&self, since: u64, hash: &str, found: &(TenantRecord, ApiKeyRecord)) {
        let mut kept = self.kept();
        if kept.generation == since {
            keep(&mut kept.keys, hash.to_owned(), found.clone());
        }
    }

    pub(crate) fn store(&self, slug: &str) -> Option<TenantRecord> {
        fresh(&self.kept().slugs, &slug.to_owned())
    }

    pub(crate) fn keep_store(&self, since: u64, tenant: &TenantRecord) {
        let mut kept = self.kept();
        if kept.generation == since {
            keep(&mut kept.slugs, tenant.slug.clone(), tenant.clone());
        }
    }

    /// Forgets everything kept: after any change to a store or a key.
    pub(crate) fn forget(&self) {
        let mut kept = self.kept();
        kept.generation = kept.generation.wrapping_add(1);
        kept.keys.clear();
        kept.slugs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_domain::access::KeyScope;
    use kassa_domain::ids::{ApiKeyId, TenantId};

    fn found() -> (TenantRecord, ApiKeyRecord) {
        let tenant = TenantRecord {
            id: TenantId::generate(),
            slug: "acme".into(),
            name: "Acme".into(),
            settings: "{}".into(),
            created_at: crate::Timestamp::now(),
            stripe_test_ready: false,
            stripe_live_ready: false,
        };
        let key = ApiKeyRecord {
            id: ApiKeyId::generate(),
            tenant_id: tenant.id.clone(),
            name: "Default".into(),
            prefix: "kassa_sk_".into(),
            scope: KeyScope::Full,
            livemode: true,
            created_at: crate::Timestamp::now(),
            revoked_at: None,
        };
        (tenant, key)
    }

    #[test]
    fn a_change_forgets_what_was_kept() {
        let recent = Recent::default();
        let since = recent.generation();
        recent.keep_key(since, "h", &found());
        recent.keep_store(since, &found().0);
        assert!(recent.key("h").is_some());
        assert!(recent.store("acme").is_some());
        recent.forget();
        assert!(recent.key("h").is_none());
        assert!(recent.store("acme").is_none());
    }

    #[test]
    fn a_read_begun_before_a_change_is_not_kept() {
        let recent = Recent::default();
        let since = recent.generation();
        recent.forget();
        recent.keep_key(since, "h", &found());
        recent.keep_store(since, &found().0);
        assert!(recent.key("h").is_none());
        assert!(recent.store("acme").is_none());
    }
}
