//! The operator's secrets key, which seals the secrets Kassa keeps in the database
//! (`kassa_store::Keyring`): `secrets_key` when it is set, or else the key file
//! (`secrets_key_file`), created on first start, so `kassa serve` on SQLite starts with
//! no configuration. The key is never logged; the file only by its path.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use kassa_store::Keyring;
use secrecy::ExposeSecret;

use crate::Config;

/// The keyring `config` names: its key (or the key file's) and the previous keys.
pub fn keyring(config: &Config) -> anyhow::Result<Keyring> {
    let previous = config
        .secrets_previous_keys
        .as_ref()
        .map(|keys| keys.expose_secret().to_owned())
        .unwrap_or_default();
    let previous: Vec<&str> = previous
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    let current = match &config.secrets_key {
        Some(key) if !key.expose_secret().trim().is_empty() => {
            secrecy::SecretString::from(key.expose_secret().to_owned())
        }
        _ => read_or_create(Path::new(&config.secrets_key_file))?,
    };
    Keyring::new(current.expose_secret(), &previous)
        .map_err(|e| anyhow::anyhow!("secrets_key (KASSA_SECRETS_KEY): {e}"))
}

/// The key kept in `path`, made first if there is none. Several processes starting at
/// once agree on one key: the new key is written to a file of its own and linked into
/// place only if no other got there first.
fn read_or_create(path: &Path) -> anyhow::Result<secrecy::SecretString> {
    match std::fs::read_to_string(path) {
        Ok(key) => {
            warn_if_readable_by_others(path);
            return Ok(secrecy::SecretString::from(key.trim().to_owned()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading the secrets key file {}", path.display()));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the directory of {}", path.display()))?;
    }
    let key = Keyring::generate_key();
    let draft = path.with_extension(format!("new-{}", std::process::id()));
    let written = (|| {
        let mut file = private_file(&draft)?;
        file.write_all(key.expose_secret().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    })();
    written.with_context(|| format!("writing the secrets key file {}", draft.display()))?;
    let linked = std::fs::hard_link(&draft, path);
    let _ = std::fs::remove_file(&draft);
    match linked {
        Ok(()) => {
            tracing::info!(
                path = %path.display(),
                "created a new secrets key file: back it up apart from the database (without \
                 it the stored secrets cannot be read), and give every node on this database \
                 the same key"
            );
            Ok(secrecy::SecretString::from(key.expose_secret().to_owned()))
        }
        // Another process made it first: use its key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_or_create(path),
        Err(e) => {
            Err(e).with_context(|| format!("creating the secrets key file {}", path.display()))
        }
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the secrets key file can be read by other users: chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}
