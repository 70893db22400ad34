//! The queue on Redis Streams. Partition `p` is the stream `<prefix>:inbound.<p>`, read through
//! the consumer group `workers`. Rooms hash to partitions, and a partition is consumed by one
//! worker at a time: the holder of its lease (`<prefix>:lease.<p>`, a key with an expiry that the
//! holder renews on every read). When a worker dies its lease runs out, another worker takes it,
//! claims the dead worker's pending entries with XAUTOCLAIM, and goes on in order. An entry is
//! acknowledged (XACK, then XDEL) only after its batch is committed; a retried entry is
//! deduplicated by its nonce. The queue's depth is the streams' length (XLEN): acknowledged
//! entries are deleted.

use super::{RedisServer, config, unavailable};
use async_trait::async_trait;
use parlor_domain::ports::{Consumer, Delivery, Queue};
use parlor_domain::partition::partition_of;
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

    async fn consumer(&self, partition: usize) -> Result<Box<dyn Consumer>> {
        // Blocking reads get a connection of their own, with a response timeout past the block.
        let conn = self
            .server
            .dedicated(config().set_response_timeout(Some(BLOCK + Duration::from_secs(5))))
            .await?;
        Ok(Box::new(RedisConsumer {
            conn,
            stream: self.stream(partition),
            lease_key: self.server.key(&format!("lease.{partition}")),
            me: format!("worker-{}", uuid::Uuid::now_v7()),
            lease: self.lease,
            held: false,
            claiming: false,
            reading: false,
            group_ready: false,
        }))
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

/// The consumer of one partition.
struct RedisConsumer {
    conn: ConnectionManager,
    stream: String,
    lease_key: String,
    /// This consumer's name in the group, and the lease's value while it holds it.
    me: String,
    lease: Duration,
    /// Whether this consumer holds the partition's lease.
    held: bool,
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
    /// Takes or renews the lease; false if another worker holds it.
    async fn lease(&mut self) -> redis::RedisResult<bool> {
        let ms = self.lease.as_millis() as u64;
        if self.held {
            let renewed: i64 = redis::Script::new(RENEW)
                .key(&self.lease_key)
                .arg(&self.me)
                .arg(ms)
                .invoke_async(&mut self.conn)
                .await?;
            self.held = renewed == 1;
        }
        if !self.held {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&self.lease_key)
                .arg(&self.me)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async(&mut self.conn)
                .await?;
            if taken.is_some() {
                self.held = true;
                self.claiming = true;
                tracing::info!(stream = %self.stream, consumer = %self.me, "partition lease taken");
            }
        }
        Ok(self.held)
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
        match self.lease().await {
            Ok(true) => {}
            Ok(false) => {
                tokio::time::sleep(self.lease / 4).await;
                return Some(Vec::new());
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis queue: cannot take the lease; retrying");
                self.held = false;
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
}
