//! parlor's durable job runner. A job is a struct implementing [`Job`]: a name, a typed payload,
//! a retry policy and `run`. Jobs are rows of the store's jobs table ([`JobStore`]), enqueued
//! with [`enqueue`] (or written by a store transaction, as the worker writes the unread-message
//! e-mails), and run by a [`Runner`]: any number of processes run one side by side, each job
//! claimed under a lease so it runs at least once and never in two places at a time.
//! docs/jobs.md says how to add one.

mod runner;

pub use runner::{Runner, RunnerSettings};

use async_trait::async_trait;
use parlor_domain::ports::{JobStore, NewJob};
use parlor_domain::{Error, Result, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How a job is retried and held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Wait before the first retry of a failed run; each later one waits twice as long.
    pub backoff: Duration,
    /// How long a claim holds the job. The runner renews it while the job runs, so this is how
    /// soon a job whose runner died is taken over by another.
    pub lease: Duration,
    /// Jobs of one group (`Job::group`) falling due within this time of the first due one are
    /// claimed with it and given to one `run_group`. `None`: each group claims only what is due.
    pub window: Option<Duration>,
}

impl Default for Policy {
    fn default() -> Self {
        Self { backoff: Duration::from_secs(5), lease: Duration::from_secs(60), window: None }
    }
}

/// A kind of background work. The struct holds what the job needs to run (store handles,
/// clients, settings); the payload says what to do this time.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// The job's name in the jobs table; never change it once jobs of it may be queued.
    const NAME: &'static str;
    /// Tries before a job is given up (kept as `failed`, logged, counted). Written with each job
    /// when it is enqueued, so a queued job keeps the limit it was enqueued with.
    const MAX_ATTEMPTS: i64 = 5;
    /// What one job carries, stored as JSON. A payload that no longer parses is given up at once.
    type Payload: Serialize + DeserializeOwned + Send + 'static;

    /// The group of a payload: due jobs of one group are claimed and run together (see
    /// `Policy::window`). None by default: each job alone.
    fn group(_payload: &Self::Payload) -> Option<String> {
        None
    }

    /// The retry policy.
    fn policy(&self) -> Policy {
        Policy::default()
    }

    /// Does the work of one job. An `Err` is retried with backoff, up to `MAX_ATTEMPTS` tries.
    /// A job may run more than once (a runner can die after the work and before recording it),
    /// so make it idempotent or make a repeat harmless.
    async fn run(&self, payload: Self::Payload) -> anyhow::Result<()>;

    /// Does the work of a claimed group, in the order the jobs were enqueued; the group succeeds
    /// or is retried as one. By default each job in turn.
    async fn run_group(&self, payloads: Vec<Self::Payload>) -> anyhow::Result<()> {
        for payload in payloads {
            self.run(payload).await?;
        }
        Ok(())
    }
}

/// Enqueues a job of `J` due at `due`; `false` when a pending job of `J` with the same
/// `dedupe_key` is already queued (held by a runner or not), so nothing was added.
pub async fn enqueue<J: Job>(
    store: &dyn JobStore,
    payload: &J::Payload,
    dedupe_key: Option<&str>,
    due: Timestamp,
) -> Result<bool> {
    store
        .enqueue(NewJob {
            name: J::NAME.to_owned(),
            payload: serde_json::to_string(payload).map_err(Error::internal)?,
            dedupe_key: dedupe_key.map(str::to_owned),
            group_key: J::group(payload),
            due,
            max_attempts: J::MAX_ATTEMPTS,
            now: Timestamp::now(),
        })
        .await
}
