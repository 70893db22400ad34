//! `/metrics` and `/healthz` on a small listener of their own, for the roles that have no HTTP
//! listener (`--metrics-listen` of `worker`, `moderation`, `users` and `notifier`).

use super::{Role, grace, within_grace};
use anyhow::Context;
use async_trait::async_trait;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A bound metrics listener.
pub struct Metrics {
    listener: TcpListener,
    handle: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Metrics {
    /// Binds `listen`; renders the process's metrics from `handle`.
    pub async fn bind(
        listen: &str,
        handle: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> anyhow::Result<Self> {
        let addr =
            crate::settings::listen_addr(listen).with_context(|| format!("--metrics-listen {listen:?}"))?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
        tracing::info!("metrics listening on {}", listener.local_addr()?);
        Ok(Self { listener, handle })
    }
}

#[async_trait]
impl Role for Metrics {
    fn name(&self) -> &'static str {
        "metrics"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.handle;
        let app = axum::Router::new()
            .route(
                "/metrics",
                get(move || {
                    let body = handle.as_ref().map(|h| h.render()).unwrap_or_default();
                    async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
                }),
            )
            .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }));
        let server =
            axum::serve(self.listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        within_grace("the metrics listener", &shutdown, grace::TASKS, async {
            server.await.context("the metrics listener failed")
        })
        .await
    }
}
