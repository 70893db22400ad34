//! The `parlor` executable: parses the configuration once and runs the role asked for.

mod admin;
mod serve;
mod settings;
mod wiring;

use clap::Parser;
use settings::{Cli, Command, LogFormat};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve::serve(*args).await,
        Command::Gateway(args) => serve::gateway(*args).await,
        Command::Worker(args) => serve::worker(*args).await,
        Command::Moderation(args) => serve::moderation(*args).await,
        Command::Users(args) => serve::users(*args).await,
        Command::Notifier(args) => serve::notifier(*args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::Config(command) => admin::config(command).await,
        Command::User(command) => admin::user(command).await,
        Command::Room(command) => admin::room(command).await,
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
