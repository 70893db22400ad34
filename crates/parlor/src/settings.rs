//! Configuration: every setting is a flag and a `PARLOR_*` environment variable (a flag wins).
//! Parsed once in `main` and handed down; nothing reads the environment after that. Each role
//! takes the groups of settings it needs.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// parlor: a realtime chat server in one binary.
#[derive(Parser, Debug)]
#[command(name = "parlor", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: `text` for people, `json` for log shippers. Levels come from RUST_LOG.
    #[arg(long, env = "PARLOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to run.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every role in one process: embedded (SQLite, in-process queue and bus) by default, or
    /// over PostgreSQL, Redis and RabbitMQ when their URLs are given.
    Serve(Box<ServeArgs>),
    /// Run the gateway role alone (REST, WebSocket, accounts): needs PostgreSQL and Redis.
    Gateway(Box<GatewayArgs>),
    /// Run the worker role alone (queue in, review, store, publish): needs PostgreSQL and Redis.
    Worker(Box<WorkerArgs>),
    /// Run the moderation role alone: the gRPC `Moderation` service.
    Moderation(Box<ModerationArgs>),
    /// Run the users role alone: the gRPC `Users` service (token checks, users, presence).
    Users(Box<UsersArgs>),
    /// Run the notifier role alone: unread-message e-mails (any number of them side by side).
    Notifier(Box<NotifierArgs>),
    /// Apply the database migrations (or revert the newest, PostgreSQL only) and exit.
    Migrate(MigrateArgs),
    /// Look at the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage accounts from the command line.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage rooms from the command line.
    #[command(subcommand)]
    Room(RoomCommand),
}

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(Secret(s.to_owned()))
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 500ms, 10s, 10m, 30d)"))
}

fn positive(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("must be a whole number above 0".into()),
    }
}

/// Where the data lives.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Directory for the embedded database and generated secrets.
    #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL; default SQLite in the data dir. `sqlite://path` or `postgres://...`.
    #[arg(long, env = "PARLOR_DATABASE_URL")]
    pub database_url: Option<Secret>,
    /// Most PostgreSQL connections per process.
    #[arg(long, env = "PARLOR_DB_MAX_CONNECTIONS", default_value = "16")]
    pub db_max_connections: u32,
    /// Do not apply migrations at start-up (run `parlor migrate` instead).
    #[arg(long, env = "PARLOR_NO_MIGRATE")]
    pub no_migrate: bool,
}

/// The queue, the bus and presence.
#[derive(Args, Debug, Clone)]
pub struct BrokerArgs {
    /// Redis for queue, fan-out and presence (distributed mode).
    #[arg(long, env = "PARLOR_REDIS_URL")]
    pub redis_url: Option<Secret>,
    /// RabbitMQ for the queue instead of Redis.
    #[arg(long, env = "PARLOR_AMQP_URL")]
    pub amqp_url: Option<Secret>,
    /// Prefix of every Redis key and channel and RabbitMQ queue, so deployments can share servers.
    #[arg(long, env = "PARLOR_KEY_PREFIX", default_value = "parlor")]
    pub key_prefix: String,
    /// Queue partitions; rooms are spread over them and each is applied in order by one worker.
    /// Every process of a deployment must use the same number.
    #[arg(long, env = "PARLOR_WORKER_PARTITIONS", default_value = "4")]
    pub worker_partitions: usize,
    /// How long a worker's claim on a Redis partition lasts unrenewed: how soon a dead worker's
    /// partitions move to another.
    #[arg(long, env = "PARLOR_PARTITION_LEASE", default_value = "5s", value_parser = duration)]
    pub partition_lease: Duration,
    /// How long a gateway's presence claims last unrenewed: how soon the users of a dead gateway
    /// count as offline.
    #[arg(long, env = "PARLOR_PRESENCE_TTL", default_value = "30s", value_parser = duration)]
    pub presence_ttl: Duration,
}

