//! A gRPC listener as a role: the services a command offers (`Users`, `Moderation`, `Chat`), with
//! health and reflection, until the stop.

use super::{Role, grace, within_grace};
use anyhow::Context;
use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A bound gRPC listener and what it serves.
pub struct Grpc {
    listener: TcpListener,
    routes: tonic::service::Routes,
    names: Vec<&'static str>,
}

impl Grpc {
    /// Binds `listen` for `routes`, whose services `names` lists (for the health service).
    pub async fn bind(
        listen: &str,
        routes: tonic::service::Routes,
        names: Vec<&'static str>,
    ) -> anyhow::Result<Self> {
        let addr = crate::settings::listen_addr(listen)?;
        let listener = parlor_rpc::server::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (gRPC)"))?;
        Ok(Self { listener, routes, names })
    }
}

#[async_trait]
impl Role for Grpc {
    fn name(&self) -> &'static str {
        "grpc"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let server = parlor_rpc::server::serve(
            self.listener,
            self.routes,
            &self.names,
            shutdown.clone().cancelled_owned(),
        );
        within_grace("gRPC calls", &shutdown, grace::REQUESTS, async {
            server.await.context("the gRPC server failed")
        })
        .await
    }
}
