//! parlor's gateway role: the REST API and the WebSocket endpoint, authentication, rate limits,
//! CORS and security headers, and the hub that delivers bus events to local connections. It writes messages only
//! through the queue, and learns of every change through the bus, so any number of gateways can
//! run side by side.

mod admission;
mod auth;
mod ended;
pub mod error;
mod events;
mod extract;
pub mod grpc;
mod health;
/// Public for its benchmark (`benches/hot_paths.rs`) only: nothing outside the gateway reaches its
/// connections but through the bus.
#[doc(hidden)]
pub mod hub;
mod limits;
mod lockout;
mod messages;
pub mod openapi;
pub mod outbox;
mod pending;
mod rooms;
mod security;
pub mod state;
mod users;
mod web;
mod ws;

#[cfg(test)]
mod tests;

use crate::error::ApiError;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::pending::Pending;
use crate::state::{AppState, Shared};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::serve::ListenerExt;
use parlor_domain::Error;
use parlor_domain::bus::{BusEvent, Topic};
use parlor_domain::ports::{Bus, Presence, Queue, Store};
use parlor_domain::validate::MAX_PAYLOAD_BYTES;
use parlor_lifecycle::Supervisor;
use parlor_users::{Accounts, Authenticator};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

pub use state::GatewaySettings;

/// The ports and services a gateway uses.
pub struct GatewayDeps {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub queue: Arc<dyn Queue>,
    pub presence: Arc<dyn Presence>,
    pub accounts: Arc<Accounts>,
    /// Checks access tokens (the accounts above, or a `Users` client).
    pub authenticator: Arc<dyn Authenticator>,
    /// The process's metrics, for `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Builds a gateway: subscribes it to the bus and starts, as tasks of `tasks` (the gateway's node
/// of the process's supervisor), its dispatcher of bus events, its housekeeping and its watch for
/// sessions ended elsewhere. They run until [`serve`] has drained the connections.
pub async fn build(
    deps: GatewayDeps,
    settings: GatewaySettings,
    gateway_id: String,
    tasks: &Supervisor,
) -> Result<AppState, Error> {
    let (subs, mut rx) = deps.bus.subscriber().await?;
    subs.subscribe(Topic::Gateway(gateway_id.clone())).await?;
    subs.subscribe(Topic::Presence).await?;
    let state = AppState(Arc::new(Shared {
        store: deps.store,
        bus: deps.bus,
        queue: deps.queue,
        presence: deps.presence,
        accounts: deps.accounts,
        authenticator: deps.authenticator,
        hub: Hub::new(subs, gateway_id.clone()),
        pending: Pending::default(),
        limits: Limits::new(
            settings.send_rate,
            settings.send_burst,
            settings.service_send_rate,
            settings.service_send_burst,
            settings.auth_rate,
            settings.auth_burst,
            settings.auth_failures,
            settings.auth_failure_window,
        ),
        connections: Arc::new(Semaphore::new(settings.max_connections)),
        settings,
        gateway_id,
        shutdown: CancellationToken::new(),
        sessions: tasks.child("sessions"),
        background: tasks.child("background"),
        metrics: deps.metrics,
    }));
    let background = &state.background;
    let dispatcher = state.clone();
    background.spawn("bus dispatcher", async move {
        loop {
            let envelope = tokio::select! {
                envelope = rx.recv() => envelope,
                () = dispatcher.background.cancelled() => return,
            };
            let Some(envelope) = envelope else { return };
            match &envelope.event {
                BusEvent::Reply { request_id, outcome } => {
                    dispatcher.pending.resolve(request_id, (**outcome).clone())
                }
                _ => dispatcher.hub.dispatch(&envelope).await,
            }
        }
    });
    let housekeeping = state.clone();
    background.spawn("housekeeping", async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = housekeeping.background.cancelled() => break,
            }
            // A send whose outcome was lost (a broker outage) is answered `unavailable`; the
            // client retries with the same nonce, which cannot make a second message.
            housekeeping.pending.expire(housekeeping.settings.send_timeout);
            n += 1;
            if n.is_multiple_of(60) {
                housekeeping.limits.sweep();
            }
        }
    });
    background.spawn("ended sessions", ended::watch(state.clone()));
    Ok(state)
}

