//! The worker role: the queue in, review, the store, the bus out (`parlor serve`, `parlor worker`).

use super::{Role, grace, within_grace};
use crate::settings::WorkerOpts;
use crate::wiring::Services;
use anyhow::Context;
use async_trait::async_trait;
use parlor_domain::ports::Reviewer;
use parlor_moderation::{ModerationSettings, Moderator};
use parlor_worker::WorkerContext;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A worker, ready to consume.
pub struct Worker {
    ctx: WorkerContext,
}

impl Worker {
    /// A worker over the shared services, reviewing with `reviewer`.
    pub fn new(services: &Services, opts: &WorkerOpts, reviewer: Arc<dyn Reviewer>) -> Self {
        Self {
            ctx: WorkerContext {
                store: services.store.port(),
                queue: services.queue.clone(),
                bus: services.bus.clone(),
                reviewer,
                batch_max: opts.batch_max.max(1),
                notify_after: Some(opts.notify_after),
                holdings: Default::default(),
            },
        }
    }
}

#[async_trait]
impl Role for Worker {
    fn name(&self) -> &'static str {
        "worker"
    }

    /// Consumes until `shutdown`, then commits what it holds (the gateways take no more sends by
    /// then) and returns.
    async fn run(self: Box<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let work = parlor_worker::run(self.ctx, shutdown.clone());
        within_grace("the worker", &shutdown, grace::WORKER, async {
            work.await.context("the worker failed")
        })
        .await
    }
}

/// The moderation role in process: review, rendering and the flood counters.
pub fn local_reviewer(opts: &WorkerOpts, services: &Services) -> anyhow::Result<Arc<dyn Reviewer>> {
    let read = |path: &Option<std::path::PathBuf>, flag: &str| -> anyhow::Result<Option<String>> {
        match path {
            Some(path) => Ok(Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {flag} {}", path.display()))?,
            )),
            None => Ok(None),
        }
    };
    let settings = ModerationSettings {
        blocked_words: read(&opts.blocked_words_file, "--blocked-words-file")?,
        blocked_domains: read(&opts.blocked_domains_file, "--blocked-domains-file")?,
        max_links: opts.max_links,
        spam_threshold: opts.spam_threshold,
        ..ModerationSettings::default()
    };
    Ok(Arc::new(Moderator::new(settings, services.store.port())))
}
