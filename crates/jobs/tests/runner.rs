//! The job runner against real stores: SQLite in a fresh file and PostgreSQL in a fresh database
//! on the server named by `PARLOR_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), as in crates/store/tests/store_ports.rs. Jobs
//! record what they ran; each test waits for what it expects with a timeout.

use async_trait::async_trait;
use parlor_domain::Timestamp;
use parlor_domain::ports::Claim;
use parlor_jobs::{Job, Policy, Runner, RunnerSettings, enqueue};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use parlor_store::testing::TestStore as Fixture;

/// When a group ran, and its payloads.
type Run = (Instant, Vec<u32>);

/// What a test job saw: the groups it ran (payloads in order), when, and whether two runs of one
/// payload ever overlapped.
#[derive(Clone, Default)]
struct Log {
    runs: Arc<Mutex<Vec<Run>>>,
    running: Arc<Mutex<HashSet<u32>>>,
    overlapped: Arc<AtomicBool>,
}

impl Log {
    fn runs(&self) -> Vec<Vec<u32>> {
        self.runs.lock().expect("log").iter().map(|(_, p)| p.clone()).collect()
    }

    fn times(&self) -> Vec<Instant> {
        self.runs.lock().expect("log").iter().map(|(t, _)| *t).collect()
    }

    fn counts(&self) -> HashMap<u32, usize> {
        let mut counts = HashMap::new();
        for run in self.runs() {
            for p in run {
                *counts.entry(p).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// A job that records its runs; it fails, hangs or takes a while as told.
#[derive(Clone, Default)]
struct Probe {
    log: Log,
    fail: bool,
    /// Never ends (after saying it started).
    hang: bool,
    started: Arc<Notify>,
    work: Duration,
    lease: Option<Duration>,
}

#[async_trait]
impl Job for Probe {
    const NAME: &'static str = "probe";
    const MAX_ATTEMPTS: i64 = 3;
    type Payload = u32;

    fn policy(&self) -> Policy {
        Policy {
            backoff: Duration::from_millis(100),
            lease: self.lease.unwrap_or(Duration::from_secs(30)),
            window: None,
        }
    }

    async fn run(&self, payload: u32) -> anyhow::Result<()> {
        self.log.runs.lock().expect("log").push((Instant::now(), vec![payload]));
        if !self.log.running.lock().expect("running").insert(payload) {
            self.log.overlapped.store(true, Ordering::SeqCst);
        }
        self.started.notify_one();
        if self.hang {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.work).await;
        self.log.running.lock().expect("running").remove(&payload);
        anyhow::ensure!(!self.fail, "told to fail");
        Ok(())
    }
}

/// A grouped job: payloads `(group, n)`, due jobs of one group within a minute run together.
#[derive(Clone, Default)]
struct Grouped {
    log: Log,
}

#[async_trait]
impl Job for Grouped {
    const NAME: &'static str = "grouped";
    type Payload = (String, u32);

    fn group(payload: &(String, u32)) -> Option<String> {
        Some(payload.0.clone())
    }

    fn policy(&self) -> Policy {
        Policy { window: Some(Duration::from_secs(60)), ..Policy::default() }
    }

    async fn run(&self, payload: (String, u32)) -> anyhow::Result<()> {
        self.run_group(vec![payload]).await
    }

    async fn run_group(&self, payloads: Vec<(String, u32)>) -> anyhow::Result<()> {
        self.log.runs.lock().expect("log").push((Instant::now(), payloads.iter().map(|p| p.1).collect()));
        Ok(())
    }
}

fn settings() -> RunnerSettings {
    RunnerSettings { poll: Duration::from_millis(20), concurrency: 4, ..RunnerSettings::default() }
}

/// Waits until `done` holds, calling it every 20 ms, for at most `limit`.
async fn until<F: AsyncFnMut() -> bool>(limit: Duration, what: &str, mut done: F) {
    let waited = tokio::time::timeout(limit, async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

async fn a_job_runs_once_and_run_pending_leaves_the_queue_empty(f: Fixture) {
    let probe = Probe::default();
    let runner = Runner::new(f.jobs(), settings()).register(probe.clone());
    assert!(enqueue::<Probe>(&*f.jobs(), &7, None, Timestamp::now()).await.expect("enqueue"));

    assert_eq!(runner.run_pending().await.expect("run"), 1);
    assert_eq!(runner.run_pending().await.expect("run again"), 0);

    assert_eq!(probe.log.runs(), vec![vec![7]]);
    assert_eq!(f.store.pending_jobs().await.expect("pending"), 0);
}

async fn a_failing_job_is_retried_with_backoff_and_ends_failed_after_max_attempts(f: Fixture) {
    let probe = Probe { fail: true, ..Probe::default() };
    let runner = Runner::new(f.jobs(), settings()).register(probe.clone());
    enqueue::<Probe>(&*f.jobs(), &1, None, Timestamp::now()).await.expect("enqueue");

    assert_eq!(runner.run_pending().await.expect("first try"), 1);
    assert_eq!(f.store.pending_jobs().await.expect("pending"), 1, "due again later, not now");
    until(Duration::from_secs(10), "three tries", async || {
        runner.run_pending().await.expect("run");
        probe.log.runs().len() >= 3
    })
    .await;
    // Nothing is due any more: given up after the third try.
    assert_eq!(runner.run_pending().await.expect("run"), 0);

    assert_eq!(probe.log.runs().len(), 3, "MAX_ATTEMPTS tries");
    let times = probe.log.times();
    assert!(times[1] - times[0] >= Duration::from_millis(100), "the first retry waits the backoff");
    assert!(times[2] - times[1] >= Duration::from_millis(200), "the second waits twice as long");
    assert_eq!(f.store.pending_jobs().await.expect("pending"), 0, "a failed job is not pending");
}

async fn a_dedupe_key_enqueues_a_pending_job_once(f: Fixture) {
    let jobs = f.jobs();
    let now = Timestamp::now();
    assert!(enqueue::<Probe>(&*jobs, &1, Some("k"), now).await.expect("first"));
    assert!(!enqueue::<Probe>(&*jobs, &2, Some("k"), now).await.expect("repeat"), "a no-op");
    assert!(enqueue::<Probe>(&*jobs, &3, Some("other"), now).await.expect("another key"));
    assert!(enqueue::<Grouped>(&*jobs, &("g".into(), 4), Some("k"), now).await.expect("another job"));
    assert_eq!(f.store.pending_jobs().await.expect("pending"), 3);

    let probe = Probe::default();
    let runner = Runner::new(jobs.clone(), settings()).register(probe.clone()).register(Grouped::default());
    runner.run_pending().await.expect("run");
    let mut ran: Vec<u32> = probe.log.counts().into_keys().collect();
    ran.sort_unstable();
    assert_eq!(ran, vec![1, 3]);
    assert!(
        enqueue::<Probe>(&*jobs, &5, Some("k"), now).await.expect("after the first ran"),
        "done frees the key"
    );
    runner.run_pending().await.expect("run");
    assert_eq!(f.store.pending_jobs().await.expect("pending"), 0);
}

async fn grouped_jobs_due_within_the_window_run_together(f: Fixture) {
    let jobs = f.jobs();
    let now = Timestamp::now();
    for (group, n, due_in) in [("x", 1, 0), ("y", 2, 0), ("x", 3, 1_000), ("x", 4, 30_000), ("x", 5, 120_000)]
    {
        enqueue::<Grouped>(&*jobs, &(group.to_owned(), n), None, now.plus_millis(due_in))
            .await
            .expect("enqueue");
    }
    let grouped = Grouped::default();
    let runner = Runner::new(jobs, settings()).register(grouped.clone());

    assert_eq!(runner.run_pending().await.expect("run"), 2, "one run per group");

    let mut runs = grouped.log.runs();
    runs.sort();
    assert_eq!(runs, vec![vec![1, 3, 4], vec![2]], "x's jobs due within the window, in order");
    assert_eq!(f.store.pending_jobs().await.expect("pending"), 1, "x's job due past the window waits");
}

async fn a_runner_stopped_mid_job_leaves_the_job_to_another_runner_after_the_lease(f: Fixture) {
    let lease = Some(Duration::from_millis(300));
    let stuck = Probe { hang: true, lease, ..Probe::default() };
    let first = Runner::new(f.jobs(), settings()).register(stuck.clone());
    enqueue::<Probe>(&*f.jobs(), &9, None, Timestamp::now()).await.expect("enqueue");
    let started = stuck.started.notified();
    let task = tokio::spawn(first.run(CancellationToken::new()));
    tokio::time::timeout(Duration::from_secs(10), started).await.expect("the first runner starts the job");
    task.abort();
    assert!(task.await.expect_err("aborted").is_cancelled());

    let probe = Probe { lease, ..Probe::default() };
    let second = Runner::new(f.jobs(), settings()).register(probe.clone());
    until(Duration::from_secs(10), "the second runner to run the job", async || {
        second.run_pending().await.expect("run");
        !probe.log.runs().is_empty()
    })
    .await;

    assert_eq!(probe.log.runs(), vec![vec![9]]);
    assert_eq!(f.store.pending_jobs().await.expect("pending"), 0);
}

async fn a_late_end_from_a_lease_that_ran_out_and_was_claimed_again_is_refused(f: Fixture) {
    let jobs = f.jobs();
    let t = Timestamp::now();
    enqueue::<Probe>(&*jobs, &1, None, t).await.expect("enqueue");
    let claim = |holder, now: Timestamp| Claim {
        name: Probe::NAME,
        now,
        horizon: now,
        limit: 10,
        holder,
        lease_until: now.plus_millis(1_000),
    };
    let first = jobs.claim_jobs(claim("a", t)).await.expect("claim");
    assert_eq!(first.len(), 1);
    assert!(jobs.claim_jobs(claim("b", t.plus_millis(500))).await.expect("claim").is_empty(), "held");
    let second = jobs.claim_jobs(claim("b", t.plus_millis(2_000))).await.expect("claim after the lease");
    assert_eq!(second.len(), 1, "taken over");

    let late = &first[0].lease;
    assert_eq!(jobs.finish_jobs(late).await.expect("finish"), 0, "the late finish is refused");
    assert_eq!(jobs.renew_lease(late, t.plus_millis(9_000)).await.expect("renew"), 0);
    assert_eq!(jobs.retry_jobs(late, t, "late").await.expect("retry"), 0);
    assert_eq!(jobs.fail_jobs(late, "late").await.expect("fail"), 0);
    assert_eq!(jobs.release_jobs(late).await.expect("release"), 0);
    assert_eq!(jobs.finish_jobs(&second[0].lease).await.expect("finish"), 1, "the holder's finish counts");
    assert_eq!(jobs.pending_jobs().await.expect("pending"), 0);
}

async fn a_runner_stopped_by_its_token_releases_what_it_runs_without_counting_a_try(f: Fixture) {
    let stuck = Probe { hang: true, ..Probe::default() };
    let runner = Runner::new(f.jobs(), RunnerSettings { grace: Duration::from_millis(100), ..settings() })
        .register(stuck.clone());
    enqueue::<Probe>(&*f.jobs(), &4, None, Timestamp::now()).await.expect("enqueue");
    let started = stuck.started.notified();
    let stop = CancellationToken::new();
    let task = tokio::spawn(runner.run(stop.clone()));
    tokio::time::timeout(Duration::from_secs(10), started).await.expect("the job starts");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("the runner stops").expect("cleanly");

    let now = Timestamp::now();
    let claim = Claim { name: Probe::NAME, now, horizon: now, limit: 10, holder: "t", lease_until: now };
    let again = f.jobs().claim_jobs(claim).await.expect("claim");
    assert_eq!(again.len(), 1, "released: due at once");
    assert_eq!(again[0].jobs[0].attempts, 0, "the try was not counted");
}

async fn two_runners_run_each_of_a_hundred_jobs_exactly_once_and_never_two_at_a_time(f: Fixture) {
    let jobs = f.jobs();
    let now = Timestamp::now();
    for n in 0..100 {
        enqueue::<Probe>(&*jobs, &n, None, now).await.expect("enqueue");
    }
    let probe = Probe { work: Duration::from_millis(5), ..Probe::default() };
    let stop = CancellationToken::new();
    let runners: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(Runner::new(jobs.clone(), settings()).register(probe.clone()).run(stop.clone()))
        })
        .collect();

    until(Duration::from_secs(60), "every job to run", async || {
        jobs.pending_jobs().await.expect("pending") == 0
    })
    .await;
    stop.cancel();
    for runner in runners {
        runner.await.expect("a runner stops cleanly");
    }

    let counts = probe.log.counts();
    assert_eq!(counts.len(), 100, "every job ran");
    assert!(counts.values().all(|n| *n == 1), "none twice: {counts:?}");
    assert!(!probe.log.overlapped.load(Ordering::SeqCst), "no job ran in two places at a time");
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Fixture::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Fixture::postgres().await).await;
                }
            )*
        }
    };
}

suite!(
    a_job_runs_once_and_run_pending_leaves_the_queue_empty,
    a_failing_job_is_retried_with_backoff_and_ends_failed_after_max_attempts,
    a_dedupe_key_enqueues_a_pending_job_once,
    grouped_jobs_due_within_the_window_run_together,
    a_runner_stopped_mid_job_leaves_the_job_to_another_runner_after_the_lease,
    a_late_end_from_a_lease_that_ran_out_and_was_claimed_again_is_refused,
    a_runner_stopped_by_its_token_releases_what_it_runs_without_counting_a_try,
);

/// Two runners over one PostgreSQL store (SQLite is one process's).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runners_over_one_postgresql_store_run_each_of_a_hundred_jobs_exactly_once_and_never_two_at_a_time()
 {
    two_runners_run_each_of_a_hundred_jobs_exactly_once_and_never_two_at_a_time(Fixture::postgres().await)
        .await;
}
