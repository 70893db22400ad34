//! The Redis adapters: the inbound `Queue` on Streams with consumer groups, the event `Bus` on
//! pub/sub with a channel per room, and `Presence` with expiring entries. Every key and channel
//! starts with a prefix, so several deployments (or test runs) share one server.
//!
//! Connections are `ConnectionManager`s: they reconnect with backoff on their own when Redis
//! restarts; the subscriber's manager also re-subscribes its channels.

mod bus;
mod presence;
mod queue;

pub use bus::RedisBus;
pub use presence::RedisPresence;
pub use queue::RedisQueue;

use parlor_domain::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion};
use std::time::Duration;

/// A Redis server and the prefix of parlor's keys on it.
#[derive(Clone)]
pub struct RedisServer {
    client: redis::Client,
    /// Shared connection for short commands (XADD, PUBLISH, presence).
    conn: ConnectionManager,
    /// Prefix of every key and channel, without the trailing colon.
    prefix: String,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
}

/// A Redis error as the domain sees it: the server is unavailable.
pub(crate) fn unavailable(e: redis::RedisError) -> Error {
    tracing::warn!(error = %e, "redis");
    Error::Unavailable("Redis is unavailable".into())
}

impl RedisServer {
    /// Connects (RESP3, for pushed pub/sub messages) to the server at `url`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let info = url.into_connection_info().map_err(|e| Error::internal(format!("bad Redis URL: {e}")))?;
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|e| Error::internal(format!("bad Redis URL: {e}")))?;
        let conn = client.get_connection_manager_with_config(config()).await.map_err(unavailable)?;
        Ok(Self { client, conn, prefix: prefix.trim_end_matches(':').to_owned() })
    }

    /// The prefix of parlor's keys and channels.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A key or channel name under the prefix.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// A connection of its own, for blocking reads; `response_timeout` must outlast the block.
    pub(crate) async fn dedicated(&self, config: ConnectionManagerConfig) -> Result<ConnectionManager> {
        self.client.get_connection_manager_with_config(config).await.map_err(unavailable)
    }

    /// The shared connection.
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// `Ok` when the server answers a PING.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(unavailable)
    }
}
