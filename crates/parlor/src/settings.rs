//! Configuration: every setting is a flag and a `PARLOR_*` environment variable (a flag wins).
//! Parsed once in `main` and handed down; nothing reads the environment after that. Each role
//! takes the groups of settings it needs.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// parlor: a realtime chat server in one binary.
///
/// Accounts, group rooms and direct messages, history with search, read markers, presence and
/// typing, over a REST API and one WebSocket. `parlor serve` runs everything in one process on an
/// embedded SQLite database; the other roles let it scale out over PostgreSQL, Redis and
/// RabbitMQ. Every setting is a flag and a `PARLOR_*` variable (a flag wins).
#[derive(Parser, Debug)]
#[command(name = "parlor", version, about, after_help = help::CLI)]
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
    ///
    /// With no configuration it keeps its data in SQLite under --data-dir and needs nothing else
    /// installed; --database-url, --redis-url and --amqp-url move the store, the bus and the
    /// queue to those servers. It logs `listening on <address>` once it listens; SIGTERM or
    /// Ctrl-C closes WebSockets with 1001, finishes what is in flight and exits 0.
    #[command(after_help = help::SERVE)]
    Serve(Box<ServeArgs>),
    /// Run the gateway role alone (REST, WebSocket, accounts): needs PostgreSQL and Redis.
    ///
    /// Any number of gateways run side by side behind a load balancer; they must share
    /// --jwt-secret, the database, Redis and --worker-partitions. With --users-url it checks
    /// tokens with a `Users` service instead of in process.
    #[command(after_help = help::GATEWAY)]
    Gateway(Box<GatewayArgs>),
    /// Run the worker role alone (queue in, review, store, publish): needs PostgreSQL and Redis.
    ///
    /// Each queue partition is applied by one worker at a time; start as many workers as you
    /// like and they share the partitions. With --moderation-url it reviews with a `Moderation`
    /// service instead of in process.
    #[command(after_help = help::WORKER)]
    Worker(Box<WorkerArgs>),
    /// Run the moderation role alone: the gRPC `Moderation` service.
    ///
    /// Reviews and renders message bodies for workers started with --moderation-url.
    #[command(after_help = help::MODERATION)]
    Moderation(Box<ModerationArgs>),
    /// Run the users role alone: the gRPC `Users` service (token checks, users, presence).
    ///
    /// Gateways started with --users-url check access tokens here; it needs the gateways'
    /// --jwt-secret.
    #[command(after_help = help::USERS)]
    Users(Box<UsersArgs>),
    /// Run the notifier role alone: unread-message e-mails (any number of them side by side).
    ///
    /// Mails a digest of unread messages (direct messages and mentions) once they have waited
    /// --notify-after, over --smtp-url, or to the log without it.
    #[command(after_help = help::NOTIFIER)]
    Notifier(Box<NotifierArgs>),
    /// Apply the database migrations (or revert the newest, PostgreSQL only) and exit.
    ///
    /// Every role applies the migrations at start-up unless given --no-migrate; run this once
    /// before a deployment whose processes have --no-migrate.
    #[command(after_help = help::MIGRATE)]
    Migrate(MigrateArgs),
    /// Look at the configuration.
    #[command(subcommand, after_help = help::CONFIG)]
    Config(ConfigCommand),
    /// Manage accounts from the command line: create, reset a password, disable, enable.
    ///
    /// These commands work on the database directly (point them at the server's --data-dir or
    /// --database-url); they may run while the server runs.
    #[command(subcommand, after_help = help::USER)]
    User(UserCommand),
    /// Manage rooms from the command line.
    ///
    /// These commands work on the database directly (point them at the server's --data-dir or
    /// --database-url); they may run while the server runs.
    #[command(subcommand, after_help = help::ROOM)]
    Room(RoomCommand),
    /// Fill the database with a lively demo: users, rooms, a direct conversation and history.
    ///
    /// Creates six demo users (alice, bob, carol, dave, erin, frank) who share one password,
    /// four public rooms with topics (general, random, rust, book-club), a private one
    /// (core-team), a direct conversation between alice and bob, and about a hundred messages
    /// spread over the past three days, with markdown, links, mentions, replies and an edit.
    /// Everything goes through the same code as the API: accounts are registered, messages are
    /// reviewed and rendered, then stored. Running it again adds only what is missing. It works
    /// on the database directly and may run while the server runs. For demos and development:
    /// anyone who reads this help knows the password.
    #[command(after_help = help::SEED)]
    Seed(SeedArgs),
}

