//! `kassa serve | worker | migrate | tenant create | user set-password | secrets reseal | openapi`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kassa::Config;
use kassa::config::LogFormat;
use kassa_api::ApiContext;
use kassa_domain::mode::Mode;
use kassa_domain::tenant::{EmailAddress, NewApiKey, TenantSlug, parse_tenant_name};
use kassa_store::Store;
use secrecy::ExposeSecret;

#[derive(Parser)]
#[command(
    name = "kassa",
    version,
    about = "Checkout and fulfillment for digital goods"
)]
struct Cli {
    /// A TOML configuration file (default: ./kassa.toml when present).
    #[arg(long, global = true, env = "KASSA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (API and pages).
    Serve {
        /// Also create a demo store with a product (once) and print its buy link.
        #[arg(long)]
        demo: bool,
        /// Serve HTTP only; run the background workers elsewhere (`kassa worker`).
        #[arg(long)]
        no_workers: bool,
    },
    /// Run the background workers (webhook delivery) without the HTTP server.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage stores.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage merchant users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the merchant API's OpenAPI document.
    Openapi,
    /// Manage the secrets sealed in the database.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Seal every stored secret under the current secrets key (after a rotation, with
    /// the old key in secrets_previous_keys); then the old key can be dropped.
    Reseal,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Set a user's password, read from standard input (one line), stored as an
    /// Argon2id hash.
    SetPassword {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a store with its owner and a first API key; prints JSON.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner_email: String,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url.expose_secret();
    let acquire_timeout = humantime::parse_duration(&config.database_acquire_timeout)
        .map_err(|e| anyhow::anyhow!("database_acquire_timeout: {e}"))?;
    let store = Store::connect_with(url, config.database_max_connections, acquire_timeout)
        .await
        .with_context(|| format!("connecting to {}", kassa::config::redact_url(url)))?;
    store.migrate().await.context("applying migrations")?;
    let keyring = kassa::secrets_key::keyring(config)?;
    tracing::info!(key_id = keyring.key_id(), "secrets key");
    store
        .use_secrets_key(keyring)
        .await
        .context("opening the stored secrets")?;
    Ok(store)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("reading configuration")?;
    init_logs(config.log_format);
    match cli.command {
        Command::Serve { demo, no_workers } => serve(config, demo, !no_workers).await,
        Command::Worker => worker(config).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.close().await;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    slug,
                    name,
                    owner_email,
                },
        } => create_tenant(&config, &slug, &name, &owner_email).await,
        Command::User {
            command: UserCommand::SetPassword { email },
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let hash =
                kassa_domain::tenant::hash_password(password.trim_end_matches(['\r', '\n']))?;
            let store = open_store(&config).await?;
            match store.set_user_password(email.trim(), &hash).await {
                Ok(()) => {}
                Err(kassa_store::StoreError::NotFound) => {
                    anyhow::bail!("no user with the email {email}")
                }
                Err(e) => return Err(e.into()),
            }
            store.close().await;
            eprintln!("Password set for {email}.");
            Ok(())
        }
        Command::Secrets {
            command: SecretsCommand::Reseal,
        } => {
            let store = open_store(&config).await?;
            let resealed = store.reseal_secrets().await;
            store.close().await;
            let resealed = resealed.context("resealing the stored secrets")?;
            eprintln!(
                "Resealed {resealed} secrets under the current key; the previous keys can be dropped."
            );
            Ok(())
        }
        Command::Openapi => {
            println!("{}", kassa_api::openapi_json());
            Ok(())
        }
    }
}

fn plugin_host(config: &Config) -> anyhow::Result<std::sync::Arc<kassa_plugins::PluginHost>> {
    let policy = config.plugin_policy().map_err(|e| anyhow::anyhow!(e))?;
    let host = kassa_plugins::PluginHost::new(policy)
        .map_err(|e| anyhow::anyhow!("starting the plugin host: {e}"))?;
    Ok(std::sync::Arc::new(host))
}

