//! Presence in Redis. Each user has a sorted set `<prefix>:presence.<user>` whose members are the
//! gateways holding a connection of theirs, scored by when that claim expires. A gateway renews
//! its claims while it lives; when it dies they run out and its users count as offline within
//! the presence timeout, without anyone cleaning up.

use super::{RedisServer, unavailable};
use async_trait::async_trait;
use parlor_domain::ports::Presence;
use parlor_domain::{Result, Timestamp, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Presence in Redis, as one gateway sees and claims it.
#[derive(Clone)]
pub struct RedisPresence {
    server: RedisServer,
    /// This gateway's name in the sets.
    gateway: String,
    /// How long a claim lasts without renewal.
    ttl: Duration,
    /// Open connections per user on this gateway.
    local: Arc<Mutex<HashMap<UserId, usize>>>,
    _renewer: Arc<AbortOnDrop>,
}

/// Stops the renewing task when the last handle on the presence goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RedisPresence {
    /// Presence claims of gateway `gateway`, each lasting `ttl` and renewed every third of it.
    pub fn new(server: RedisServer, gateway: String, ttl: Duration) -> Self {
        let local: Arc<Mutex<HashMap<UserId, usize>>> = Arc::default();
        let renewer = {
            let (server, gateway, local) = (server.clone(), gateway.clone(), local.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(ttl / 3);
                loop {
                    tick.tick().await;
                    let users: Vec<UserId> =
                        local.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default();
                    for user in users {
                        if let Err(e) = claim(&server, &gateway, &user, ttl).await {
                            tracing::warn!(error = %e, "could not renew presence");
                            break;
                        }
                    }
                }
            })
        };
        Self { server, gateway, ttl, local, _renewer: Arc::new(AbortOnDrop(renewer)) }
    }

    fn key(&self, user: &UserId) -> String {
        self.server.key(&format!("presence.{user}"))
    }

    async fn live_claims(&self, user: &UserId) -> Result<usize> {
        let mut conn = self.server.conn();
        redis::cmd("ZCOUNT")
            .arg(self.key(user))
            .arg(Timestamp::now().millis())
            .arg("+inf")
            .query_async::<usize>(&mut conn)
            .await
            .map_err(unavailable)
    }
}

async fn claim(server: &RedisServer, gateway: &str, user: &UserId, ttl: Duration) -> Result<()> {
    let key = server.key(&format!("presence.{user}"));
    let until = Timestamp::now().millis() + ttl.as_millis() as i64;
    let mut conn = server.conn();
    redis::pipe()
        .cmd("ZADD")
        .arg(&key)
        .arg(until)
        .arg(gateway)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(&key)
        .arg("-inf")
        .arg(Timestamp::now().millis())
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(ttl.as_millis() as u64 * 2)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(unavailable)
}

#[async_trait]
impl Presence for RedisPresence {
    async fn connected(&self, user_id: &UserId) -> Result<bool> {
        let first_here = {
            let mut local = self.local.lock().map_err(|_| parlor_domain::Error::internal("presence lock"))?;
            let n = local.entry(user_id.clone()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if !first_here {
            return Ok(false);
        }
        let before = self.live_claims(user_id).await?;
        claim(&self.server, &self.gateway, user_id, self.ttl).await?;
        Ok(before == 0)
    }

    async fn disconnected(&self, user_id: &UserId) -> Result<bool> {
        let last_here = {
            let mut local = self.local.lock().map_err(|_| parlor_domain::Error::internal("presence lock"))?;
            match local.get_mut(user_id) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    local.remove(user_id);
                    true
                }
                None => false,
            }
        };
        if !last_here {
            return Ok(false);
        }
        let mut conn = self.server.conn();
        redis::cmd("ZREM")
            .arg(self.key(user_id))
            .arg(&self.gateway)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(self.live_claims(user_id).await? == 0)
    }

    async fn online(&self, user_ids: &[UserId]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(user_ids.len());
        for user in user_ids {
            out.push(self.live_claims(user).await? > 0);
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<()> {
        self.server.ping().await
    }
}