/// The examples at the end of each command's help.
mod help {
    pub const CLI: &str = r#"Examples:
  parlor serve                              everything in one process, data in ./data
  parlor seed && parlor serve               the same, with a demo to look at
  parlor user create --username admin --password 'a long password'
  parlor user disable mallory               cut an account off at once
  parlor serve --help                       every flag of a command, with its variable"#;
    pub const SERVE: &str = r#"Examples:
  parlor serve
  parlor serve --listen 0.0.0.0:8080 --data-dir /var/lib/parlor
  parlor serve --listen 127.0.0.1:0         a free port, logged as `listening on <address>`
  PARLOR_DATABASE_URL=postgres://postgres@127.0.0.1/parlor \
    PARLOR_REDIS_URL=redis://127.0.0.1:6379 \
    PARLOR_JWT_SECRET=change-me-to-a-long-random-secret parlor serve"#;
    pub const GATEWAY: &str = r#"Example:
  export PARLOR_DATABASE_URL=postgres://postgres@127.0.0.1/parlor PARLOR_REDIS_URL=redis://127.0.0.1:6379
  export PARLOR_JWT_SECRET=change-me-to-a-long-random-secret
  parlor gateway --listen 127.0.0.1:8081 & parlor gateway --listen 127.0.0.1:8082 &"#;
    pub const WORKER: &str = r#"Example:
  export PARLOR_DATABASE_URL=postgres://postgres@127.0.0.1/parlor PARLOR_REDIS_URL=redis://127.0.0.1:6379
  parlor worker & parlor worker &"#;
    pub const MODERATION: &str = r#"Example:
  parlor moderation --grpc-listen 127.0.0.1:50051 &
  parlor worker --moderation-url http://127.0.0.1:50051"#;
    pub const USERS: &str = r#"Example:
  parlor users --grpc-listen 127.0.0.1:50052 --jwt-secret "$PARLOR_JWT_SECRET" &
  parlor gateway --users-url http://127.0.0.1:50052"#;
    pub const NOTIFIER: &str = r#"Example:
  parlor notifier --jwt-secret "$PARLOR_JWT_SECRET" --smtp-url smtp://127.0.0.1:25 \
    --public-url https://chat.example.com"#;
    pub const MIGRATE: &str = r#"Examples:
  parlor migrate --database-url postgres://postgres@127.0.0.1/parlor
  parlor migrate down --database-url postgres://postgres@127.0.0.1/parlor"#;
    pub const CONFIG: &str = r#"Example:
  parlor config check --database-url postgres://postgres@127.0.0.1/parlor --jwt-secret "$SECRET""#;
    pub const CONFIG_CHECK: &str = r#"Examples:
  parlor config check --database-url postgres://postgres@127.0.0.1/parlor --jwt-secret "$SECRET"
  PARLOR_REDIS_URL=redis://127.0.0.1:6379 parlor config check"#;
    pub const USER: &str = r#"Examples:
  parlor user create --username admin --password 'a long password'
  parlor user reset-password --username admin --password 'another one'
  parlor user disable mallory
  parlor user enable mallory
  parlor user disable mallory --database-url postgres://postgres@127.0.0.1/parlor"#;
    pub const USER_CREATE: &str = r#"Examples:
  parlor user create --username admin --password 'a long password'
  PARLOR_NEW_USER_PASSWORD='a long password' parlor user create --username admin \
    --display-name 'The Admin' --email admin@example.com --data-dir /var/lib/parlor"#;
    pub const USER_RESET: &str = r#"Example:
  parlor user reset-password --username admin --password 'another long password'"#;
    pub const USER_DISABLE: &str = r#"Examples:
  parlor user disable mallory
  parlor user disable mallory --data-dir /var/lib/parlor
  parlor user disable mallory --database-url postgres://postgres@127.0.0.1/parlor"#;
    pub const USER_ENABLE: &str = r#"Example:
  parlor user enable mallory --data-dir /var/lib/parlor"#;
    pub const ROOM: &str = r#"Example:
  parlor room create --name Announcements --owner admin --topic 'News from the team'"#;
    pub const ROOM_CREATE: &str = r#"Examples:
  parlor room create --name Announcements --owner admin --topic 'News from the team'
  parlor room create --name staff --owner admin --private"#;
    pub const SEED: &str = r#"Examples:
  parlor seed                               into ./data (SQLite); then: parlor serve
  parlor seed --data-dir /tmp/demo && parlor serve --data-dir /tmp/demo
  parlor seed --database-url postgres://postgres@127.0.0.1/parlor
  curl -s -X POST localhost:8080/api/v1/auth/login \
    -d '{"username":"alice","password":"parlor-demo"}'"#;
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

use parlor_gateway::state::parse::duration;

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
    /// Every process of a deployment must use the same number. With the embedded SQLite store
    /// and queue there is one, whatever this says: SQLite has a single writer.
    #[arg(long, env = "PARLOR_WORKER_PARTITIONS", default_value = "4")]
    pub worker_partitions: usize,
    /// How long a worker's claim on a Redis partition lasts unrenewed, and how long a worker
    /// unheard of stays in the workers' membership (Redis and RabbitMQ): how soon a dead worker's
    /// partitions move to the others.
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
    /// Lifetime of an access token.
    #[arg(long, env = "PARLOR_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = duration)]
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token.
    #[arg(long, env = "PARLOR_REFRESH_TOKEN_TTL", default_value = "30d", value_parser = duration)]
    pub refresh_token_ttl: Duration,
    /// The gateway's limits and timeouts: its flags are defined beside it, in the gateway crate.
    #[command(flatten)]
    pub gateway: parlor_gateway::GatewaySettings,
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

/// Where a role without an HTTP listener of its own serves `/metrics` and `/healthz`.
#[derive(Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Address of a small HTTP listener answering `GET /metrics` (Prometheus) and `GET /healthz`;
    /// none when unset. The gateway and `serve` answer both on --listen instead.
    #[arg(long, env = "PARLOR_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
}

