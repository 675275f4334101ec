//! Running the real `kassa` binary: migrate, create a store, start `kassa serve`, time
//! its cold start, read its memory, and stop it. Also a throwaway PostgreSQL server
//! when the caller gives none.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running `kassa serve`.
pub struct Kassa {
    child: Child,
    pub base: String,
    pub cold_start: Duration,
}

/// The secrets key of every `kassa` the bench runs: one key for its `migrate`,
/// `tenant create` and `serve` on one database. Not a secret: the bench's stores are
/// thrown away.
const SECRETS_KEY: &str = "MICJh89PbPRHoT/WRsngLx89tg4ig9daM3ISZeqQ4RQ=";

/// What every `kassa` command of the bench gets: the database, the secrets key, and no
/// limits meant for anonymous visitors (the load comes from one address).
fn command(bin: &Path, db_url: &str) -> Command {
    let mut c = Command::new(bin);
    c.env("KASSA_DATABASE_URL", db_url)
        .env("KASSA_SECRETS_KEY", SECRETS_KEY)
        .env("KASSA_ALLOW_PRIVATE_NETWORK", "true")
        .env("KASSA_WEBHOOK_RETRY_SCHEDULE", "0s,1s,2s,5s")
        .env("KASSA_UNPAID_REMINDER_AFTER", "off")
        .env("RUST_LOG", "warn");
    for limit in [
        "FORMS_PER_IP",
        "ORDERS_PER_IP",
        "ORDERS_PER_STORE",
        "EMAILS_PER_ADDRESS",
        "CARD_TRIES_PER_IP",
        "CARD_TRIES_PER_ORDER",
        "CARD_TRIES_PER_STORE",
    ] {
        c.env(format!("KASSA_RATE_LIMIT_{limit}"), "off");
    }
    c
}

/// `kassa migrate`, then `kassa tenant create`: the new store's API key.
pub fn prepare(bin: &Path, db_url: &str) -> anyhow::Result<String> {
    let out = command(bin, db_url).arg("migrate").output()?;
    if !out.status.success() {
        bail!(
            "kassa migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = command(bin, db_url)
        .args([
            "tenant",
            "create",
            "--slug",
            "bench",
            "--name",
            "Bench",
            "--owner-email",
            "owner@bench.test",
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "kassa tenant create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let created: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    created["api_key"]
        .as_str()
        .map(str::to_owned)
        .context("kassa tenant create printed no api_key")
}

/// A free loopback port.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Kassa {
    /// Starts `kassa serve` (workers included) on a migrated database and waits for
    /// `/readyz`; the wait is the cold start.
    pub async fn start(bin: &Path, db_url: &str, log: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let child = command(bin, db_url)
            .arg("serve")
            .env("KASSA_LISTEN", format!("127.0.0.1:{port}"))
            .env("KASSA_PUBLIC_URL", &base)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut kassa = Self {
            child,
            base,
            cold_start: Duration::ZERO,
        };
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", kassa.base)).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Some(status) = kassa.child.try_wait()? {
                bail!("kassa serve exited ({status}); see {}", log.display());
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("kassa serve not ready after 30 s; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        kassa.cold_start = started.elapsed();
        Ok(kassa)
    }

    /// Resident memory, in MB.
    pub fn rss_mb(&self) -> f64 {
        rss_mb(self.child.id()).unwrap_or(0.0)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Kassa {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// VmRSS of a process, in MB.
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// A throwaway PostgreSQL cluster under `dir` (as `tests/run.sh` starts one), with the
/// server's default durability (fsync on). Stopped on drop.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    pub url: String,
}

/// `runuser -u postgres --` when running as root (initdb refuses root).
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (/usr/lib/postgresql); pass --postgres-url")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .context("no initdb under /usr/lib/postgresql")?;
        let data = dir.join("pg");
        std::fs::create_dir_all(&data)?;
        let _ = Command::new("chown")
            .arg("postgres")
            .arg(dir)
            .arg(&data)
            .status();
        let ok = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(data.join("data"))
            .args(["-U", "kassa", "--auth=trust", "-E", "UTF8"])
            .stdout(Stdio::null())
            .status()?;
        if !ok.success() {
            bail!("initdb failed");
        }
        let port = free_port()?;
        let ok = as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(data.join("data"))
            .arg("-l")
            .arg(data.join("log"))
            .arg("-w")
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
                data.display()
            ))
            .arg("start")
            .stdout(Stdio::null())
            .status()?;
        if !ok.success() {
            bail!("pg_ctl start failed; see {}", data.join("log").display());
        }
        Ok(Self {
            bin,
            data,
            url: format!("postgres://kassa@127.0.0.1:{port}/postgres"),
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

/// A new empty database on the server at `server_url`; its URL.
pub async fn fresh_database(server_url: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(server_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await?;
    let mut url = url_without_db(server_url);
    url.push_str(name);
    Ok(url)
}

/// `postgres://user@host:port/` of a URL naming a database.
fn url_without_db(url: &str) -> String {
    let (base, _query) = url.split_once('?').unwrap_or((url, ""));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    match base[after_scheme..].find('/') {
        Some(i) => base[..after_scheme + i + 1].to_owned(),
        None => format!("{base}/"),
    }
}