fn workers(
    config: &Config,
    store: &Store,
    plugins: std::sync::Arc<kassa_plugins::PluginHost>,
) -> anyhow::Result<kassa_jobs::Workers> {
    let schedule = kassa_webhooks::RetrySchedule::parse(&config.webhook_retry_schedule)
        .map_err(|e| anyhow::anyhow!("webhook_retry_schedule: {e}"))?;
    let sender = kassa_webhooks::Sender::new(kassa_webhooks::NetworkPolicy {
        allow_private: config.allow_private_network,
    })?;
    let mailer = match &config.smtp_url {
        Some(url) => Some(
            kassa_mail::Mailer::new(url.expose_secret(), &config.email_from)
                .map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?,
        ),
        None => {
            tracing::info!("no smtp_url: emails are kept in the outbox (GET /api/v1/emails)");
            None
        }
    };
    let remind_after = match config.unpaid_reminder_after.as_str() {
        "off" => None,
        raw => Some(
            humantime::parse_duration(raw)
                .map_err(|e| anyhow::anyhow!("unpaid_reminder_after: {e}"))?,
        ),
    };
    let delete_after = humantime::parse_duration(&config.unpaid_delete_after)
        .map_err(|e| anyhow::anyhow!("unpaid_delete_after: {e}"))?;
    let heartbeat = humantime::parse_duration(&config.job_heartbeat)
        .map_err(|e| anyhow::anyhow!("job_heartbeat: {e}"))?;
    Ok(kassa_jobs::Workers::new(
        store.clone(),
        sender,
        schedule,
        mailer,
        &config.public_url(),
        kassa_jobs::UnpaidDefaults {
            remind_after,
            delete_after,
        },
    )
    .with_plugins(plugins)
    .with_heartbeat(heartbeat))
}

async fn worker(config: Config) -> anyhow::Result<()> {
    tracing::info!(config = ?config, "starting workers");
    let store = open_store(&config).await?;
    workers(&config, &store, plugin_host(&config)?)?
        .run(shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("the workers stopped: {e}"))?;
    store.close().await;
    Ok(())
}

async fn serve(config: Config, demo: bool, with_workers: bool) -> anyhow::Result<()> {
    tracing::info!(config = ?config, "starting");
    let store = open_store(&config).await?;
    if demo {
        let seeded = kassa::demo::seed(&store, &config.public_url())
            .await
            .context("seeding the demo store")?;
        println!(
            "\nDemo store ready. Open its buy link in a browser:\n\n    {}?quantity=2\n",
            seeded.buy_url
        );
        println!(
            "Pay with card 4242 4242 4242 4242 (any future expiry, any CVC); 4000 0000 0000 0002 is declined."
        );
        match seeded.api_keys {
            Some(keys) => println!(
                "Demo store API keys (shown once):\n  test mode: {}  (the demo's catalog and orders)\n  \
                 live mode: {}  (settings and plugins, which serve both modes)\n",
                keys.test.expose_secret(),
                keys.live.expose_secret()
            ),
            None => {
                println!("(The demo store's API keys were printed when it was first created.)\n")
            }
        }
    }
    let trusted_proxies = config
        .trusted_proxies()
        .map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))?;
    let server = kassa::Server::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?
        .trust_proxies(trusted_proxies)
        .with_metrics_token(config.metrics_token.clone())
        .max_in_flight(config.http_max_in_flight);
    let plugins = plugin_host(&config)?;
    let limits = kassa_limits::Limits::new(&config.rate_limits).context("rate_limits")?;
    let ctx = ApiContext {
        store: store.clone(),
        public_url: config.public_url(),
        plugins: Some(plugins.clone()),
        limits: std::sync::Arc::new(limits),
        network: kassa_webhooks::NetworkPolicy {
            allow_private: config.allow_private_network,
        },
        providers: config.providers().map_err(anyhow::Error::msg)?,
    };
    tracing::info!(
        "Kassa is listening on http://{} (public URL {}); API docs at {}/api/docs",
        server.local_addr,
        ctx.public_url,
        ctx.public_url
    );
    let (stop_workers, workers_stopped) = tokio::sync::watch::channel(false);
    let background = if with_workers {
        let mut stopped = workers_stopped.clone();
        let workers = workers(&config, &store, plugins.clone())?;
        Some(tokio::spawn(async move {
            let run = workers.run(async move {
                stopped.wait_for(|s| *s).await.ok();
            });
            if let Err(e) = run.await {
                tracing::error!(error = %e, "the workers stopped");
            }
        }))
    } else {
        None
    };
    server.run(ctx, shutdown_signal()).await?;
    stop_workers.send(true).ok();
    if let Some(handle) = background {
        handle.await.ok();
    }
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

async fn create_tenant(
    config: &Config,
    slug: &str,
    name: &str,
    owner_email: &str,
) -> anyhow::Result<()> {
    let slug = TenantSlug::parse(slug)?;
    let name = parse_tenant_name(name)?;
    let email = EmailAddress::parse("owner_email", owner_email)?;
    let store = open_store(config).await?;
    let key = NewApiKey::generate(Mode::Live);
    let test_key = NewApiKey::generate(Mode::Test);
    let created = store
        .create_tenant(&slug, &name, &email, &key, &test_key)
        .await?;
    store.close().await;
    println!(
        "{}",
        serde_json::json!({
            "tenant_id": created.tenant.id,
            "slug": created.tenant.slug,
            "name": created.tenant.name,
            "owner_id": created.owner_id,
            "api_key": key.secret.expose_secret(),
            "test_api_key": test_key.secret.expose_secret(),
        })
    );
    Ok(())
}