/// Settings of `parlor worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub metrics: MetricsArgs,
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
    pub metrics: MetricsArgs,
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
    pub metrics: MetricsArgs,
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
    pub metrics: MetricsArgs,
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
    ///
    /// Takes every flag and variable `serve` takes, so it shows what `serve` would run with.
    /// Nothing is connected to: it checks the shape of addresses, URLs and files.
    #[command(after_help = help::CONFIG_CHECK)]
    Check(Box<ServeArgs>),
}

/// `parlor user ...`
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account; prints its id and recovery phrase.
    ///
    /// The same rules as `POST /api/v1/auth/register`: a username of 3-32 characters of
    /// `A-Z a-z 0-9 _ . -`, unique case-insensitively, and a password of 8-128 characters. The
    /// recovery phrase is printed once and stored only as a hash.
    #[command(after_help = help::USER_CREATE)]
    Create {
        /// The new account's username.
        #[arg(long)]
        username: String,
        /// Its password (8-128 characters); the variable keeps it out of the shell's history.
        #[arg(long, env = "PARLOR_NEW_USER_PASSWORD")]
        password: Secret,
        /// Its display name (the username by default).
        #[arg(long)]
        display_name: Option<String>,
        /// Its e-mail address, for unread-message e-mails.
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a new password; every session of the account ends.
    ///
    /// Its access and refresh tokens are refused from then on, and its WebSockets are closed
    /// (code 4001) within a few seconds. The recovery phrase stays as it was.
    #[command(after_help = help::USER_RESET)]
    ResetPassword {
        /// The account's username.
        #[arg(long)]
        username: String,
        /// The new password (8-128 characters).
        #[arg(long, env = "PARLOR_NEW_USER_PASSWORD")]
        password: Secret,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable an account: it cannot log in, refresh or recover, and every session ends.
    ///
    /// Its access and refresh tokens are refused (401) from then on, a WebSocket it opens is
    /// refused (an `unauthorized` error, close code 4001), and the WebSockets it has open are
    /// closed the same way within a few seconds. Logging in or recovering with the right
    /// password or phrase answers 403 `forbidden` ("this account has been disabled"); a wrong
    /// one stays 401. Nothing else changes: its messages, rooms and profile stay visible.
    /// Disabling a disabled account does nothing; `parlor user enable` undoes it.
    #[command(after_help = help::USER_DISABLE)]
    Disable {
        /// The account's username (any case).
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Enable a disabled account again.
    ///
    /// Its password and recovery phrase work again; the sessions that ended when it was
    /// disabled stay ended, so it logs in afresh. Enabling an active account does nothing.
    #[command(after_help = help::USER_ENABLE)]
    Enable {
        /// The account's username (any case).
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `parlor room ...`
#[derive(Subcommand, Debug)]
pub enum RoomCommand {
    /// Create a group room owned by an existing user; prints its id.
    ///
    /// The owner is its first member. A public room is listed in `GET /api/v1/rooms/public`
    /// and anyone may join it; members of a private one are added by its owner or admins.
    #[command(after_help = help::ROOM_CREATE)]
    Create {
        /// The room's name (1-100 characters).
        #[arg(long)]
        name: String,
        /// Username of the owner.
        #[arg(long)]
        owner: String,
        /// Its topic (up to 1000 characters).
        #[arg(long)]
        topic: Option<String>,
        /// A private room (default public).
        #[arg(long)]
        private: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Settings of `parlor seed`.
#[derive(Args, Debug)]
pub struct SeedArgs {
    /// The password of the demo users the seed creates (8-128 characters).
    #[arg(long, default_value = "parlor-demo")]
    pub password: Secret,
    #[command(flatten)]
    pub store: StoreArgs,
}

// ---------------------------------------------------------------------------------------------
// Checks: every rule about a setting is written here once. `main` checks the settings of the
// command it runs before anything starts, and `parlor config check` prints the same problems.
// ---------------------------------------------------------------------------------------------

/// The problem named when `--database-url` has another scheme.
pub const DATABASE_URL_PROBLEM: &str = "--database-url must start with sqlite: or postgres://";

/// An address to listen on. `:8080` means every interface, as Go and most servers read it.
pub fn listen_addr(listen: &str) -> anyhow::Result<std::net::SocketAddr> {
    let full = if listen.starts_with(':') { format!("0.0.0.0{listen}") } else { listen.to_owned() };
    full.parse().map_err(|_| anyhow::anyhow!("--listen {listen:?} is not an address like 127.0.0.1:8080"))
}

/// A token signing key long enough to be one.
pub fn check_jwt_secret(secret: &Secret) -> anyhow::Result<&[u8]> {
    if secret.0.len() < 16 {
        anyhow::bail!("--jwt-secret must be at least 16 characters");
    }
    Ok(secret.0.as_bytes())
}

/// Settings whose shape can be checked without connecting anywhere.
pub trait Check {
    /// Adds what is wrong to `problems`.
    fn check(&self, problems: &mut Vec<String>);

    /// Everything that is wrong.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        self.check(&mut problems);
        problems
    }
}

fn url_scheme(problems: &mut Vec<String>, url: &Option<Secret>, flag: &str, schemes: &[&str]) {
    if let Some(url) = url
        && !schemes.iter().any(|s| url.0.starts_with(s))
    {
        problems.push(format!("{flag} must start with {}", schemes.join(" or ")));
    }
}

fn listen(problems: &mut Vec<String>, address: &str, flag: &str) {
    if listen_addr(address).is_err() {
        problems.push(format!("{flag} {address:?} is not an address like 127.0.0.1:8080"));
    }
}

impl Check for StoreArgs {
    fn check(&self, problems: &mut Vec<String>) {
        if let Some(url) = &self.database_url
            && !["sqlite:", "postgres://", "postgresql://"].iter().any(|p| url.0.starts_with(p))
        {
            problems.push(DATABASE_URL_PROBLEM.into());
        }
    }
}

impl Check for BrokerArgs {
    fn check(&self, problems: &mut Vec<String>) {
        url_scheme(problems, &self.redis_url, "--redis-url", &["redis://", "rediss://"]);
        url_scheme(problems, &self.amqp_url, "--amqp-url", &["amqp://", "amqps://"]);
        if self.worker_partitions == 0 {
            problems.push("--worker-partitions must be at least 1".into());
        }
    }
}

impl Check for HttpArgs {
    fn check(&self, problems: &mut Vec<String>) {
        listen(problems, &self.listen, "--listen");
        if let Some(secret) = &self.jwt_secret
            && let Err(e) = check_jwt_secret(secret)
        {
            problems.push(e.to_string());
        }
    }
}

impl Check for WorkerOpts {
    fn check(&self, problems: &mut Vec<String>) {
        for (path, flag) in [
            (&self.blocked_words_file, "--blocked-words-file"),
            (&self.blocked_domains_file, "--blocked-domains-file"),
        ] {
            if let Some(path) = path
                && std::fs::metadata(path).is_err()
            {
                problems.push(format!("{flag} {} cannot be read", path.display()));
            }
        }
    }
}

impl Check for NotifyArgs {
    fn check(&self, problems: &mut Vec<String>) {
        url_scheme(problems, &self.smtp_url, "--smtp-url", &["smtp://", "smtps://"]);
    }
}

impl Check for RpcArgs {
    fn check(&self, problems: &mut Vec<String>) {
        if let Some(address) = &self.grpc_listen {
            listen(problems, address, "--grpc-listen");
        }
    }
}

impl Check for MetricsArgs {
    fn check(&self, problems: &mut Vec<String>) {
        if let Some(address) = &self.metrics_listen {
            listen(problems, address, "--metrics-listen");
        }
    }
}

impl Check for ServeArgs {
    fn check(&self, problems: &mut Vec<String>) {
        self.store.check(problems);
        self.broker.check(problems);
        self.http.check(problems);
        self.worker.check(problems);
        self.notify.check(problems);
        self.rpc.check(problems);
    }
}

impl Check for GatewayArgs {
    fn check(&self, problems: &mut Vec<String>) {
        self.store.check(problems);
        self.broker.check(problems);
        self.http.check(problems);
        self.rpc.check(problems);
    }
}

impl Check for WorkerArgs {
    fn check(&self, problems: &mut Vec<String>) {
        self.metrics.check(problems);
        self.store.check(problems);
        self.broker.check(problems);
        self.worker.check(problems);
    }
}

impl Check for ModerationArgs {
    fn check(&self, problems: &mut Vec<String>) {
        listen(problems, &self.grpc_listen, "--grpc-listen");
        self.metrics.check(problems);
        self.store.check(problems);
        self.worker.check(problems);
    }
}

fn secret(problems: &mut Vec<String>, secret: &Secret) {
    if let Err(e) = check_jwt_secret(secret) {
        problems.push(e.to_string());
    }
}

impl Check for UsersArgs {
    fn check(&self, problems: &mut Vec<String>) {
        listen(problems, &self.grpc_listen, "--grpc-listen");
        secret(problems, &self.jwt_secret);
        self.metrics.check(problems);
        self.store.check(problems);
        self.broker.check(problems);
    }
}

impl Check for NotifierArgs {
    fn check(&self, problems: &mut Vec<String>) {
        secret(problems, &self.jwt_secret);
        self.metrics.check(problems);
        self.store.check(problems);
        self.broker.check(problems);
        self.notify.check(problems);
    }
}

impl Check for MigrateArgs {
    fn check(&self, problems: &mut Vec<String>) {
        self.store.check(problems);
    }
}

/// The settings, if nothing is wrong with them; else every problem, in one error.
pub fn checked<T: Check>(args: T) -> anyhow::Result<T> {
    let problems = args.problems();
    if problems.is_empty() { Ok(args) } else { anyhow::bail!("{}", problems.join("; ")) }
}

impl HttpArgs {
    /// The address of `--listen`.
    pub fn listen_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        listen_addr(&self.listen)
    }

    /// The token signing key: `--jwt-secret`, or one generated once and kept in the data dir.
    pub fn signing_key(&self, data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
        use anyhow::Context;
        if let Some(secret) = &self.jwt_secret {
            return Ok(check_jwt_secret(secret)?.to_vec());
        }
        let path = data_dir.join("jwt-secret");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let existing = existing.trim();
            if existing.len() >= 32 {
                return Ok(existing.as_bytes().to_vec());
            }
        }
        use base64::Engine;
        use rand::RngCore;
        let mut bytes = [0u8; 48];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        write_private(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(secret.into_bytes())
    }
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
