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

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest an entry is kept: how soon a change made by another process counts here.
pub const KEPT_FOR: Duration = Duration::from_secs(1);

/// Entries kept at most; past it everything is forgotten and read again.
const MOST_ENTRIES: usize = 10_000;

/// Entries by a name their reader makes (`key:<hash>`, `store:<slug>`), each of the
/// type its reader keeps.
#[derive(Default)]
pub(crate) struct Recent {
    inner: Mutex<Kept>,
}

/// Counts only: names hold hashes of API keys, which are not to be printed.
impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent")
            .field("entries", &self.kept().entries.len())
            .finish()
    }
}

#[derive(Default)]
struct Kept {
    /// Counts the times everything was forgotten.
    generation: u64,
    entries: HashMap<String, (Instant, Arc<dyn Any + Send + Sync>)>,
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

    /// The entry `name`, if kept less than [`KEPT_FOR`] ago.
    pub(crate) fn get<T: Clone + 'static>(&self, name: &str) -> Option<T> {
        let kept = self.kept();
        let (at, value) = kept.entries.get(name)?;
        if at.elapsed() >= KEPT_FOR {
            return None;
        }
        value.downcast_ref::<T>().cloned()
    }

    /// Keeps `value` as `name`, unless everything was forgotten since `since` (the read
    /// may have seen what was changed since).
    pub(crate) fn keep<T: Send + Sync + 'static>(&self, since: u64, name: String, value: T) {
        let mut kept = self.kept();
        if kept.generation != since {
            return;
        }
        if kept.entries.len() >= MOST_ENTRIES {
            kept.entries.clear();
        }
        kept.entries.insert(name, (Instant::now(), Arc::new(value)));
    }

    /// Forgets everything kept: after any change to a store or a key.
    pub(crate) fn forget(&self) {
        let mut kept = self.kept();
        kept.generation = kept.generation.wrapping_add(1);
        kept.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_forgets_what_was_kept() {
        let recent = Recent::default();
        let since = recent.generation();
        recent.keep(since, "store:acme".into(), "Acme".to_owned());
        assert_eq!(recent.get::<String>("store:acme").as_deref(), Some("Acme"));
        recent.forget();
        assert_eq!(recent.get::<String>("store:acme"), None);
    }

    #[test]
    fn a_read_begun_before_a_change_is_not_kept() {
        let recent = Recent::default();
        let since = recent.generation();
        recent.forget();
        recent.keep(since, "store:acme".into(), "Acme".to_owned());
        assert_eq!(recent.get::<String>("store:acme"), None);
    }
}
