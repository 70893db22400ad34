//! The commands that run roles: each opens the shared services once and is the list of its
//! roles, in the order they stop (see `roles`). `migrate` is here too: it opens the store and
//! exits.

use crate::roles::gateway::Gateway;
use crate::roles::grpc::Grpc;
use crate::roles::metrics::Metrics;
use crate::roles::notifier::Notifier;
use crate::roles::worker::{Worker, local_reviewer};
use crate::roles::{self, Role};
use crate::settings::{
    Direction, GatewayArgs, HttpArgs, MetricsArgs, MigrateArgs, ModerationArgs, NotifierArgs, Secret,
    ServeArgs, UsersArgs, WorkerArgs,
};
use crate::wiring::{Services, StoreHandle};
use anyhow::bail;
use parlor_domain::ports::Reviewer;
use parlor_proto::v1::moderation_server::ModerationServer;
use parlor_proto::v1::users_server::UsersServer;
use parlor_rpc::moderation::{GrpcReviewer, ModerationService};
use parlor_rpc::users::{GrpcAuthenticator, UsersService};
use parlor_users::{AccountSettings, Accounts, Authenticator};
use std::sync::Arc;
use std::time::Duration;

/// `parlor serve`: every role in one process.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let services = Services::open(&args.store, Some(&args.broker)).await?;
    let accounts = accounts(&services, &args.http, &args.store.data_dir).await?;
    let reviewer = local_reviewer(&args.worker, &services)?;
    let gateway = Gateway::bind(&services, &args.http, accounts.clone(), accounts.clone()).await?;
    let mut roles: Vec<Box<dyn Role>> = Vec::new();
    if let Some(listen) = &args.rpc.grpc_listen {
        let users = UsersService::new(accounts.clone(), services.store.port(), services.presence.clone());
        let mut routes = tonic::service::Routes::new(UsersServer::new(users))
            .add_service(ModerationServer::new(ModerationService::new(reviewer.clone())));
        let mut names = vec!["parlor.v1.Users", "parlor.v1.Moderation"];
        if let Some(token) = &args.rpc.service_token {
            routes = routes.add_service(gateway.chat(&token.0));
            names.push("parlor.v1.Chat");
        }
        roles.push(Box::new(Grpc::bind(listen, routes, names).await?));
    }
    roles.push(Box::new(gateway));
    roles.push(Box::new(Worker::new(&services, &args.worker, reviewer)));
    roles.push(Box::new(Notifier::new(&services, &args.notify, accounts)?));
    roles::run(services, roles).await
}

/// `parlor gateway`.
pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    if args.http.jwt_secret.is_none() {
        bail!(
            "`parlor gateway` needs --jwt-secret: every gateway of a deployment must sign with the same key"
        );
    }
    let services = Services::open(&args.store, Some(&args.broker)).await?;
    require_shared(&services, "gateway")?;
    let accounts = accounts(&services, &args.http, &args.store.data_dir).await?;
    let authenticator: Arc<dyn Authenticator> = match &args.users_url {
        Some(url) => {
            Arc::new(GrpcAuthenticator::connect_lazy(url, args.rpc.rpc_timeout, Duration::from_secs(1))?)
        }
        None => accounts.clone(),
    };
    let gateway = Gateway::bind(&services, &args.http, accounts, authenticator).await?;
    let mut roles: Vec<Box<dyn Role>> = Vec::new();
    match (&args.rpc.grpc_listen, &args.rpc.service_token) {
        (Some(listen), Some(token)) => {
            let routes = tonic::service::Routes::new(gateway.chat(&token.0));
            roles.push(Box::new(Grpc::bind(listen, routes, vec!["parlor.v1.Chat"]).await?));
        }
        (Some(_), None) => bail!("--grpc-listen serves Chat, which needs --service-token"),
        _ => {}
    }
    roles.push(Box::new(gateway));
    roles::run(services, roles).await
}

