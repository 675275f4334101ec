//! Compiled components, kept by content hash (SHA-256 of the upload) for one engine.
//!
//! In memory: at most `max_bytes` of compiled code; the least recently used component
//! goes first (it is read back from disk, not recompiled, when it is needed again).
//! On disk: `<dir>/<engine>/<sha256>.cwasm`, where `<engine>` is a hash of wasmtime's
//! precompile compatibility hash (its version and every setting that changes the
//! code), so an artifact is only ever loaded by an engine that can run it. Files are
//! written whole (a temporary file renamed), so a crash leaves none half written.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmtime::Engine;

pub(crate) struct Cache<T> {
    dir: Option<PathBuf>,
    max_bytes: usize,
    entries: Mutex<Entries<T>>,
}

struct Entries<T> {
    map: HashMap<String, Entry<T>>,
    bytes: usize,
    clock: u64,
}

struct Entry<T> {
    value: T,
    bytes: usize,
    used: u64,
}

/// A content hash is 64 hex digits; anything else never becomes a file name.
fn is_sha256(sha: &str) -> bool {
    sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

impl<T: Clone> Cache<T> {
    /// `dir`: where compiled artifacts are kept on disk (none: memory only).
    pub(crate) fn new(
        engine: &Engine,
        dir: Option<&Path>,
        max_bytes: usize,
    ) -> std::io::Result<Self> {
        let dir = match dir {
            Some(dir) => {
                let mut hasher = DefaultHasher::new();
                engine.precompile_compatibility_hash().hash(&mut hasher);
                let dir = dir.join(format!("{:016x}", hasher.finish()));
                std::fs::create_dir_all(&dir)?;
                Some(dir)
            }
            None => None,
        };
        Ok(Self {
            dir,
            max_bytes,
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                bytes: 0,
                clock: 0,
            }),
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<T>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The component compiled from `sha`, if it is in memory.
    pub(crate) fn get(&self, sha: &str) -> Option<T> {
        let mut entries = self.entries();
        entries.clock += 1;
        let now = entries.clock;
        let entry = entries.map.get_mut(sha)?;
        entry.used = now;
        Some(entry.value.clone())
    }

    /// Keeps `value` (of `bytes` compiled bytes) in memory, evicting the least recently
    /// used components beyond the bound. One component larger than the bound is kept
    /// alone.
    pub(crate) fn insert(&self, sha: &str, value: T, bytes: usize) {
        let mut entries = self.entries();
        entries.clock += 1;
        let used = entries.clock;
        if let Some(old) = entries
            .map
            .insert(sha.to_owned(), Entry { value, bytes, used })
        {
            entries.bytes -= old.bytes;
        }
        entries.bytes += bytes;
        while entries.bytes > self.max_bytes && entries.map.len() > 1 {
            let Some(oldest) = entries
                .map
                .iter()
                .filter(|(k, _)| k.as_str() != sha)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = entries.map.remove(&oldest) {
                entries.bytes -= gone.bytes;
                tracing::debug!(sha256 = %oldest, "compiled plugin evicted from memory");
            }
        }
    }

    /// Compiled bytes held in memory, and how many components.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let entries = self.entries();
        (entries.bytes, entries.map.len())
    }

    /// Where the artifact for `sha` is kept on disk, if anywhere.
    pub(crate) fn path(&self, sha: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        is_sha256(sha).then(|| dir.join(format!("{sha}.cwasm")))
    }

    /// Writes the artifact for `sha`; a failure only costs a recompile later.
    pub(crate) fn store(&self, sha: &str, artifact: &[u8]) {
        let (Some(path), Some(dir)) = (self.path(sha), self.dir.as_ref()) else {
            return;
        };
        let written = tempfile::NamedTempFile::new_in(dir).and_then(|mut file| {
            std::io::Write::write_all(&mut file, artifact)?;
            file.persist(&path).map_err(|e| e.error)?;
            Ok(())
        });
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "could not keep a compiled plugin on disk");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> String {
        format!("{n:064x}")
    }

    #[test]
    fn the_least_recently_used_goes_first_beyond_the_bound() {
        let cache = Cache::<u8>::new(&Engine::default(), None, 100).unwrap();
        cache.insert(&sha(1), 1, 40);
        cache.insert(&sha(2), 2, 40);
        assert_eq!(cache.get(&sha(1)), Some(1));
        cache.insert(&sha(3), 3, 40);
        assert_eq!(cache.get(&sha(2)), None, "the least recently used went");
        assert_eq!(cache.get(&sha(1)), Some(1));
        assert_eq!(cache.get(&sha(3)), Some(3));
        assert_eq!(cache.usage(), (80, 2));
        cache.insert(&sha(4), 4, 500);
        assert_eq!(cache.usage(), (500, 1), "a big one is kept alone");
    }

    #[test]
    fn only_content_hashes_name_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::<u8>::new(&Engine::default(), Some(dir.path()), 100).unwrap();
        assert!(cache.path("../../etc/passwd").is_none());
        assert!(cache.path(&sha(1)).unwrap().starts_with(dir.path()));
    }
}
