//! The gateway's shared state: handles to the ports, the accounts service, the hub of local
//! connections, the table of sends waiting for their outcome, and the settings.

use crate::hub::Hub;
use crate::limits::Limits;
use crate::pending::Pending;
use parlor_domain::ports::{Bus, Presence, Queue, Store};
use parlor_users::{Accounts, Authenticator};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the gateway behaves.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// Messages per second per user, and the burst.
    pub send_rate: u32,
    pub send_burst: u32,
    /// Messages per second that trusted integrations (gRPC `Chat` with the service token) may
    /// post as one author, and the burst. Apart from the author's own `send_rate`: a bridge
    /// relaying many people is bounded per person it posts as, and never spends their own budget.
    pub service_send_rate: u32,
    pub service_send_burst: u32,
    /// Session calls per second per client address, and the burst.
    pub auth_rate: u32,
    pub auth_burst: u32,
    /// How often the server pings a WebSocket; twice this without a frame closes it.
    pub heartbeat: Duration,
    /// How long a WebSocket may take to send its `auth` frame.
    pub ws_auth_timeout: Duration,
    /// Frames queued for one WebSocket before it counts as a slow consumer (closed with 1013).
    pub outbound_buffer: usize,
    /// Most WebSockets open at once.
    pub max_connections: usize,
    /// How long a REST send waits for its outcome before answering 503.
    pub send_timeout: Duration,
    /// Origins allowed by CORS and on the WebSocket upgrade besides the server's own; `*`
    /// allows any; empty (the default) allows none.
    pub cors_origins: Vec<String>,
    /// Failed logins (and, apart, recoveries) per account before attempts are refused.
    pub auth_failures: u32,
    /// How long those failures take to drain away.
    pub auth_failure_window: Duration,
    /// `Strict-Transport-Security: max-age` on every answer, when served over TLS (by a proxy).
    pub hsts_max_age: Option<Duration>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            send_rate: 10,
            send_burst: 30,
            service_send_rate: 50,
            service_send_burst: 200,
            auth_rate: 1,
            auth_burst: 20,
            heartbeat: Duration::from_secs(30),
            ws_auth_timeout: Duration::from_secs(10),
            outbound_buffer: 4096,
            max_connections: 50_000,
            send_timeout: Duration::from_secs(10),
            cors_origins: Vec::new(),
            auth_failures: 10,
            auth_failure_window: Duration::from_secs(15 * 60),
            hsts_max_age: None,
        }
    }
}

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state behind `AppState`.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub queue: Arc<dyn Queue>,
    pub presence: Arc<dyn Presence>,
    pub accounts: Arc<Accounts>,
    /// Checks access tokens: `accounts` itself, or the `Users` service of another process.
    pub authenticator: Arc<dyn Authenticator>,
    /// Local WebSocket connections and the rooms they are in.
    pub hub: Hub,
    /// Sends waiting for the worker's outcome.
    pub pending: Pending,
    pub limits: Limits,
    pub settings: GatewaySettings,
    /// This gateway instance's id: where the worker sends outcomes.
    pub gateway_id: String,
    /// Caps open WebSockets.
    pub connections: Arc<Semaphore>,
    /// Cancelled when the gateway must stop.
    pub shutdown: CancellationToken,
    /// The WebSocket session tasks, waited for on shutdown.
    pub tasks: TaskTracker,
    /// Renders the process's metrics for `/metrics` (none when no recorder is installed).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}
