//! The `parlor` executable: parses the configuration once and runs the role asked for.

mod admin;
mod metrics;
mod roles;
mod seed;
mod serve;
mod settings;
mod wiring;

use clap::Parser;
use settings::{Cli, Command, LogFormat, checked};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// mimalloc: cheaper than glibc's allocator on the message path (measured in
/// docs/performance.md), and it hands freed memory back instead of keeping it in per-thread
/// arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Libraries that log what passes through them (message text in the HTML sanitiser, frames in
/// the WebSocket, HTTP/2, AMQP and SMTP code) at debug or trace level. They stay at `warn` unless
/// `RUST_LOG` names them, so that `RUST_LOG=debug` never writes a body or a token to the log.
const CONTENT_LOGGING: [&str; 12] = [
    "html5ever",
    "markup5ever",
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "tonic",
    "tower",
    "lapin",
    "amq_protocol",
    "lettre",
];

fn log_filter(spec: &str) -> EnvFilter {
    let mut filter = EnvFilter::builder().parse_lossy(spec);
    for target in CONTENT_LOGGING {
        if !spec.contains(target)
            && let Ok(directive) = format!("{target}=warn").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

fn init_logs(format: LogFormat) {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    let filter = log_filter(&spec);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Runs a command whose settings were checked (or says what is wrong with them).
async fn run<T, F, Fut>(args: anyhow::Result<T>, command: F) -> anyhow::Result<()>
where
    F: FnOnce(T) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    command(args?).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => run(checked(*args), serve::serve).await,
        Command::Gateway(args) => run(checked(*args), serve::gateway).await,
        Command::Worker(args) => run(checked(*args), serve::worker).await,
        Command::Moderation(args) => run(checked(*args), serve::moderation).await,
        Command::Users(args) => run(checked(*args), serve::users).await,
        Command::Notifier(args) => run(checked(*args), serve::notifier).await,
        Command::Migrate(args) => run(checked(args), serve::migrate).await,
        Command::Config(command) => admin::config(command).await,
        Command::User(command) => admin::user(command).await,
        Command::Room(command) => admin::room(command).await,
        Command::Seed(args) => seed::seed(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("parlor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
