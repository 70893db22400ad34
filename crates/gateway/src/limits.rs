//! Rate limits: a token bucket per user for sends, one per author for what trusted integrations
//! post on an author's behalf, and one per client address for the calls that create sessions
//! (register, login, refresh, recover); and failed logins and recoveries per account
//! (`lockout.rs`).

use crate::lockout::Lockout;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parlor_domain::{Error, UserId};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// The gateway's rate limiters.
pub struct Limits {
    sends: DefaultKeyedRateLimiter<UserId>,
    /// Posts of trusted integrations, keyed by the author they post as.
    service_sends: DefaultKeyedRateLimiter<UserId>,
    auth: DefaultKeyedRateLimiter<IpAddr>,
    /// Failed logins per account.
    pub logins: Lockout,
    /// Failed recoveries per account.
    pub recoveries: Lockout,
}

fn quota(rate: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), Error> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Error::RateLimited { retry_after_ms: (wait.as_millis() as u64).max(1) }
    })
}

impl Limits {
    /// Limits of `send_rate` messages a second per user (bursts of `send_burst`), `service_rate`
    /// integration posts a second per author (bursts of `service_burst`), `auth_rate` session
    /// calls a second per address (bursts of `auth_burst`), and `failures` failed logins or
    /// recoveries per account draining over `window`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        send_rate: u32,
        send_burst: u32,
        service_rate: u32,
        service_burst: u32,
        auth_rate: u32,
        auth_burst: u32,
        failures: u32,
        window: Duration,
    ) -> Self {
        Self {
            sends: RateLimiter::keyed(quota(send_rate, send_burst)),
            service_sends: RateLimiter::keyed(quota(service_rate, service_burst)),
            auth: RateLimiter::keyed(quota(auth_rate, auth_burst)),
            logins: Lockout::new(failures, window),
            recoveries: Lockout::new(failures, window),
        }
    }

    /// Takes one send from the user's bucket.
    pub fn send(&self, user: &UserId) -> Result<(), Error> {
        check(&self.sends, user)
            .inspect_err(|_| metrics::counter!("parlor_rate_limited_total", "kind" => "send").increment(1))
    }

    /// Takes one post from the bucket of what integrations write as `author`.
    pub fn service_send(&self, author: &UserId) -> Result<(), Error> {
        check(&self.service_sends, author).inspect_err(|_| {
            metrics::counter!("parlor_rate_limited_total", "kind" => "service_send").increment(1)
        })
    }

    /// Takes one session call from the address's bucket.
    pub fn auth(&self, ip: IpAddr) -> Result<(), Error> {
        check(&self.auth, &ip)
            .inspect_err(|_| metrics::counter!("parlor_rate_limited_total", "kind" => "auth").increment(1))
    }

    /// Forgets buckets that are full again, so idle keys take no memory.
    pub fn sweep(&self) {
        self.sends.retain_recent();
        self.service_sends.retain_recent();
        self.auth.retain_recent();
        self.logins.sweep();
        self.recoveries.sweep();
    }
}
