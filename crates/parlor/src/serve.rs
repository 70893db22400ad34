//! `parlor serve`: every role in one process over the embedded adapters (SQLite, in-process
//! queue, bus and presence), and `parlor migrate`.

use crate::settings::{ServeArgs, StoreArgs};
use anyhow::{Context, bail};
use parlor_broker::{LocalBus, LocalPresence, LocalQueue};
use parlor_domain::ports::{Bus, Presence, Queue, Reviewer, Store};
use parlor_gateway::{GatewayDeps, GatewaySettings};
use parlor_moderation::{ModerationSettings, Moderator};
use parlor_store::SqliteStore;
use parlor_users::{AccountSettings, Accounts};
use parlor_worker::WorkerContext;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Opens the store the settings name, applying migrations.
async fn open_store(args: &StoreArgs) -> anyhow::Result<SqliteStore> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;
    match &args.database_url {
        None => Ok(SqliteStore::open(&args.data_dir.join("parlor.db")).await?),
        Some(url) if url.0.starts_with("sqlite:") => Ok(SqliteStore::open_url(&url.0).await?),
        Some(url) if url.0.starts_with("postgres") => {
            bail!(
                "PostgreSQL storage comes with the distributed mode; this build stores in SQLite (leave --database-url unset)"
            )
        }
        Some(_) => bail!("--database-url must start with sqlite: or postgres://"),
    }
}

/// `parlor migrate`.
pub async fn migrate(args: StoreArgs) -> anyhow::Result<()> {
    let store = open_store(&args).await?;
    store.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// The token signing key: given, or generated once and kept in the data dir.
fn jwt_secret(args: &ServeArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &args.jwt_secret {
        if secret.0.len() < 16 {
            bail!("--jwt-secret must be at least 16 characters");
        }
        return Ok(secret.0.as_bytes().to_vec());
    }
    let path = args.store.data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok(existing.as_bytes().to_vec());
        }
    }
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// `:8080` means every interface, as Go and most servers read it.
fn listen_addr(listen: &str) -> anyhow::Result<SocketAddr> {
    let full = if listen.starts_with(':') { format!("0.0.0.0{listen}") } else { listen.to_owned() };
    full.parse().with_context(|| format!("--listen {listen:?} is not an address like 127.0.0.1:8080"))
}

async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `parlor serve`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.redis_url.is_some() || args.amqp_url.is_some() {
        bail!(
            "Redis and RabbitMQ adapters come with the distributed mode; this build runs embedded (leave --redis-url and --amqp-url unset)"
        );
    }
    if args.smtp_url.is_some() {
        tracing::warn!(
            "--smtp-url is set but unread-message e-mails are not implemented yet; nothing will be sent"
        );
    }
    let addr = listen_addr(&args.listen)?;
    let blocked_words = match &args.blocked_words_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --blocked-words-file {}", path.display()))?,
        ),
        None => None,
    };
    let sqlite = open_store(&args.store).await?;
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let bus: Arc<dyn Bus> = Arc::new(LocalBus::new());
    let queue: Arc<dyn Queue> = Arc::new(LocalQueue::new(args.worker_partitions, 8192));
    let presence: Arc<dyn Presence> = Arc::new(LocalPresence::new());
    let reviewer: Arc<dyn Reviewer> = Arc::new(Moderator::new(
        ModerationSettings { blocked_words, ..ModerationSettings::default() },
        store.clone(),
    ));
    let accounts = Arc::new(
        Accounts::new(
            store.clone(),
            bus.clone(),
            AccountSettings {
                jwt_secret: jwt_secret(&args)?,
                access_ttl: args.access_token_ttl,
                refresh_ttl: args.refresh_token_ttl,
            },
        )
        .await?,
    );

    let stop_gateway = CancellationToken::new();
    let stop_worker = CancellationToken::new();
    let gateway = parlor_gateway::build(
        GatewayDeps { store: store.clone(), bus: bus.clone(), queue: queue.clone(), presence, accounts },
        GatewaySettings {
            send_rate: args.send_rate,
            send_burst: args.send_burst,
            auth_rate: args.auth_rate,
            auth_burst: args.auth_burst,
            heartbeat: args.heartbeat,
            ws_auth_timeout: args.ws_auth_timeout,
            outbound_buffer: args.ws_outbound_buffer,
            max_connections: args.max_connections,
            send_timeout: args.send_timeout,
            cors_origins: args.cors_origins.clone(),
        },
        stop_gateway.clone(),
    )
    .await?;
    let worker = tokio::spawn(parlor_worker::run(
        WorkerContext { store, queue, bus, reviewer, batch_max: args.batch_max.max(1) },
        stop_worker.clone(),
    ));

    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!("listening on {local}");
    let mut server = tokio::spawn(parlor_gateway::serve(listener, gateway, Duration::from_secs(3)));

    tokio::select! {
        () = signal() => tracing::info!("shutting down"),
        done = &mut server => {
            stop_worker.cancel();
            let _ = worker.await;
            sqlite.close().await;
            return match done {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e).context("the HTTP server failed"),
                Err(e) => Err(e).context("the HTTP server task failed"),
            };
        }
    }
    // Stop taking requests and close WebSockets (1001), finish requests in flight, then let the
    // worker drain what is queued, then close the database.
    stop_gateway.cancel();
    if tokio::time::timeout(Duration::from_secs(6), &mut server).await.is_err() {
        tracing::warn!("requests still in flight after 6 s; stopping anyway");
    }
    stop_worker.cancel();
    if tokio::time::timeout(Duration::from_secs(2), worker).await.is_err() {
        tracing::warn!("the worker did not drain in time");
    }
    sqlite.close().await;
    tracing::info!("stopped");
    Ok(())
}
