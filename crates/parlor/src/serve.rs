//! The roles as the binary runs them: `serve` (all in one process), `gateway`, `worker`, and
//! `migrate`.

use crate::settings::{
    Direction, GatewayArgs, HttpArgs, MetricsArgs, MigrateArgs, ModerationArgs, NotifierArgs, NotifyArgs,
    RpcArgs, ServeArgs, UsersArgs, WorkerArgs, WorkerOpts,
};
use crate::wiring::{Broker, StoreHandle};
use anyhow::{Context, bail};
use parlor_domain::ports::Reviewer;
use parlor_gateway::state::AppState;
use parlor_gateway::{GatewayDeps, GatewaySettings};
use parlor_moderation::{ModerationSettings, Moderator};
use parlor_proto::v1::chat_server::ChatServer;
use parlor_proto::v1::moderation_server::ModerationServer;
use parlor_proto::v1::users_server::UsersServer;
use parlor_rpc::moderation::{GrpcReviewer, ModerationService};
use parlor_rpc::users::{GrpcAuthenticator, UsersService};
use parlor_users::{AccountSettings, Accounts, Authenticator};
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

/// Where a gateway checks tokens.
enum TokenCheck<'a> {
    /// With its own accounts service.
    Local,
    /// With the `Users` service at this URL.
    Remote { url: &'a str, timeout: Duration },
}

fn accounts_settings(secret: Vec<u8>, http: &HttpArgs) -> AccountSettings {
    AccountSettings {
        jwt_secret: secret,
        access_ttl: http.access_token_ttl,
        refresh_ttl: http.refresh_token_ttl,
    }
}

async fn start_gateway(
    http: &HttpArgs,
    data_dir: &Path,
    store: &StoreHandle,
    broker: &Broker,
    tokens: TokenCheck<'_>,
) -> anyhow::Result<(RunningGateway, AppState)> {
    let addr = listen_addr(&http.listen)?;
    let store_port = store.port();
    let gateway_id = uuid_v7();
    let accounts = Arc::new(
        Accounts::new(
            store_port.clone(),
            broker.bus.clone(),
            accounts_settings(jwt_secret(http, data_dir)?, http),
        )
        .await?,
    );
    let authenticator: Arc<dyn Authenticator> = match tokens {
        TokenCheck::Local => accounts.clone(),
        TokenCheck::Remote { url, timeout } => {
            Arc::new(GrpcAuthenticator::connect_lazy(url, timeout, Duration::from_secs(1))?)
        }
    };
    let stop = CancellationToken::new();
    let gateway = parlor_gateway::build(
        GatewayDeps {
            store: store_port,
            bus: broker.bus.clone(),
            queue: broker.queue.clone(),
            presence: broker.presence(&gateway_id),
            accounts,
            authenticator,
            metrics: metrics_handle(),
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
            auth_failures: http.auth_failures,
            auth_failure_window: http.auth_failure_window,
            hsts_max_age: http.hsts_max_age,
        },
        gateway_id,
        stop.clone(),
    )
    .await?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    spawn_queue_depth(broker.queue.clone(), stop.clone());
    tracing::info!("listening on {}", listener.local_addr()?);
    // Sessions ended by a command in another process (`parlor user disable`) close here too.
    crate::ended::spawn(gateway.clone(), stop.clone());
    let server = tokio::spawn(parlor_gateway::serve(listener, gateway.clone(), Duration::from_secs(3)));
    Ok((RunningGateway { server, stop }, gateway))
}

/// Samples the queue's depth into `parlor_queue_depth{partition}` every 5 s until `stop`. Every
/// gateway reports the same shared queue, so dashboards take the max per partition, not the sum.
fn spawn_queue_depth(queue: Arc<dyn parlor_domain::ports::Queue>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            match tokio::time::timeout(Duration::from_secs(3), queue.depths()).await {
                Ok(Ok(Some(depths))) => {
                    for (p, depth) in depths.into_iter().enumerate() {
                        metrics::gauge!("parlor_queue_depth", "partition" => p.to_string()).set(depth as f64);
                    }
                }
                Ok(Ok(None)) => return,
                Ok(Err(e)) => tracing::debug!(error = %e, "queue depth unknown"),
                Err(_) => tracing::debug!("queue depth: no answer in 3 s"),
            }
        }
    });
}

