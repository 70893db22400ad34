//! Liveness, readiness, metrics and the OpenAPI document.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use std::sync::OnceLock;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `/healthz`, `/readyz`, `/metrics`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

/// Whether the process, or what it depends on, is well.
#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// What is down: `database`, `queue`, `bus`, `presence` or `shutting_down`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unavailable: Vec<&'static str>,
}

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "alive", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", unavailable: Vec::new() })
}

/// Readiness: the database, queue, bus and presence answer and the process is not stopping.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "ready", body = Health),
        (status = 503, description = "something it needs is down, or it is stopping", body = Health)
    )
)]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut down = Vec::new();
    let (store, queue, bus, presence) =
        tokio::join!(state.store.ping(), state.queue.ping(), state.bus.ping(), state.presence.ping());
    for (result, name) in [(store, "database"), (queue, "queue"), (bus, "bus"), (presence, "presence")] {
        if result.is_err() {
            down.push(name);
        }
    }
    if state.shutdown.is_cancelled() {
        down.push("shutting_down");
    }
    if down.is_empty() {
        (StatusCode::OK, Json(Health { status: "ok", unavailable: down }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "unavailable", unavailable: down }))
    }
}

/// Prometheus metrics, every name prefixed `parlor_` (docs/operations.md).
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    metrics::gauge!("parlor_sends_pending").set(state.pending.len() as f64);
    let body = match &state.metrics {
        Some(handle) => handle.render(),
        None => format!(
            "# TYPE parlor_connections_open gauge\nparlor_connections_open {}\n",
            state.hub.connection_count()
        ),
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI document of this API", content_type = "application/json"))
)]
pub async fn openapi() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| crate::openapi::document(crate::api().split_for_parts().1));
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}
