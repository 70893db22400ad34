//! The runner: polls the jobs table for each registered job, claims what is due under a lease,
//! runs each claimed group (at most `concurrency` at a time) while renewing its lease, and
//! records the end: done (deleted), retried with exponential backoff, or given up after the
//! job's last try. Claims, renewals and ends all go through the lease token, so a runner that
//! lost its lease (it stalled past it and another runner claimed the jobs) changes nothing.

use crate::{Job, Policy};
use async_trait::async_trait;
use futures_util::FutureExt;
use parlor_domain::ports::{Claim, ClaimedGroup, ClaimedJob, JobStore};
use parlor_domain::{Result, Timestamp};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How a runner works.
#[derive(Clone, Debug)]
pub struct RunnerSettings {
    /// How often due jobs are looked for.
    pub poll: Duration,
    /// Most groups running at once.
    pub concurrency: usize,
    /// How long a stopping runner lets the jobs it runs finish; those still running then are
    /// stopped and released (due again at once, the try not counted).
    pub grace: Duration,
    /// The runner's name in its lease tokens (in logs, and in the table while it holds jobs).
    pub holder: String,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            concurrency: 8,
            grace: Duration::from_secs(1),
            holder: format!("runner-{}", uuid::Uuid::now_v7().simple()),
        }
    }
}

/// Runs registered jobs from a `JobStore`. Build it, `register` each job, then `run` it until
/// shutdown (or, in tests, `run_pending`).
pub struct Runner {
    store: Arc<dyn JobStore>,
    settings: RunnerSettings,
    jobs: Vec<Arc<dyn Erased>>,
    /// Bounds the groups running at once, across jobs.
    slots: Arc<Semaphore>,
}

impl Runner {
    /// A runner over `store` with no jobs yet.
    pub fn new(store: Arc<dyn JobStore>, settings: RunnerSettings) -> Self {
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        Self { store, settings, jobs: Vec::new(), slots }
    }

    /// Adds a job: the runner claims and runs jobs of `J::NAME` with it.
    #[must_use]
    pub fn register<J: Job>(mut self, job: J) -> Self {
        self.jobs.push(Arc::new(Typed(job)));
        self
    }

