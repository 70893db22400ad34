//! The queue on Redis Streams. Partition `p` is the stream `<prefix>:inbound.<p>`, read through
//! the consumer group `workers`. Rooms hash to partitions, and a partition is consumed by one
//! worker at a time: the holder of its lease (`<prefix>:lease.<p>`, a key whose value is the
//! worker's id, with an expiry that the holder renews on every read). The live workers are the
//! sorted set `<prefix>:workers`, each scored with the server time its membership runs out (one
//! lease after its last beat), so every worker sees the same list and computes the same shares.
//! A worker that hands a partition back deletes its lease after its last batch is acknowledged;
//! when a worker dies its lease runs out. Either way the next holder claims what is still pending
//! with XAUTOCLAIM (entries of a read that was cut short, or of a dead worker) and goes on in
//! order. An entry is
//! acknowledged (XACK, then XDEL) only after its batch is committed; a retried entry is
//! deduplicated by its nonce. The queue's depth is the streams' length (XLEN): acknowledged
//! entries are deleted.

use super::{RedisServer, config, unavailable};
use async_trait::async_trait;
use parlor_domain::partition::partition_of;
use parlor_domain::ports::{Consumer, Delivery, Membership, Queue};
use parlor_domain::queue::Inbound;
use parlor_domain::{Error, Result};
use redis::Value;
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use std::time::Duration;

const GROUP: &str = "workers";
/// How long a read blocks waiting for entries.
const BLOCK: Duration = Duration::from_millis(500);

/// Renews the lease if we still hold it.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Takes the lease if it is free (or already ours): 1 when we hold it now.
const TAKE: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
    if v then return 0 end \
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";

/// Deletes the lease if we hold it.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";

/// Renews a worker's membership until one lease from now (server time, so clocks of the workers
/// need not agree), forgets the members whose time ran out, and answers who is left.
const BEAT: &str = "local t = redis.call('TIME') \
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) \
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) \
    redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
    return redis.call('ZRANGE', KEYS[1], 0, -1)";

/// The Redis Streams queue.
#[derive(Clone, Debug)]
pub struct RedisQueue {
    server: RedisServer,
    partitions: usize,
    /// How long a partition's lease lasts without renewal: how soon a dead worker's partitions
    /// are taken over.
    lease: Duration,
}

impl RedisQueue {
    /// A queue of `partitions` streams on this server.
    pub fn new(server: RedisServer, partitions: usize, lease: Duration) -> Self {
        Self { server, partitions: partitions.max(1), lease }
    }

    fn stream(&self, p: usize) -> String {
        self.server.key(&format!("inbound.{p}"))
    }

    fn lease_ms(&self) -> u64 {
        self.lease.as_millis().max(1) as u64
    }
}

#[async_trait]
impl Queue for RedisQueue {
    async fn push(&self, item: Inbound) -> Result<()> {
        let body = serde_json::to_vec(&item).map_err(Error::internal)?;
        let mut conn = self.server.conn();
        redis::cmd("XADD")
            .arg(self.stream(partition_of(item.command.room_id(), self.partitions())))
            .arg("*")
            .arg("item")
            .arg(body)
            .query_async::<String>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn partitions(&self) -> usize {
        self.partitions
    }

    async fn join(&self, worker: &str) -> Result<Box<dyn Membership>> {
        Ok(Box::new(RedisMembership {
            conn: self.server.conn(),
            key: self.server.key("workers"),
            me: worker.to_owned(),
            lease_ms: self.lease_ms(),
        }))
    }

    async fn try_consumer(&self, partition: usize, worker: &str) -> Result<Option<Box<dyn Consumer>>> {
        if partition >= self.partitions {
            return Err(Error::internal(format!("there is no partition {partition}")));
        }
        let lease_key = self.server.key(&format!("lease.{partition}"));
        let mut conn = self.server.conn();
        let taken: i64 = redis::Script::new(TAKE)
            .key(&lease_key)
            .arg(worker)
            .arg(self.lease_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if taken != 1 {
            return Ok(None);
        }
        // Blocking reads get a connection of their own, with a response timeout past the block.
        let dedicated =
            self.server.dedicated(config().set_response_timeout(Some(BLOCK + Duration::from_secs(5)))).await;
        let conn = match dedicated {
            Ok(conn) => conn,
            Err(e) => {
                let _ = release(&mut self.server.conn(), &lease_key, worker).await;
                return Err(e);
            }
        };
        tracing::info!(stream = %self.stream(partition), worker, "partition lease taken");
        Ok(Some(Box::new(RedisConsumer {
            conn,
            stream: self.stream(partition),
            lease_key,
            me: worker.to_owned(),
            lease: self.lease,
            // What an earlier holder read and did not acknowledge is pending: take it over first.
            claiming: true,
            reading: false,
            group_ready: false,
        })))
    }

    async fn ping(&self) -> Result<()> {
        self.server.ping().await
    }

    /// XLEN of each partition's stream, in one round trip. An entry is deleted when it is
    /// acknowledged, so this counts every command not yet committed: waiting to be read, and
    /// read by a worker (or a dead worker, until it is claimed) but not yet applied.
    async fn depths(&self) -> Result<Option<Vec<u64>>> {
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            pipe.cmd("XLEN").arg(self.stream(p));
        }
        let mut conn = self.server.conn();
        let lengths: Vec<u64> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        Ok(Some(lengths))
    }
}

/// A worker's entry in `<prefix>:workers`.
struct RedisMembership {
    conn: ConnectionManager,
    key: String,
    me: String,
    lease_ms: u64,
}

#[async_trait]
impl Membership for RedisMembership {
    async fn beat(&mut self) -> Result<Vec<String>> {
        redis::Script::new(BEAT)
            .key(&self.key)
            .arg(&self.me)
            .arg(self.lease_ms)
            .invoke_async(&mut self.conn)
            .await
            .map_err(unavailable)
    }

