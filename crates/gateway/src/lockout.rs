//! Brute-force protection per account: failed logins (or recoveries) for one username fill a
//! leaky bucket that drains over a window; a full bucket refuses further attempts for that name
//! with `rate_limited` until it has drained enough for one more. The per-address limits in
//! `limits.rs` stop one client; this stops many clients guessing one account.
//!
//! Every attempt is counted before the password is checked and refunded if it turns out not to
//! be a failure, so a burst of parallel guesses cannot slip past the count. Refused attempts add
//! nothing, so the wait is bounded: never longer than `window / max_failures` for the next try.
//! Unknown names are counted exactly like known ones, so the answers say nothing of whether an
//! account exists.

use parking_lot::Mutex;
use parlor_domain::Error;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most names tracked at once; past it, drained names are forgotten first, then the whole table
/// (an attacker spraying random names must not grow memory without bound).
const MAX_TRACKED: usize = 100_000;
/// Longest name kept as a key: valid usernames are at most 32 characters, so longer ones collide
/// only with other invalid names.
const MAX_KEY_CHARS: usize = 64;

/// Failed attempts per account, decaying over time.
pub struct Lockout {
    /// Failures an account may collect before attempts are refused.
    max_failures: f64,
    /// Failures drained per second.
    drain_per_sec: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn drained(self, now: Instant, per_sec: f64) -> f64 {
        (self.level - now.saturating_duration_since(self.at).as_secs_f64() * per_sec).max(0.0)
    }
}

/// An attempt that was let through; say how it ended with `succeeded` or `failed`, or drop it
/// (an answer that was neither, such as a validation error) to refund it.
#[must_use]
pub struct Attempt<'a> {
    lockout: &'a Lockout,
    key: String,
    settled: bool,
}

impl Attempt<'_> {
    /// The credentials were right: the account's failures are forgotten.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.lockout.buckets.lock().remove(&self.key);
    }

    /// The credentials were wrong: the attempt stays counted.
    pub fn failed(mut self) {
        self.settled = true;
    }

    /// Settles the attempt by the outcome of the call it guarded.
    pub fn settle<T>(self, outcome: &Result<T, Error>) {
        match outcome {
            Ok(_) => self.succeeded(),
            Err(Error::Unauthorized(_)) => self.failed(),
            // Validation errors, a disabled account (the right credentials) or an outage are
            // not guesses: refunded on drop.
            Err(_) => {}
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut buckets = self.lockout.buckets.lock();
        if let Some(b) = buckets.get_mut(&self.key) {
            b.level = (b.level - 1.0).max(0.0);
        }
    }
}

impl Lockout {
    /// Up to `max_failures` failures per account; they drain away over `window` (so after a
    /// lock one more attempt is allowed every `window / max_failures`).
    pub fn new(max_failures: u32, window: Duration) -> Self {
        let max_failures = f64::from(max_failures.max(1));
        let window = window.as_secs_f64().max(0.001);
        Self { max_failures, drain_per_sec: max_failures / window, buckets: Mutex::new(HashMap::new()) }
    }

    /// The key of a username: case-insensitive as usernames are, and of bounded length.
    fn key(username: &str) -> String {
        username.trim().chars().take(MAX_KEY_CHARS).flat_map(char::to_lowercase).collect()
    }

    /// Counts an attempt for `username`, or refuses it with `rate_limited` and the time until
    /// one more attempt is allowed.
    pub fn attempt(&self, username: &str) -> Result<Attempt<'_>, Error> {
        self.attempt_at(username, Instant::now())
    }

    fn attempt_at(&self, username: &str, now: Instant) -> Result<Attempt<'_>, Error> {
        let key = Self::key(username);
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            let per_sec = self.drain_per_sec;
            buckets.retain(|_, b| b.drained(now, per_sec) > 0.0);
            if buckets.len() >= MAX_TRACKED {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket { level: 0.0, at: now });
        let level = bucket.drained(now, self.drain_per_sec);
        if level + 1.0 > self.max_failures {
            let wait = (level + 1.0 - self.max_failures) / self.drain_per_sec;
            metrics::counter!("parlor_rate_limited_total", "kind" => "account").increment(1);
            return Err(Error::RateLimited { retry_after_ms: ((wait * 1000.0).ceil() as u64).max(1) });
        }
        *bucket = Bucket { level: level + 1.0, at: now };
        Ok(Attempt { lockout: self, key, settled: false })
    }

    /// Forgets accounts whose failures have drained away.
    pub fn sweep(&self) {
        let now = Instant::now();
        let per_sec = self.drain_per_sec;
        self.buckets.lock().retain(|_, b| b.drained(now, per_sec) > 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_ms(e: Error) -> u64 {
        match e {
            Error::RateLimited { retry_after_ms } => retry_after_ms,
            other => panic!("expected rate_limited, got {other:?}"),
        }
    }

    #[test]
    fn failures_past_the_limit_are_refused_for_a_bounded_time_whatever_the_case_of_the_name() {
        let lock = Lockout::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for name in ["alice", "ALICE", "Alice"] {
            lock.attempt_at(name, t0).expect("let through").failed();
        }
        let wait = retry_ms(lock.attempt_at("alice", t0).err().expect("refused"));
        assert!((19_000..=20_001).contains(&wait), "one more try after window/3: {wait} ms");
        // Refused attempts add nothing: the wait does not grow.
        let again = retry_ms(lock.attempt_at("alice", t0).err().expect("refused"));
        assert!(again <= wait);
        assert!(lock.attempt_at("bob", t0).is_ok(), "other accounts are not affected");
        assert!(
            lock.attempt_at("alice", t0 + Duration::from_millis(wait)).is_ok(),
            "let through after the wait"
        );
    }

    #[test]
    fn a_success_forgets_the_failures_and_an_unsettled_attempt_is_refunded() {
        let lock = Lockout::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        lock.attempt_at("carol", t0).expect("first").failed();
        lock.attempt_at("carol", t0).expect("second").succeeded();
        lock.attempt_at("carol", t0).expect("counts start again").failed();
        drop(lock.attempt_at("carol", t0).expect("a validation error"));
        lock.attempt_at("carol", t0).expect("the refund left room").failed();
        assert!(lock.attempt_at("carol", t0).is_err());
    }

    #[test]
    fn attempts_in_flight_count_so_a_parallel_burst_cannot_pass_the_limit() {
        let lock = Lockout::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let a = lock.attempt_at("dave", t0).expect("first");
        let b = lock.attempt_at("dave", t0).expect("second");
        assert!(lock.attempt_at("dave", t0).is_err(), "a third in flight is refused");
        a.failed();
        b.failed();
    }

    #[test]
    fn drained_names_are_swept_and_long_names_share_a_bounded_key() {
        let lock = Lockout::new(5, Duration::from_millis(1));
        lock.attempt("erin").expect("through").failed();
        std::thread::sleep(Duration::from_millis(5));
        lock.sweep();
        assert!(lock.buckets.lock().is_empty());
        assert_eq!(Lockout::key(&"x".repeat(10_000)).len(), MAX_KEY_CHARS);
    }

    #[test]
    fn settling_by_outcome_counts_only_wrong_credentials() {
        let lock = Lockout::new(1, Duration::from_secs(60));
        lock.attempt("frank").expect("through").settle::<()>(&Err(Error::invalid("bad json")));
        lock.attempt("frank").expect("refunded").settle::<()>(&Err(Error::Unauthorized("wrong".into())));
        assert!(lock.attempt("frank").is_err());
    }
}
