//! The gateway role: REST and WebSocket on one listener (`parlor serve`, `parlor gateway`), and
//! beside them a sampler of the queue's depth for `/metrics`.

use super::{Role, every, grace};
use crate::settings::HttpArgs;
use crate::wiring::Services;
use anyhow::Context;
use async_trait::async_trait;
use parlor_gateway::GatewayDeps;
use parlor_gateway::state::AppState;
use parlor_lifecycle::Supervisor;
use parlor_proto::v1::chat_server::ChatServer;
use parlor_users::{Accounts, Authenticator};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A gateway, bound and ready to serve.
pub struct Gateway {
    listener: TcpListener,
    state: AppState,
    tasks: Supervisor,
}

impl Gateway {
    /// Binds `--listen` and builds the gateway over the shared services; tokens are checked by
    /// `authenticator` (the accounts themselves, or a `Users` client).
    pub async fn bind(
        services: &Services,
        http: &HttpArgs,
        accounts: Arc<Accounts>,
        authenticator: Arc<dyn Authenticator>,
    ) -> anyhow::Result<Self> {
        let addr = http.listen_addr()?;
        let tasks = services.tasks.child("gateway");
        let state = parlor_gateway::build(
            GatewayDeps {
                store: services.store.port(),
                bus: services.bus.clone(),
                queue: services.queue.clone(),
                presence: services.presence.clone(),
                accounts,
                authenticator,
                metrics: services.metrics.clone(),
            },
            http.gateway.clone(),
            services.instance_id.clone(),
            &tasks,
        )
        .await?;
        let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!("listening on {}", listener.local_addr()?);
        Ok(Self { listener, state, tasks })
    }

    /// The gRPC `Chat` service of this gateway (integrations post through its send path).
    pub fn chat(&self, token: &str) -> ChatServer<parlor_gateway::grpc::ChatService> {
        ChatServer::new(parlor_gateway::grpc::ChatService::new(self.state.clone(), token.to_owned()))
    }
}

#[async_trait]
impl Role for Gateway {
    fn name(&self) -> &'static str {
        "gateway"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let sampler = self.tasks.child("queue depth");
        sampler.spawn("queue depth", queue_depth(self.state.queue.clone(), sampler.token().clone()));
        let drain = parlor_gateway::Drain { requests: grace::REQUESTS, sessions: grace::SESSIONS };
        let served = parlor_gateway::serve(self.listener, self.state, drain, shutdown).await;
        sampler.stop(grace::TASKS).await;
        self.tasks.stop(grace::TASKS).await;
        served.context("the HTTP server failed")
    }
}

/// Samples the queue's depth into `parlor_queue_depth{partition}` every 5 s until `stop`. Every
/// gateway reports the same shared queue, so dashboards take the max per partition, not the sum.
async fn queue_depth(queue: Arc<dyn parlor_domain::ports::Queue>, stop: CancellationToken) {
    every(Duration::from_secs(5), stop, || {
        let queue = queue.clone();
        async move {
            match tokio::time::timeout(Duration::from_secs(3), queue.depths()).await {
                Ok(Ok(Some(depths))) => {
                    for (p, depth) in depths.into_iter().enumerate() {
                        metrics::gauge!("parlor_queue_depth", "partition" => p.to_string()).set(depth as f64);
                    }
                }
                Ok(Ok(None)) => return ControlFlow::Break(()),
                Ok(Err(e)) => tracing::debug!(error = %e, "queue depth unknown"),
                Err(_) => tracing::debug!("queue depth: no answer in 3 s"),
            }
            ControlFlow::Continue(())
        }
    })
    .await
}