/// The HTTP and WebSocket edge, and accounts.
#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// HTTP and WebSocket address; port 0 picks a free port and logs it; `:8080` means every
    /// interface.
    #[arg(long, env = "PARLOR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Token signing key; by default one is generated and kept in the data dir. Every gateway of
    /// a deployment must share it.
    #[arg(long, env = "PARLOR_JWT_SECRET")]
    pub jwt_secret: Option<Secret>,
    /// Messages per second per user.
    #[arg(long, env = "PARLOR_SEND_RATE", default_value = "10", value_parser = positive)]
    pub send_rate: u32,
    /// Burst of messages per user above the rate.
    #[arg(long, env = "PARLOR_SEND_BURST", default_value = "30", value_parser = positive)]
    pub send_burst: u32,
    /// Register, login, refresh and recover calls per second per client address.
    #[arg(long, env = "PARLOR_AUTH_RATE", default_value = "1", value_parser = positive)]
    pub auth_rate: u32,
    /// Burst of those calls per client address.
    #[arg(long, env = "PARLOR_AUTH_BURST", default_value = "20", value_parser = positive)]
    pub auth_burst: u32,
    /// Lifetime of an access token.
    #[arg(long, env = "PARLOR_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = duration)]
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token.
    #[arg(long, env = "PARLOR_REFRESH_TOKEN_TTL", default_value = "30d", value_parser = duration)]
    pub refresh_token_ttl: Duration,
    /// How often the server pings a WebSocket; a connection silent for twice this is closed.
    #[arg(long, env = "PARLOR_HEARTBEAT", default_value = "30s", value_parser = duration)]
    pub heartbeat: Duration,
    /// How long a WebSocket may take to authenticate with its first frame.
    #[arg(long, env = "PARLOR_WS_AUTH_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub ws_auth_timeout: Duration,
    /// Frames queued for one WebSocket before it is closed as a slow consumer (code 1013).
    #[arg(long, env = "PARLOR_WS_OUTBOUND_BUFFER", default_value = "4096")]
    pub ws_outbound_buffer: usize,
    /// Most WebSockets open at once.
    #[arg(long, env = "PARLOR_MAX_CONNECTIONS", default_value = "50000")]
    pub max_connections: usize,
    /// Origins allowed by CORS, comma-separated; `*` allows any.
    #[arg(long, env = "PARLOR_CORS_ORIGINS", default_value = "*", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// How long a REST send waits for its outcome before answering 503.
    #[arg(long, env = "PARLOR_SEND_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub send_timeout: Duration,
}

/// The worker and its review.
#[derive(Args, Debug, Clone)]
pub struct WorkerOpts {
    /// Most messages committed in one transaction.
    #[arg(long, env = "PARLOR_BATCH_MAX", default_value = "256")]
    pub batch_max: usize,
    /// Blocked words and phrases, one a line; by default a small built-in list.
    #[arg(long, env = "PARLOR_BLOCKED_WORDS_FILE")]
    pub blocked_words_file: Option<PathBuf>,
    /// Blocked link domains (each covers its subdomains), one a line; by default a few IP loggers.
    #[arg(long, env = "PARLOR_BLOCKED_DOMAINS_FILE")]
    pub blocked_domains_file: Option<PathBuf>,
    /// Most links in one message (more: `too_many_links`).
    #[arg(long, env = "PARLOR_MAX_LINKS", default_value = "10")]
    pub max_links: usize,
    /// Spam probability from the classifier at which a message is refused as `spam`; above 1
    /// turns the classifier off.
    #[arg(long, env = "PARLOR_SPAM_THRESHOLD", default_value = "0.995")]
    pub spam_threshold: f64,
    /// Delay before an unread-message e-mail (the worker schedules it with the message).
    #[arg(long, env = "PARLOR_NOTIFY_AFTER", default_value = "10m", value_parser = duration)]
    pub notify_after: Duration,
}

/// Unread-message e-mails.
#[derive(Args, Debug, Clone)]
pub struct NotifyArgs {
    /// SMTP server for unread-message e-mails: `smtp://host:port`, `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://host:465`; by default e-mails are logged, not sent.
    #[arg(long, env = "PARLOR_SMTP_URL")]
    pub smtp_url: Option<Secret>,
    /// Sender of the e-mails.
    #[arg(long, env = "PARLOR_MAIL_FROM", default_value = "parlor <parlor@localhost>")]
    pub mail_from: String,
    /// Base URL of the web client, for links in e-mails.
    #[arg(long, env = "PARLOR_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
    /// Wait before retrying a failed send; each later retry waits twice as long (8 tries in all).
    #[arg(long, env = "PARLOR_NOTIFY_RETRY", default_value = "5s", value_parser = duration)]
    pub notify_retry: Duration,
    /// How long a notifier holds the jobs it works on: those of a notifier that dies are taken
    /// over after this.
    #[arg(long, env = "PARLOR_NOTIFY_LEASE", default_value = "60s", value_parser = duration)]
    pub notify_lease: Duration,
}