/// Serves gRPC routes (with health and reflection) until `stop`.
async fn spawn_grpc(
    listen: &str,
    routes: tonic::service::Routes,
    names: &'static [&'static str],
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let addr = listen_addr(listen)?;
    let listener =
        parlor_rpc::server::bind(addr).await.with_context(|| format!("cannot listen on {addr} (gRPC)"))?;
    Ok(tokio::spawn(async move {
        if let Err(e) = parlor_rpc::server::serve(listener, routes, names, stop.cancelled_owned()).await {
            tracing::error!(error = %e, "the gRPC server failed");
        }
    }))
}

/// The `Chat` service of a gateway, if a service token is configured.
fn chat_service(rpc: &RpcArgs, state: &AppState) -> Option<ChatServer<parlor_gateway::grpc::ChatService>> {
    let token = rpc.service_token.as_ref()?;
    Some(ChatServer::new(parlor_gateway::grpc::ChatService::new(state.clone(), token.0.clone())))
}

/// The Prometheus recorder's handle. The `metrics` facade is process-wide by design, so its
/// recorder is installed once, on first use, and every role of the process reports into it.
fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
            let seconds =
                [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            let sizes = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .ok()?
                .set_buckets_for_metric(Matcher::Suffix("_size".into()), &sizes)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()?;
            let upkeep = handle.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
            Some(handle)
        })
        .clone()
}

fn uuid_v7() -> String {
    parlor_domain::UserId::generate().to_string()
}

/// A started worker: its task and its stop token.
struct RunningWorker {
    task: JoinHandle<Result<(), parlor_domain::Error>>,
    stop: CancellationToken,
}

/// The moderation role in process.
fn local_reviewer(opts: &WorkerOpts, store: &StoreHandle) -> anyhow::Result<Arc<dyn Reviewer>> {
    let read = |path: &Option<std::path::PathBuf>, flag: &str| -> anyhow::Result<Option<String>> {
        match path {
            Some(path) => Ok(Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {flag} {}", path.display()))?,
            )),
            None => Ok(None),
        }
    };
    let settings = ModerationSettings {
        blocked_words: read(&opts.blocked_words_file, "--blocked-words-file")?,
        blocked_domains: read(&opts.blocked_domains_file, "--blocked-domains-file")?,
        max_links: opts.max_links,
        spam_threshold: opts.spam_threshold,
        ..ModerationSettings::default()
    };
    Ok(Arc::new(Moderator::new(settings, store.port())))
}

fn start_worker(
    opts: &WorkerOpts,
    store: &StoreHandle,
    broker: &Broker,
    reviewer: Arc<dyn Reviewer>,
) -> RunningWorker {
    let stop = CancellationToken::new();
    let task = tokio::spawn(parlor_worker::run(
        WorkerContext {
            store: store.port(),
            queue: broker.queue.clone(),
            bus: broker.bus.clone(),
            reviewer,
            batch_max: opts.batch_max.max(1),
            notify_after: Some(opts.notify_after),
            holdings: Default::default(),
        },
        stop.clone(),
    ));
    RunningWorker { task, stop }
}