    /// Runs until `shutdown`: polls, claims and runs. Then claims nothing more, lets what runs
    /// finish within `grace`, and releases the rest. Dropping this future (aborting its task)
    /// stops every job it runs at once and leaves their leases to run out, as a crash would.
    pub async fn run(self, shutdown: CancellationToken) {
        let names: Vec<&str> = self.jobs.iter().map(|j| j.name()).collect();
        tracing::info!(jobs = ?names, holder = %self.settings.holder, "job runner started");
        // Owned by this future, so that dropping it aborts the groups it runs.
        let mut running = JoinSet::new();
        let abort = CancellationToken::new();
        let mut tick = tokio::time::interval(self.settings.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(ended) = running.join_next() => {
                    report(ended);
                    continue;
                }
                () = shutdown.cancelled() => break,
            }
            for job in &self.jobs {
                // Claim no more than can start now: what is claimed and waits holds its lease.
                let free = self.slots.available_permits();
                if free == 0 {
                    break;
                }
                match self.claim(job.as_ref(), free).await {
                    Ok(groups) => {
                        for group in groups {
                            let (store, job, slots, abort) =
                                (self.store.clone(), job.clone(), self.slots.clone(), abort.clone());
                            running
                                .spawn(async move { execute(&*store, &*job, group, &slots, &abort).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, job = job.name(), "claiming jobs failed"),
                }
            }
        }
        let drain = async {
            while let Some(ended) = running.join_next().await {
                report(ended);
            }
        };
        if tokio::time::timeout(self.settings.grace, drain).await.is_err() {
            tracing::info!(left = running.len(), "jobs still running at shutdown; releasing them");
            abort.cancel();
            while let Some(ended) = running.join_next().await {
                report(ended);
            }
        }
        tracing::info!("job runner stopped");
    }

    /// Runs everything due now, round after round, until a claim finds nothing; returns how
    /// many groups ran. A retried job is due later, so it waits for a later call. For tests.
    pub async fn run_pending(&self) -> Result<usize> {
        let never = CancellationToken::new();
        let mut ran = 0;
        loop {
            let mut round = Vec::new();
            for job in &self.jobs {
                for group in self.claim(job.as_ref(), self.settings.concurrency.max(1)).await? {
                    round.push(execute(&*self.store, job.as_ref(), group, &self.slots, &never));
                }
            }
            if round.is_empty() {
                return Ok(ran);
            }
            ran += round.len();
            futures_util::future::join_all(round).await;
        }
    }

    async fn claim(&self, job: &dyn Erased, limit: usize) -> Result<Vec<ClaimedGroup>> {
        let policy = job.policy();
        let now = Timestamp::now();
        // A fresh name per claim: a runner that claims a group again after losing its lease
        // must not be able to end the new claim with the old one's token.
        let holder = format!("{}/{}", self.settings.holder, uuid::Uuid::now_v7().simple());
        self.store
            .claim_jobs(Claim {
                name: job.name(),
                now,
                horizon: now.plus_millis(millis(policy.window.unwrap_or_default())),
                limit: i64::try_from(limit).unwrap_or(i64::MAX),
                holder: &holder,
                lease_until: now.plus_millis(millis(policy.lease)),
            })
            .await
    }
}

/// Logs a group task that panicked outside the job (the job's own panics are caught).
fn report(ended: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        tracing::error!(error = %e, "a job task ended abnormally");
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Why a run failed.
enum Failure {
    /// A payload did not parse: no retry can help.
    Payload(serde_json::Error),
    /// The job failed (or panicked): retried.
    Job(anyhow::Error),
}

/// A job with its payload type erased, as the runner holds it.
#[async_trait]
trait Erased: Send + Sync {
    fn name(&self) -> &'static str;
    fn policy(&self) -> Policy;
    async fn run(&self, jobs: &[ClaimedJob]) -> std::result::Result<(), Failure>;
}

struct Typed<J>(J);

#[async_trait]
impl<J: Job> Erased for Typed<J> {
    fn name(&self) -> &'static str {
        J::NAME
    }

    fn policy(&self) -> Policy {
        self.0.policy()
    }

    async fn run(&self, jobs: &[ClaimedJob]) -> std::result::Result<(), Failure> {
        let payloads = jobs
            .iter()
            .map(|j| serde_json::from_str::<J::Payload>(&j.payload))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Failure::Payload)?;
        match AssertUnwindSafe(self.0.run_group(payloads)).catch_unwind().await {
            Ok(result) => result.map_err(Failure::Job),
            Err(_) => Err(Failure::Job(anyhow::anyhow!("the job panicked"))),
        }
    }
}

/// Runs one claimed group to its end, renewing the lease meanwhile, and records the end.
async fn execute(
    store: &dyn JobStore,
    job: &dyn Erased,
    group: ClaimedGroup,
    slots: &Semaphore,
    abort: &CancellationToken,
) {
    let span = tracing::info_span!("job", job = job.name(), lease = %group.lease, jobs = group.jobs.len());
    async {
        let policy = job.policy();
        let every = (policy.lease / 3).max(Duration::from_millis(10));
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let work = async {
            // The lease is renewed while the group waits for a slot too.
            let Ok(_slot) = slots.acquire().await else {
                return Err(Failure::Job(anyhow::anyhow!("runner closed")));
            };
            job.run(&group.jobs).await
        };
        tokio::pin!(work);
        let result = loop {
            tokio::select! {
                result = &mut work => break Some(result),
                _ = renew.tick() => {
                    let until = Timestamp::now().plus_millis(millis(policy.lease));
                    match store.renew_lease(&group.lease, until).await {
                        // Another runner holds the jobs now: leave them to it.
                        Ok(0) => {
                            tracing::warn!("lease lost while running; abandoning the run");
                            return;
                        }
                        Ok(_) => {}
                        // The lease may still hold; the next tick tries again.
                        Err(e) => tracing::warn!(error = %e, "renewing a lease failed"),
                    }
                }
                () = abort.cancelled() => break None,
            }
        };
        settle(store, job.name(), &policy, &group, result).await;
    }
    .instrument(span)
    .await;
}

/// Records how a run ended. A failed write is only logged: the lease runs out and the jobs run
/// again (at least once).
async fn settle(
    store: &dyn JobStore,
    name: &'static str,
    policy: &Policy,
    group: &ClaimedGroup,
    result: Option<std::result::Result<(), Failure>>,
) {
    let lease = group.lease.as_str();
    let written = match result {
        None => store.release_jobs(lease).await,
        Some(Ok(())) => {
            metrics::counter!("parlor_jobs_done_total", "job" => name).increment(group.jobs.len() as u64);
            store.finish_jobs(lease).await
        }
        Some(Err(Failure::Payload(e))) => {
            metrics::counter!("parlor_jobs_failed_total", "job" => name).increment(group.jobs.len() as u64);
            tracing::error!(error = %e, "job payload does not parse; given up");
            store.fail_jobs(lease, &format!("payload: {e}")).await
        }
        Some(Err(Failure::Job(e))) => {
            // A group is one try of each of its jobs; it is given up with its most tried job.
            let tried = group.jobs.iter().map(|j| j.attempts).max().unwrap_or(0) + 1;
            let most = group.jobs.iter().map(|j| j.max_attempts).min().unwrap_or(1);
            let error = format!("{e:#}");
            if tried >= most {
                metrics::counter!("parlor_jobs_failed_total", "job" => name)
                    .increment(group.jobs.len() as u64);
                tracing::error!(error = %error, tries = tried, "job given up");
                store.fail_jobs(lease, &error).await
            } else {
                let exponent = u32::try_from(tried - 1).unwrap_or(0).min(16);
                let wait = policy.backoff.saturating_mul(1 << exponent);
                metrics::counter!("parlor_jobs_retried_total", "job" => name)
                    .increment(group.jobs.len() as u64);
                tracing::warn!(error = %error, tries = tried, retry_in_ms = wait.as_millis() as u64, "job failed; will retry");
                store.retry_jobs(lease, Timestamp::now().plus_millis(millis(wait)), &error).await
            }
        }
    };
    match written {
        Ok(0) => tracing::warn!("the lease had been taken over; the end was not recorded"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "recording a job's end failed; it will run again"),
    }
}