    async fn leave(mut self: Box<Self>) {
        let left = redis::cmd("ZREM").arg(&self.key).arg(&self.me).query_async::<i64>(&mut self.conn).await;
        if let Err(e) = left {
            tracing::warn!(error = %e, "redis queue: could not leave; the membership runs out instead");
        }
    }
}

async fn release(conn: &mut ConnectionManager, lease_key: &str, me: &str) -> redis::RedisResult<i64> {
    redis::Script::new(RELEASE).key(lease_key).arg(me).invoke_async(conn).await
}

/// The consumer of one partition, while it holds the partition's lease.
struct RedisConsumer {
    conn: ConnectionManager,
    stream: String,
    lease_key: String,
    /// The worker's id: its name in the group, and the lease's value.
    me: String,
    lease: Duration,
    /// Whether entries of an earlier holder (or of a read of ours that was cancelled after the
    /// server answered) may still be pending.
    claiming: bool,
    /// Set while a read is in flight; still set at the next call if that read was cancelled.
    reading: bool,
    group_ready: bool,
}

fn item_of(entry: &StreamId) -> Option<Inbound> {
    match entry.map.get("item") {
        Some(Value::BulkString(b)) => serde_json::from_slice(b).ok(),
        _ => None,
    }
}

impl RedisConsumer {
    /// Renews the lease; false if it ran out (and another worker may hold it now).
    async fn renew(&mut self) -> redis::RedisResult<bool> {
        let renewed: i64 = redis::Script::new(RENEW)
            .key(&self.lease_key)
            .arg(&self.me)
            .arg(self.lease.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(renewed == 1)
    }

    async fn ensure_group(&mut self) -> redis::RedisResult<()> {
        if self.group_ready {
            return Ok(());
        }
        let created: redis::RedisResult<String> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn)
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        self.group_ready = true;
        Ok(())
    }

    async fn read(&mut self, max: usize) -> redis::RedisResult<Vec<Delivery>> {
        self.ensure_group().await?;
        let entries = if self.claiming {
            // Everything pending belongs to an earlier holder of the lease: take it over, in order.
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&self.stream)
                .arg(GROUP)
                .arg(&self.me)
                .arg(0)
                .arg("0-0")
                .arg("COUNT")
                .arg(max)
                .query_async(&mut self.conn)
                .await?;
            if reply.claimed.is_empty() {
                self.claiming = false;
            }
            reply.claimed
        } else {
            let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&self.me)
                .arg("COUNT")
                .arg(max)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(">")
                .query_async(&mut self.conn)
                .await?;
            reply.map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect()).unwrap_or_default()
        };
        let mut out = Vec::with_capacity(entries.len());
        let mut undecodable = Vec::new();
        for entry in entries {
            match item_of(&entry) {
                Some(item) => out.push(Delivery { tag: entry.id, item }),
                None => undecodable.push(entry.id),
            }
        }
        if !undecodable.is_empty() {
            tracing::warn!(count = undecodable.len(), "dropping undecodable queue entries");
            self.acknowledge(&undecodable).await?;
        }
        Ok(out)
    }

    async fn acknowledge(&mut self, ids: &[String]) -> redis::RedisResult<()> {
        redis::cmd("XACK").arg(&self.stream).arg(GROUP).arg(ids).query_async::<i64>(&mut self.conn).await?;
        redis::cmd("XDEL").arg(&self.stream).arg(ids).query_async::<i64>(&mut self.conn).await?;
        Ok(())
    }
}

#[async_trait]
impl Consumer for RedisConsumer {
    async fn next_batch(&mut self, max: usize) -> Option<Vec<Delivery>> {
        if self.reading {
            // The last read was cancelled; what it took is pending under our name.
            self.claiming = true;
        }
        match self.renew().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(stream = %self.stream, worker = %self.me, "partition lease lost");
                return None;
            }
            Err(e) => {
                // Keep trying: if the lease runs out meanwhile, the next renewal says so.
                tracing::warn!(error = %e, "redis queue: cannot renew the lease; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Some(Vec::new());
            }
        }
        self.reading = true;
        let read = self.read(max).await;
        self.reading = false;
        match read {
            Ok(batch) => Some(batch),
            Err(e) => {
                if e.code() == Some("NOGROUP") {
                    // Redis lost the stream (a restart without persistence): make it again.
                    self.group_ready = false;
                } else {
                    tracing::warn!(error = %e, "redis queue: read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Some(Vec::new())
            }
        }
    }

    async fn ack(&mut self, tags: &[String]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        self.acknowledge(tags).await.map_err(unavailable)
    }

    async fn release(mut self: Box<Self>) {
        match release(&mut self.conn, &self.lease_key, &self.me).await {
            Ok(_) => tracing::info!(stream = %self.stream, worker = %self.me, "partition lease released"),
            Err(e) => {
                tracing::warn!(error = %e, "redis queue: could not release a lease; it runs out instead")
            }
        }
    }
}