/// Starts the notifier role: e-mails over SMTP, or to the log without `--smtp-url`.
fn start_notifier(
    args: &NotifyArgs,
    store: &StoreHandle,
    presence: Arc<dyn parlor_domain::ports::Presence>,
    accounts: Arc<Accounts>,
) -> anyhow::Result<(JoinHandle<()>, CancellationToken)> {
    let mailer: Arc<dyn parlor_domain::ports::Mailer> = match &args.smtp_url {
        Some(url) => Arc::new(parlor_notifier::SmtpMailer::new(&url.0, &args.mail_from)?),
        None => Arc::new(parlor_notifier::LogMailer),
    };
    let ctx = parlor_notifier::NotifierContext {
        store: store.port(),
        presence,
        mailer,
        unsubscribe_token: Arc::new(move |user| accounts.unsubscribe_token(user)),
        settings: parlor_notifier::NotifierSettings {
            backoff: args.notify_retry,
            lease: args.notify_lease,
            public_url: args.public_url.clone(),
            ..parlor_notifier::NotifierSettings::default()
        },
    };
    let stop = CancellationToken::new();
    Ok((tokio::spawn(parlor_notifier::run(ctx, stop.clone())), stop))
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
    listen_addr(&args.http.listen)?;
    let store = StoreHandle::open(&args.store).await?;
    let broker = Broker::connect(&args.broker, &store).await?;
    let reviewer = local_reviewer(&args.worker, &store)?;
    let worker = start_worker(&args.worker, &store, &broker, reviewer.clone());
    let (gateway, state) =
        start_gateway(&args.http, &args.store.data_dir, &store, &broker, TokenCheck::Local).await?;
    let notifier = start_notifier(&args.notify, &store, state.presence.clone(), state.accounts.clone())?;
    let grpc_stop = CancellationToken::new();
    let grpc = match &args.rpc.grpc_listen {
        Some(listen) => {
            let users = UsersService::new(state.accounts.clone(), store.port(), state.presence.clone());
            let mut routes = tonic::service::Routes::new(UsersServer::new(users))
                .add_service(ModerationServer::new(ModerationService::new(reviewer)));
            let mut names: &'static [&'static str] = &["parlor.v1.Users", "parlor.v1.Moderation"];
            if let Some(chat) = chat_service(&args.rpc, &state) {
                routes = routes.add_service(chat);
                names = &["parlor.v1.Users", "parlor.v1.Moderation", "parlor.v1.Chat"];
            }
            Some(spawn_grpc(listen, routes, names, grpc_stop.clone()).await?)
        }
        None => None,
    };
    let result = wait_and_stop(gateway, grpc.map(|task| (task, grpc_stop)), Some(worker), &store).await;
    notifier.1.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), notifier.0).await;
    result
}

/// Waits for SIGTERM or Ctrl-C (or the HTTP server's end), then stops in order: gRPC stops taking
/// calls; the gateway closes WebSockets (1001) and finishes requests in flight; the worker commits
/// what is queued in process; the store closes.
async fn wait_and_stop(
    mut gateway: RunningGateway,
    grpc: Option<(JoinHandle<()>, CancellationToken)>,
    worker: Option<RunningWorker>,
    store: &StoreHandle,
) -> anyhow::Result<()> {
    let failed = tokio::select! {
        () = signal() => None,
        done = &mut gateway.server => Some(done),
    };
    tracing::info!("shutting down");
    if let Some((_, stop)) = &grpc {
        stop.cancel();
    }
    if failed.is_none() {
        stop_gateway(gateway).await;
    }
    if let Some(worker) = worker {
        stop_worker(worker).await;
    }
    if let Some((task, _)) = grpc {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
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
    let broker = Broker::connect(&args.broker, &store).await?;
    require_shared(&store, &broker, "gateway")?;
    let tokens = match &args.users_url {
        Some(url) => TokenCheck::Remote { url, timeout: args.rpc.rpc_timeout },
        None => TokenCheck::Local,
    };
    let (gateway, state) = start_gateway(&args.http, &args.store.data_dir, &store, &broker, tokens).await?;
    let grpc_stop = CancellationToken::new();
    let grpc = match (&args.rpc.grpc_listen, chat_service(&args.rpc, &state)) {
        (Some(listen), Some(chat)) => {
            let routes = tonic::service::Routes::new(chat);
            Some(spawn_grpc(listen, routes, &["parlor.v1.Chat"], grpc_stop.clone()).await?)
        }
        (Some(_), None) => bail!("--grpc-listen serves Chat, which needs --service-token"),
        _ => None,
    };
    wait_and_stop(gateway, grpc.map(|task| (task, grpc_stop)), None, &store).await
}

/// `parlor worker`.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let store = StoreHandle::open(&args.store).await?;
    let broker = Broker::connect(&args.broker, &store).await?;
    require_shared(&store, &broker, "worker")?;
    let reviewer: Arc<dyn Reviewer> = match &args.moderation_url {
        Some(url) => Arc::new(GrpcReviewer::connect_lazy(url, args.rpc_timeout)?),
        None => local_reviewer(&args.worker, &store)?,
    };
    let worker = start_worker(&args.worker, &store, &broker, reviewer);
    let metrics_stop = CancellationToken::new();
    spawn_metrics(&args.metrics, metrics_stop.clone()).await?;
    signal().await;
    tracing::info!("shutting down");
    metrics_stop.cancel();
    stop_worker(worker).await;
    store.close().await;
    Ok(())
}