/// CORS: denied unless the origin is in `origins` (`*` allows any, which also gives every site
/// the API, tokens being bearer headers and not cookies; an empty list, the default, allows none).
/// The web client is served from the same origin and needs no CORS.
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/'))
                .filter(|o| !o.is_empty())
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600))
}

async fn not_found() -> ApiError {
    ApiError(Error::NotFound("no such route".into()))
}

/// The JSON 404 of an unknown path.
fn not_found_response() -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError(Error::NotFound("no such route".into())).into_response()
}

/// A 404 that a nested service answered with no body (the docs page's asset server, for a file it
/// does not have) gets the contract's JSON error like every other answer.
async fn json_not_found(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(req).await;
    if response.status() == axum::http::StatusCode::NOT_FOUND
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        return not_found_response();
    }
    response
}

/// The header that carries a request's id, both ways.
const REQUEST_ID: &str = "x-request-id";

/// A request id the client gave, if it is short and plain enough to log as is.
fn given_request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    let id = headers.get(REQUEST_ID)?.to_str().ok()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    (!id.is_empty() && id.len() <= 64 && id.chars().all(plain)).then(|| id.to_owned())
}

/// Runs a request inside a span carrying its id (the client's `x-request-id` if it is plain, or a
/// new one, returned in the answer), method and path — never the query string, which can hold an
/// unsubscribe token, nor a header or the body. Every line logged while serving it, and for a
/// WebSocket every line of the connection, carries the id. One line per answer: its status and
/// duration (health and metrics scrapes at debug level).
async fn request_span(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let id = given_request_id(req.headers()).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %path);
    let started = std::time::Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, ms, "answered");
        } else if matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics") {
            tracing::debug!(status, ms, "answered");
        } else {
            tracing::info!(status, ms, "answered");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Every documented route, with its description: a route exists only through `routes!`, which
/// also puts it in the OpenAPI document.
pub fn api() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .nest("/auth", auth::router())
        .merge(users::router())
        .merge(rooms::router())
        .merge(messages::router())
        .routes(routes!(ws::upgrade))
        .routes(routes!(health::openapi));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()).merge(health::router()).nest("/api/v1", v1)
}

/// The gateway's routes: the API, the browsable page of its document, which fetches every asset
/// from this server, and the browser client at `/` (plain routes, not in the document).
pub fn router(state: AppState) -> Router {
    let (api, _) = api().split_for_parts();
    let docs = SwaggerUi::new(openapi::PAGE_PATH).config(Config::new([openapi::DOCUMENT_PATH]));
    api.merge(docs)
        .merge(web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(axum::middleware::from_fn(json_not_found))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
        .layer(cors(&state.settings.cors_origins))
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::headers))
        .layer(axum::middleware::from_fn(request_span))
        .with_state(state)
}

/// How long a gateway's stop waits for each of its steps.
#[derive(Clone, Copy, Debug)]
pub struct Drain {
    /// Requests in flight (a REST send waits for its outcome).
    pub requests: Duration,
    /// WebSocket sessions writing their close frames; then the background tasks, each.
    pub sessions: Duration,
}

/// Serves HTTP and WebSocket on `listener` until `stop`; then, in order: takes no new
/// connections, closes every WebSocket with 1001, finishes the requests in flight (a REST send
/// still gets its outcome: the dispatcher runs until the end), waits for the sessions to end, and
/// stops the gateway's background tasks; each step waits at most as long as `drain` says.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    drain: Drain,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let stopped = stop.clone();
    let closer = state.clone();
    let graceful = async move {
        stop.cancelled().await;
        closer.shutdown.cancel();
        closer.hub.close_all(hub::close::GOING_AWAY);
    };
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // Without TCP_NODELAY a small frame written while the previous one is unacknowledged waits
    // for the peer's delayed ACK: 40 ms on Linux, which was the p90 of the `rooms` benchmark.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful).into_future();
    let served = tokio::select! {
        served = server => served,
        () = async {
            stopped.cancelled().await;
            tokio::time::sleep(drain.requests).await;
        } => {
            tracing::warn!("requests still in flight after {:?}; stopping anyway", drain.requests);
            Ok(())
        }
    };
    // Also when the server failed: nothing of this gateway goes on.
    state.shutdown.cancel();
    state.hub.close_all(hub::close::GOING_AWAY);
    state.sessions.stop(drain.sessions).await;
    state.background.stop(drain.sessions).await;
    served
}
