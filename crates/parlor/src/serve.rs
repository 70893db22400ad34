//! The roles as the binary runs them: `serve` (all in one process), `gateway`, `worker`, and
//! `migrate`.

use crate::settings::{Direction, GatewayArgs, HttpArgs, MigrateArgs, ServeArgs, WorkerArgs, WorkerOpts};
use crate::wiring::{Broker, StoreHandle};
use anyhow::{Context, bail};
use parlor_domain::ports::Reviewer;
use parlor_gateway::{GatewayDeps, GatewaySettings};
use parlor_moderation::{ModerationSettings, Moderator};
use parlor_users::{AccountSettings, Accounts};
use parlor_worker::WorkerContext;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// `parlor migrate`.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let mut store_args = args.store.clone();
    store_args.no_migrate = args.direction == Direction::Down;
    let store = StoreHandle::open(&store_args).await?;
    match (&store, args.direction) {
        (_, Direction::Up) => tracing::info!("migrations applied"),
        (StoreHandle::Postgres(pg), Direction::Down) => {
            pg.migrate_down().await?;
            tracing::info!("newest migration reverted");
        }
        (StoreHandle::Sqlite(_), Direction::Down) => bail!("`migrate down` is for PostgreSQL only"),
    }
    store.close().await;
    Ok(())
}

/// The token signing key: given, or generated once and kept in the data dir.
fn jwt_secret(http: &HttpArgs, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &http.jwt_secret {
        if secret.0.len() < 16 {
            bail!("--jwt-secret must be at least 16 characters");
        }
        return Ok(secret.0.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
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
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
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

/// A started gateway: its server task and its stop token.
struct RunningGateway {
    server: JoinHandle<std::io::Result<()>>,
    stop: CancellationToken,
}

async fn start_gateway(
    http: &HttpArgs,
    data_dir: &Path,
    store: &StoreHandle,
    broker: &Broker,
) -> anyhow::Result<RunningGateway> {
    let addr = listen_addr(&http.listen)?;
    let store_port = store.port();
    let gateway_id = uuid_v7();
    let accounts = Arc::new(
        Accounts::new(
            store_port.clone(),
            broker.bus.clone(),
            AccountSettings {
                jwt_secret: jwt_secret(http, data_dir)?,
                access_ttl: http.access_token_ttl,
                refresh_ttl: http.refresh_token_ttl,
            },
        )
        .await?,
    );
    let stop = CancellationToken::new();
    let gateway = parlor_gateway::build(
        GatewayDeps {
            store: store_port,
            bus: broker.bus.clone(),
            queue: broker.queue.clone(),
            presence: broker.presence(&gateway_id),
            accounts,
        },
        GatewaySettings {
            send_rate: http.send_rate,
            send_burst: http.send_burst,
            auth_rate: http.auth_rate,
            auth_burst: http.auth_burst,
            heartbeat: http.heartbeat,
            ws_auth_timeout: http.ws_auth_timeout,
            outbound_buffer: http.ws_outbound_buffer,
            max_connections: http.max_connections,
            send_timeout: http.send_timeout,
            cors_origins: http.cors_origins.clone(),
        },
        gateway_id,
        stop.clone(),
    )
    .await?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!("listening on {}", listener.local_addr()?);
    let server = tokio::spawn(parlor_gateway::serve(listener, gateway, Duration::from_secs(3)));
    Ok(RunningGateway { server, stop })
}

fn uuid_v7() -> String {
    parlor_domain::UserId::generate().to_string()
}

/// A started worker: its task and its stop token.
struct RunningWorker {
    task: JoinHandle<Result<(), parlor_domain::Error>>,
    stop: CancellationToken,
}

async fn start_worker(
    opts: &WorkerOpts,
    store: &StoreHandle,
    broker: &Broker,
) -> anyhow::Result<RunningWorker> {
    let blocked_words = match &opts.blocked_words_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --blocked-words-file {}", path.display()))?,
        ),
        None => None,
    };
    let store_port = store.port();
    let reviewer: Arc<dyn Reviewer> = Arc::new(Moderator::new(
        ModerationSettings { blocked_words, ..ModerationSettings::default() },
        store_port.clone(),
    ));
    let stop = CancellationToken::new();
    let task = tokio::spawn(parlor_worker::run(
        WorkerContext {
            store: store_port,
            queue: broker.queue.clone(),
            bus: broker.bus.clone(),
            reviewer,
            batch_max: opts.batch_max.max(1),
        },
        stop.clone(),
    ));
    Ok(RunningWorker { task, stop })
}

/// Stops a gateway: no new connections, WebSockets closed with 1001, requests in flight finished.
async fn stop_gateway(mut gateway: RunningGateway) {
    gateway.stop.cancel();
    if tokio::time::timeout(Duration::from_secs(6), &mut gateway.server).await.is_err() {
        tracing::warn!("requests still in flight after 6 s; stopping anyway");
    }
}

/// Stops a worker after it has drained what is queued in process.
async fn stop_worker(worker: RunningWorker) {
    worker.stop.cancel();
    if tokio::time::timeout(Duration::from_secs(2), worker.task).await.is_err() {
        tracing::warn!("the worker did not drain in time");
    }
}

/// `parlor serve`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.notify.smtp_url.is_some() {
        tracing::warn!(
            "--smtp-url is set but unread-message e-mails are not implemented yet; nothing will be sent"
        );
    }
    let store = StoreHandle::open(&args.store).await?;
    let broker = Broker::connect(&args.broker).await?;
    let worker = start_worker(&args.worker, &store, &broker).await?;
    let mut gateway = start_gateway(&args.http, &args.store.data_dir, &store, &broker).await?;
    let failed = tokio::select! {
        () = signal() => None,
        done = &mut gateway.server => Some(done),
    };
    tracing::info!("shutting down");
    // Stop taking requests and close WebSockets (1001), finish requests in flight, then let the
    // worker commit what is queued, then close the database.
    if failed.is_none() {
        stop_gateway(gateway).await;
    }
    stop_worker(worker).await;
    store.close().await;
    match failed {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(e).context("the HTTP server failed"),
        Some(Err(e)) => Err(e).context("the HTTP server task failed"),
    }
}

