//! Administration from the command line: `config check`, `user create|reset-password|disable|
//! enable`, `room create` (and `seed`, in its own module). They work on the store directly, with
//! the same domain code the API uses.

use crate::settings::{ConfigCommand, RoomCommand, StoreArgs, UserCommand};
use crate::wiring::StoreHandle;
use anyhow::{Context, bail};
use parlor_broker::LocalBus;
use parlor_domain::model::Visibility;
use parlor_domain::ports::NewRoom;
use parlor_domain::{RoomId, Timestamp, validate};
use parlor_users::{AccountSettings, Accounts};
use std::sync::Arc;
use std::time::Duration;

/// `parlor config check`.
pub async fn config(command: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check(args) = command;
    // Secrets print as [redacted] (their Debug says so).
    println!("{args:#?}");
    let problems = crate::settings::Check::problems(&*args);
    if problems.is_empty() {
        println!("configuration ok");
        Ok(())
    } else {
        for p in &problems {
            eprintln!("problem: {p}");
        }
        bail!("{} problem(s) in the configuration", problems.len())
    }
}

/// Accounts over the store, for commands (sessions they end are announced on an in-process bus
/// nobody listens to: running gateways refuse those tokens at their next use, and close those
/// sessions' WebSockets when they next look at the store for ended sessions, within seconds).
pub(crate) async fn accounts(store: &StoreHandle, data_dir: &std::path::Path) -> anyhow::Result<Accounts> {
    let secret =
        std::fs::read_to_string(data_dir.join("jwt-secret")).unwrap_or_else(|_| "unused-for-commands".into());
    let settings = AccountSettings {
        jwt_secret: secret.trim().as_bytes().to_vec(),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(86_400),
    };
    Ok(Accounts::new(store.port(), Arc::new(LocalBus::new()), settings).await?)
}

pub(crate) async fn open(store: &StoreArgs) -> anyhow::Result<StoreHandle> {
    StoreHandle::open(store).await
}

/// `parlor user ...`.
pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { username, password, display_name, email, store } => {
            let handle = open(&store).await?;
            let accounts = accounts(&handle, &store.data_dir).await?;
            let created = accounts
                .register(
                    &username,
                    &password.0,
                    display_name.as_deref(),
                    email.as_deref(),
                    Some("parlor user create".into()),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created user {} ({})", created.user.user.username, created.user.user.id);
            println!("recovery phrase (shown once): {}", created.recovery_phrase);
            handle.close().await;
        }
        UserCommand::ResetPassword { username, password, store } => {
            let handle = open(&store).await?;
            let accounts = accounts(&handle, &store.data_dir).await?;
            let user =
                accounts.reset_password(&username, &password.0).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("password reset for {} ({}); every session ended", user.user.username, user.user.id);
            handle.close().await;
        }
        UserCommand::Disable { username, store } => {
            let handle = open(&store).await?;
            let accounts = accounts(&handle, &store.data_dir).await?;
            let done = accounts.disable(&username).await;
            handle.close().await;
            let done = done.map_err(|e| anyhow::anyhow!("{e}"))?;
            let who = format!("{} ({})", done.user.user.username, done.user.user.id);
            if done.already {
                println!("{who} was already disabled (since {})", done.since);
            } else {
                println!("disabled {who}");
            }
            println!(
                "{} session(s) ended; it cannot log in, refresh or recover until `parlor user enable {}`",
                done.sessions_ended, done.user.user.username
            );
        }
        UserCommand::Enable { username, store } => {
            let handle = open(&store).await?;
            let accounts = accounts(&handle, &store.data_dir).await?;
            let before = handle.port().user_by_username(&username).await;
            let done = accounts.enable(&username).await;
            handle.close().await;
            let user = done.map_err(|e| anyhow::anyhow!("{e}"))?;
            let was_disabled = before.ok().flatten().is_some_and(|r| r.disabled_at.is_some());
            let who = format!("{} ({})", user.user.username, user.user.id);
            if was_disabled {
                println!("enabled {who}; it can log in again");
            } else {
                println!("{who} was not disabled; nothing changed");
            }
        }
    }
    Ok(())
}

/// `parlor room ...`.
pub async fn room(command: RoomCommand) -> anyhow::Result<()> {
    let RoomCommand::Create { name, owner, topic, private, store } = command;
    let handle = open(&store).await?;
    let port = handle.port();
    let name = validate::room_name(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let topic = topic.as_deref().map(validate::topic).transpose().map_err(|e| anyhow::anyhow!("{e}"))?;
    let owner = port
        .user_by_username(&owner)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_context(|| format!("no user named {owner:?}"))?;
    let room = port
        .create_room(NewRoom {
            id: RoomId::generate(),
            name,
            topic: topic.filter(|t| !t.is_empty()),
            visibility: if private { Visibility::Private } else { Visibility::Public },
            owner_id: owner.user.id,
            created_at: Timestamp::now(),
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("created room {} ({})", room.name.unwrap_or_default(), room.id);
    handle.close().await;
    Ok(())
}
