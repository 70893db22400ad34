//! The gateway's shared state: handles to the ports, the accounts service, the hub of local
//! connections, the table of sends waiting for their outcome, and the settings.

use crate::hub::Hub;
use crate::limits::Limits;
use crate::pending::Pending;
use parlor_domain::ports::{Bus, Presence, Queue, Store};
use parlor_lifecycle::Supervisor;
use parlor_users::{Accounts, Authenticator};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How the gateway behaves: every field is a flag and a `PARLOR_*` variable of the commands that
/// run a gateway (the binary flattens this struct into its settings, so the flags are defined
/// once, here, beside what they set).
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct GatewaySettings {
    /// Messages per second per user.
    #[arg(long, env = "PARLOR_SEND_RATE", default_value = "10", value_parser = parse::positive)]
    pub send_rate: u32,
    /// Burst of messages per user above the rate.
    #[arg(long, env = "PARLOR_SEND_BURST", default_value = "30", value_parser = parse::positive)]
    pub send_burst: u32,
    /// Messages per second a trusted integration (gRPC `Chat`) may post as one author.
    #[arg(long, env = "PARLOR_SERVICE_SEND_RATE", default_value = "50", value_parser = parse::positive)]
    pub service_send_rate: u32,
    /// Burst of integration posts per author above that rate.
    #[arg(long, env = "PARLOR_SERVICE_SEND_BURST", default_value = "200", value_parser = parse::positive)]
    pub service_send_burst: u32,
    /// Register, login, refresh and recover calls per second per client address.
    #[arg(long, env = "PARLOR_AUTH_RATE", default_value = "1", value_parser = parse::positive)]
    pub auth_rate: u32,
    /// Burst of those calls per client address.
    #[arg(long, env = "PARLOR_AUTH_BURST", default_value = "20", value_parser = parse::positive)]
    pub auth_burst: u32,
    /// How often the server pings a WebSocket; a connection silent for twice this is closed.
    #[arg(long, env = "PARLOR_HEARTBEAT", default_value = "30s", value_parser = parse::duration)]
    pub heartbeat: Duration,
    /// How long a WebSocket may take to authenticate with its first frame.
    #[arg(long, env = "PARLOR_WS_AUTH_TIMEOUT", default_value = "10s", value_parser = parse::duration)]
    pub ws_auth_timeout: Duration,
    /// Frames queued for one WebSocket before it is closed as a slow consumer (code 1013).
    #[arg(
        long = "ws-outbound-buffer",
        value_name = "WS_OUTBOUND_BUFFER",
        env = "PARLOR_WS_OUTBOUND_BUFFER",
        default_value = "4096"
    )]
    pub outbound_buffer: usize,
    /// Most WebSockets open at once.
    #[arg(long, env = "PARLOR_MAX_CONNECTIONS", default_value = "50000")]
    pub max_connections: usize,
    /// Origins allowed by CORS and to open WebSockets, comma-separated (`https://app.example`);
    /// `*` allows any. By default none: the server's own pages need no CORS.
    #[arg(long, env = "PARLOR_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Failed logins (and, counted apart, recoveries) per username before further attempts for
    /// it are refused with 429; they drain away over --auth-failure-window.
    #[arg(long, env = "PARLOR_AUTH_FAILURES", default_value = "10", value_parser = parse::positive)]
    pub auth_failures: u32,
    /// How long --auth-failures take to drain away (a locked account gets one more attempt every
    /// window / failures).
    #[arg(long, env = "PARLOR_AUTH_FAILURE_WINDOW", default_value = "15m", value_parser = parse::duration)]
    pub auth_failure_window: Duration,
    /// Sends `Strict-Transport-Security: max-age=<this>` on every answer; set it only when the
    /// server is reached over HTTPS (through a proxy that ends TLS). Off by default.
    #[arg(long, env = "PARLOR_HSTS_MAX_AGE", value_parser = parse::duration)]
    pub hsts_max_age: Option<Duration>,
    /// How long a REST send waits for its outcome before answering 503.
    #[arg(long, env = "PARLOR_SEND_TIMEOUT", default_value = "10s", value_parser = parse::duration)]
    pub send_timeout: Duration,
}

/// The value parsers of settings, shared with the binary's own.
pub mod parse {
    use std::time::Duration;

    /// A duration such as `500ms`, `10s`, `10m`, `30d`.
    pub fn duration(s: &str) -> Result<Duration, String> {
        humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 500ms, 10s, 10m, 30d)"))
    }

    /// A whole number above 0.
    pub fn positive(s: &str) -> Result<u32, String> {
        match s.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("must be a whole number above 0".into()),
        }
    }
}

/// The same values as the flags' defaults (a test holds them together), for tests and tools that
/// build a gateway without a command line.
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
    /// Local WebSocket connections and the rooms they are in. Private to the gateway: other
    /// components reach its connections through the bus, like every event.
    pub(crate) hub: Hub,
    /// Sends waiting for the worker's outcome.
    pub pending: Pending,
    pub limits: Limits,
    pub settings: GatewaySettings,
    /// This gateway instance's id: where the worker sends outcomes.
    pub gateway_id: String,
    /// Caps open WebSockets.
    pub connections: Arc<Semaphore>,
    /// Cancelled when the gateway must stop taking connections and close its WebSockets.
    pub shutdown: CancellationToken,
    /// The WebSocket sessions, waited for on shutdown.
    pub(crate) sessions: Supervisor,
    /// The dispatcher of bus events, housekeeping and the watch for ended sessions: stopped after
    /// the sessions, so that sends in flight still get their outcome.
    pub(crate) background: Supervisor,
    /// Renders the process's metrics for `/metrics` (none when no recorder is installed).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

#[cfg(test)]
mod settings_tests {
    use super::GatewaySettings;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        settings: GatewaySettings,
    }

    #[test]
    fn the_default_settings_are_the_flags_defaults() {
        if std::env::vars().any(|(k, _)| k.starts_with("PARLOR_")) {
            eprintln!("skipped: PARLOR_* variables are set and would change the flags' values");
            return;
        }
        let parsed = Flags::try_parse_from(["parlor"]).expect("defaults parse").settings;
        assert_eq!(parsed, GatewaySettings::default());
    }
}