/// Serves `/metrics` and `/healthz` for a role that has no HTTP listener of its own, if asked to,
/// until `stop`.
async fn spawn_metrics(args: &MetricsArgs, stop: CancellationToken) -> anyhow::Result<()> {
    use axum::routing::get;
    let Some(listen) = &args.metrics_listen else { return Ok(()) };
    let addr = listen_addr(listen).with_context(|| format!("--metrics-listen {listen:?}"))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
    let handle = metrics_handle();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = handle.as_ref().map(|h| h.render()).unwrap_or_default();
                async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        )
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }));
    tracing::info!("metrics listening on {}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    Ok(())
}

/// Accounts for a role that only checks tokens and signs links with the shared key (users,
/// notifier): token lifetimes do not matter there.
async fn role_accounts(
    secret: &crate::settings::Secret,
    store: &StoreHandle,
    broker: &Broker,
) -> anyhow::Result<Arc<Accounts>> {
    if secret.0.len() < 16 {
        bail!("--jwt-secret must be at least 16 characters");
    }
    let settings = AccountSettings {
        jwt_secret: secret.0.as_bytes().to_vec(),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(30 * 86_400),
    };
    Ok(Arc::new(Accounts::new(store.port(), broker.bus.clone(), settings).await?))
}

/// Runs a background task until SIGTERM or Ctrl-C, then stops it and closes the store.
async fn run_until_signal(
    task: JoinHandle<()>,
    stop: CancellationToken,
    store: StoreHandle,
) -> anyhow::Result<()> {
    signal().await;
    tracing::info!("shutting down");
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    store.close().await;
    Ok(())
}

/// `parlor moderation`.
pub async fn moderation(args: ModerationArgs) -> anyhow::Result<()> {
    let store = StoreHandle::open(&args.store).await?;
    let reviewer = local_reviewer(&args.worker, &store)?;
    let routes = tonic::service::Routes::new(ModerationServer::new(ModerationService::new(reviewer)));
    let stop = CancellationToken::new();
    let server = spawn_grpc(&args.grpc_listen, routes, &["parlor.v1.Moderation"], stop.clone()).await?;
    spawn_metrics(&args.metrics, stop.clone()).await?;
    run_until_signal(server, stop, store).await
}

/// `parlor users`.
pub async fn users(args: UsersArgs) -> anyhow::Result<()> {
    let store = StoreHandle::open(&args.store).await?;
    let broker = Broker::connect(&args.broker, &store).await?;
    let accounts = role_accounts(&args.jwt_secret, &store, &broker).await?;
    // The users role reads presence; it claims none, so its name in the presence sets is unused.
    let presence = broker.presence(&format!("users-{}", uuid_v7()));
    let service = UsersService::new(accounts, store.port(), presence);
    let routes = tonic::service::Routes::new(UsersServer::new(service));
    let stop = CancellationToken::new();
    let server = spawn_grpc(&args.grpc_listen, routes, &["parlor.v1.Users"], stop.clone()).await?;
    spawn_metrics(&args.metrics, stop.clone()).await?;
    run_until_signal(server, stop, store).await
}

/// `parlor notifier`.
pub async fn notifier(args: NotifierArgs) -> anyhow::Result<()> {
    let store = StoreHandle::open(&args.store).await?;
    let broker = Broker::connect(&args.broker, &store).await?;
    let accounts = role_accounts(&args.jwt_secret, &store, &broker).await?;
    let presence = broker.presence(&format!("notifier-{}", uuid_v7()));
    let (task, stop) = start_notifier(&args.notify, &store, presence, accounts)?;
    spawn_metrics(&args.metrics, stop.clone()).await?;
    run_until_signal(task, stop, store).await
}