/// gRPC: where this process serves, and where it finds the roles that run elsewhere.
#[derive(Args, Debug, Clone)]
pub struct RpcArgs {
    /// gRPC address. `serve` offers Users, Moderation and Chat there, `gateway` offers Chat; off
    /// when unset.
    #[arg(long, env = "PARLOR_GRPC_LISTEN")]
    pub grpc_listen: Option<String>,
    /// Token that integrations present to `Chat` (`authorization: Bearer <token>`); `Chat` is off
    /// without it.
    #[arg(long, env = "PARLOR_SERVICE_TOKEN")]
    pub service_token: Option<Secret>,
    /// Deadline of each call to another service.
    #[arg(long, env = "PARLOR_RPC_TIMEOUT", default_value = "2s", value_parser = duration)]
    pub rpc_timeout: Duration,
}

/// Settings of `parlor serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub worker: WorkerOpts,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[command(flatten)]
    pub rpc: RpcArgs,
}

/// Settings of `parlor gateway`.
#[derive(Args, Debug)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub rpc: RpcArgs,
    /// The `Users` service (`http://host:port`) to check tokens with; in process when unset.
    #[arg(long, env = "PARLOR_USERS_URL")]
    pub users_url: Option<String>,
}

/// Settings of `parlor worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub worker: WorkerOpts,
    /// The `Moderation` service (`http://host:port`) to review with; in process when unset.
    #[arg(long, env = "PARLOR_MODERATION_URL")]
    pub moderation_url: Option<String>,
    /// Deadline of each call to another service.
    #[arg(long, env = "PARLOR_RPC_TIMEOUT", default_value = "2s", value_parser = duration)]
    pub rpc_timeout: Duration,
}

/// Settings of `parlor moderation`.
#[derive(Args, Debug)]
pub struct ModerationArgs {
    /// gRPC address of the `Moderation` service.
    #[arg(long, env = "PARLOR_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    pub grpc_listen: String,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub worker: WorkerOpts,
}

/// Settings of `parlor users`.
#[derive(Args, Debug)]
pub struct UsersArgs {
    /// gRPC address of the `Users` service.
    #[arg(long, env = "PARLOR_GRPC_LISTEN", default_value = "127.0.0.1:50052")]
    pub grpc_listen: String,
    /// Token signing key, the same as the gateways'.
    #[arg(long, env = "PARLOR_JWT_SECRET")]
    pub jwt_secret: Secret,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
}

/// Settings of `parlor migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// `up` applies every migration (the default); `down` reverts the newest (PostgreSQL).
    #[arg(value_enum, default_value_t = Direction::Up)]
    pub direction: Direction,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Which way to migrate.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// Settings of `parlor notifier`.
#[derive(Args, Debug)]
pub struct NotifierArgs {
    /// Token signing key, the same as the gateways' (it signs the unsubscribe links).
    #[arg(long, env = "PARLOR_JWT_SECRET")]
    pub jwt_secret: Secret,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// `parlor config ...`
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the effective configuration of `serve` (secrets masked) and what is wrong with it;
    /// exits 1 if anything is.
    Check(Box<ServeArgs>),
}

/// `parlor user ...`
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account; prints its id and recovery phrase.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, env = "PARLOR_NEW_USER_PASSWORD")]
        password: Secret,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a new password; every session of the account ends.
    ResetPassword {
        #[arg(long)]
        username: String,
        #[arg(long, env = "PARLOR_NEW_USER_PASSWORD")]
        password: Secret,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `parlor room ...`
#[derive(Subcommand, Debug)]
pub enum RoomCommand {
    /// Create a group room owned by an existing user; prints its id.
    Create {
        #[arg(long)]
        name: String,
        /// Username of the owner.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        topic: Option<String>,
        /// A private room (default public).
        #[arg(long)]
        private: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}
