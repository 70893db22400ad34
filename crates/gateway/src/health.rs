//! Liveness, readiness, metrics and the OpenAPI document.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// `/healthz`, `/readyz`, `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

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
        (StatusCode::OK, Json(json!({ "status": "ok" })))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "unavailable": down })))
    }
}

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

/// The OpenAPI 3.1 description of every REST route. Maintained by hand beside the routes; the
/// `openapi` integration test calls every path and method it lists and fails on one the router
/// does not have.
const OPENAPI: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