/// `parlor worker`.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let services = Services::open(&args.store, Some(&args.broker)).await?;
    require_shared(&services, "worker")?;
    let reviewer: Arc<dyn Reviewer> = match &args.moderation_url {
        Some(url) => Arc::new(GrpcReviewer::connect_lazy(url, args.rpc_timeout)?),
        None => local_reviewer(&args.worker, &services)?,
    };
    let mut roles = metrics_role(&args.metrics, &services).await?;
    roles.insert(0, Box::new(Worker::new(&services, &args.worker, reviewer)));
    roles::run(services, roles).await
}

/// `parlor moderation`.
pub async fn moderation(args: ModerationArgs) -> anyhow::Result<()> {
    let services = Services::open(&args.store, None).await?;
    let reviewer = local_reviewer(&args.worker, &services)?;
    let routes = tonic::service::Routes::new(ModerationServer::new(ModerationService::new(reviewer)));
    let mut roles = metrics_role(&args.metrics, &services).await?;
    roles.insert(0, Box::new(Grpc::bind(&args.grpc_listen, routes, vec!["parlor.v1.Moderation"]).await?));
    roles::run(services, roles).await
}

/// `parlor users`.
pub async fn users(args: UsersArgs) -> anyhow::Result<()> {
    let services = Services::open(&args.store, Some(&args.broker)).await?;
    let accounts = role_accounts(&args.jwt_secret, &services).await?;
    let service = UsersService::new(accounts, services.store.port(), services.presence.clone());
    let routes = tonic::service::Routes::new(UsersServer::new(service));
    let mut roles = metrics_role(&args.metrics, &services).await?;
    roles.insert(0, Box::new(Grpc::bind(&args.grpc_listen, routes, vec!["parlor.v1.Users"]).await?));
    roles::run(services, roles).await
}

/// `parlor notifier`.
pub async fn notifier(args: NotifierArgs) -> anyhow::Result<()> {
    let services = Services::open(&args.store, Some(&args.broker)).await?;
    let accounts = role_accounts(&args.jwt_secret, &services).await?;
    let mut roles = metrics_role(&args.metrics, &services).await?;
    roles.insert(0, Box::new(Notifier::new(&services, &args.notify, accounts)?));
    roles::run(services, roles).await
}

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

fn require_shared(services: &Services, role: &str) -> anyhow::Result<()> {
    if !services.shared {
        bail!(
            "`parlor {role}` runs beside other processes: give it --database-url postgres://... and \
             --redis-url redis://... (or run everything in one process with `parlor serve`)"
        );
    }
    Ok(())
}

/// The metrics listener, if `--metrics-listen` asks for one.
async fn metrics_role(args: &MetricsArgs, services: &Services) -> anyhow::Result<Vec<Box<dyn Role>>> {
    Ok(match &args.metrics_listen {
        Some(listen) => vec![Box::new(Metrics::bind(listen, services.metrics.clone()).await?)],
        None => Vec::new(),
    })
}

/// The accounts of a process that serves HTTP: tokens signed with `--jwt-secret` (or the key kept
/// in the data dir), with the configured lifetimes.
async fn accounts(
    services: &Services,
    http: &HttpArgs,
    data_dir: &std::path::Path,
) -> anyhow::Result<Arc<Accounts>> {
    let settings = AccountSettings {
        jwt_secret: http.signing_key(data_dir)?,
        access_ttl: http.access_token_ttl,
        refresh_ttl: http.refresh_token_ttl,
    };
    Ok(Arc::new(Accounts::new(services.store.port(), services.bus.clone(), settings).await?))
}

/// Accounts for a role that only checks tokens and signs links with the shared key (users,
/// notifier): token lifetimes do not matter there.
async fn role_accounts(secret: &Secret, services: &Services) -> anyhow::Result<Arc<Accounts>> {
    let settings = AccountSettings {
        jwt_secret: crate::settings::check_jwt_secret(secret)?.to_vec(),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(30 * 86_400),
    };
    Ok(Arc::new(Accounts::new(services.store.port(), services.bus.clone(), settings).await?))
}
