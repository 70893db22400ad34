//! The roles the binary runs, and the one way they start and stop. A role is a value, made ready
//! (its listeners bound) before anything runs, with `run(shutdown)`: it runs until `shutdown`,
//! then stops its own tasks in its own order and returns. Each role spawns only through its node
//! of the process's [`Supervisor`].
//!
//! A command (`serve`, `gateway`, `worker`, ...) is a list of roles over [`Services`] built once.
//! [`run`] starts them all, waits for SIGTERM or Ctrl-C (or a role that ends by itself, which is a
//! failure), and stops them in the order of the list, each before the next: the edge (gRPC, then
//! HTTP and WebSocket: no new connections, sockets closed with 1001, sends in flight answered),
//! the worker (what is queued is committed), the jobs, and last the services themselves (metrics
//! upkeep, then the store, closed once nothing can write to it any more).

pub mod gateway;
pub mod grpc;
pub mod metrics;
pub mod notifier;
pub mod worker;

use crate::wiring::Services;
use async_trait::async_trait;
use futures_util::future::select_all;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the stop waits for each step. One place for every grace period of the stop.
pub mod grace {
    use std::time::Duration;
    /// Requests in flight on the HTTP and gRPC listeners (a REST send waits for its outcome).
    pub const REQUESTS: Duration = Duration::from_secs(6);
    /// WebSocket sessions writing their close frame, and the gateway's background tasks.
    pub const SESSIONS: Duration = Duration::from_secs(3);
    /// The worker committing what is queued in process.
    pub const WORKER: Duration = Duration::from_secs(5);
    /// A job finishing (or handing back its lease).
    pub const JOBS: Duration = Duration::from_secs(5);
    /// Everything else: samplers, metrics upkeep.
    pub const TASKS: Duration = Duration::from_secs(2);
    /// A role as a whole, past its own steps: after this it is left behind and logged.
    pub const ROLE: Duration = Duration::from_secs(15);
}

/// A role of the process.
#[async_trait]
pub trait Role: Send {
    /// Its name in the logs and in the supervisor's tree.
    fn name(&self) -> &'static str;
    /// Runs until `shutdown` is cancelled, then stops its tasks and returns. Returning before
    /// `shutdown` means the role failed (or its server stopped): the process then stops too.
    async fn run(self: Box<Self>, shutdown: CancellationToken) -> anyhow::Result<()>;
}

/// Runs `roles` over `services` until a signal (or a role's end), then stops them in order and
/// closes the services. Errors of roles are reported after the whole stop.
pub async fn run(services: Services, roles: Vec<Box<dyn Role>>) -> anyhow::Result<()> {
    let mut stops = Vec::with_capacity(roles.len());
    let mut handles = Vec::with_capacity(roles.len());
    for role in roles {
        let stop = CancellationToken::new();
        let name = role.name();
        stops.push((name, stop.clone()));
        handles.push(services.tasks.spawn("role", async move { (name, role.run(stop).await) }));
    }
    let mut results = Vec::new();
    let early = tokio::select! {
        () = signal() => {
            tracing::info!("shutting down");
            None
        }
        (first, index, _) = select_all(handles.iter_mut()) => {
            let (name, result) = first
                .unwrap_or_else(|e| (stops[index].0, Err(anyhow::anyhow!("the role panicked: {e}"))));
            tracing::error!(role = name, "a role ended by itself; shutting down");
            results.push((name, result));
            Some(index)
        }
    };
    if let Some(index) = early {
        stops.remove(index);
        handles.remove(index);
    }
    // The order of the list is the order of the stop.
    for ((name, stop), handle) in stops.into_iter().zip(handles) {
        stop.cancel();
        match tokio::time::timeout(grace::ROLE, handle).await {
            Ok(Ok((_, result))) => {
                tracing::info!(role = name, "role stopped");
                results.push((name, result));
            }
            Ok(Err(e)) => results.push((name, Err(anyhow::anyhow!("the {name} role panicked: {e}")))),
            Err(_) => tracing::warn!(role = name, "role still running after {:?}; leaving it", grace::ROLE),
        }
    }
    services.close().await;
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(name, result)| result.err().map(|e| format!("{name}: {e:#}")))
        .collect();
    if failures.is_empty() { Ok(()) } else { anyhow::bail!("{}", failures.join("; ")) }
}

/// SIGTERM or Ctrl-C.
async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs `work` (a role's body, which ends by itself soon after `shutdown`) but waits at most
/// `grace` for it once `shutdown` has come; what is left then is logged and abandoned.
pub async fn within_grace<F, T>(
    what: &str,
    shutdown: &CancellationToken,
    grace: Duration,
    work: F,
) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
    T: Default,
{
    tokio::select! {
        done = work => done,
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("{what} still busy {grace:?} after the stop; stopping anyway");
            Ok(T::default())
        }
    }
}

/// Runs `tick` every `every` until `stop`; for samplers and watchers.
pub async fn every<F, Fut>(every: Duration, stop: CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::ops::ControlFlow<()>>,
{
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.cancelled() => return,
        }
        if tick().await.is_break() {
            return;
        }
    }
}