fn require_shared(store: &StoreHandle, broker: &Broker, role: &str) -> anyhow::Result<()> {
    if !store.is_shared() || !broker.is_shared() {
        bail!(
            "`parlor {role}` runs beside other processes: give it --database-url postgres://... and \
             --redis-url redis://... (or run everything in one process with `parlor serve`)"
        );
    }
    Ok(())
}

/// `parlor gateway`.
pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    if args.http.jwt_secret.is_none() {
        bail!(
            "`parlor gateway` needs --jwt-secret: every gateway of a deployment must sign with the same key"
        );
    }
    let store = StoreHandle::open(&args.store).await?;
    let broker = Broker::connect(&args.broker).await?;
    require_shared(&store, &broker, "gateway")?;
    let mut gateway = start_gateway(&args.http, &args.store.data_dir, &store, &broker).await?;
    let failed = tokio::select! {
        () = signal() => None,
        done = &mut gateway.server => Some(done),
    };
    tracing::info!("shutting down");
    if failed.is_none() {
        stop_gateway(gateway).await;
    }
    store.close().await;
    match failed {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(e).context("the HTTP server failed"),
        Some(Err(e)) => Err(e).context("the HTTP server task failed"),
    }
}

/// `parlor worker`.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let store = StoreHandle::open(&args.store).await?;
    let broker = Broker::connect(&args.broker).await?;
    require_shared(&store, &broker, "worker")?;
    let worker = start_worker(&args.worker, &store, &broker).await?;
    signal().await;
    tracing::info!("shutting down");
    stop_worker(worker).await;
    store.close().await;
    Ok(())
}
