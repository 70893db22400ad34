//! The bus on Redis pub/sub: one channel per topic (`<prefix>:room.<id>`, `user.<id>`,
//! `gateway.<id>`, `presence`), so a gateway receives only the rooms its users are in. Envelopes
//! travel as JSON. A subscriber's pushed messages land in a bounded channel; if it is full the
//! message is dropped and counted (the clients concerned see a seq gap and `sync`).

use super::{RedisServer, config, unavailable};
use async_trait::async_trait;
use parlor_domain::bus::{Envelope, Topic};
use parlor_domain::ports::{Bus, Subscriptions};
use parlor_domain::{Error, Result};
use redis::aio::ConnectionManager;
use redis::{PushKind, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// Capacity of a subscriber's channel.
const SUBSCRIBER_CAPACITY: usize = 65_536;

/// The Redis bus.
#[derive(Clone, Debug)]
pub struct RedisBus {
    server: RedisServer,
    /// Messages dropped because a subscriber's channel was full.
    dropped: Arc<AtomicU64>,
}

impl RedisBus {
    /// A bus on this server.
    pub fn new(server: RedisServer) -> Self {
        Self { server, dropped: Arc::new(AtomicU64::new(0)) }
    }

    /// How many pushed messages were dropped for full subscriber channels.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn payload(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, envelope: Arc<Envelope>) -> Result<()> {
        let body = serde_json::to_vec(envelope.as_ref()).map_err(Error::internal)?;
        let channel = self.server.key(&envelope.topic.channel());
        let mut conn = self.server.conn();
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(body)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn subscriber(&self) -> Result<(Arc<dyn Subscriptions>, mpsc::Receiver<Arc<Envelope>>)> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_CAPACITY);
        let dropped = self.dropped.clone();
        let sender = move |info: redis::PushInfo| -> std::result::Result<(), redis::aio::SendError> {
            if info.kind != PushKind::Message {
                return Ok(());
            }
            let Some(body) = info.data.get(1).and_then(payload) else { return Ok(()) };
            match serde_json::from_slice::<Envelope>(body) {
                Ok(envelope) => {
                    if tx.try_send(Arc::new(envelope)).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "undecodable bus message"),
            }
            Ok(())
        };
        let config = config().set_push_sender(sender).set_automatic_resubscription();
        let conn = self.server.dedicated(config).await?;
        let subs = Arc::new(RedisSubscriptions { conn: conn.clone(), server: self.server.clone() });
        keep_alive(Arc::downgrade(&subs), conn);
        Ok((subs, rx))
    }

    async fn ping(&self) -> Result<()> {
        self.server.ping().await
    }
}

/// A connection that only listens sends no command, so it would not notice that Redis went away
/// (and come back empty): a PING every second makes the manager see it, reconnect, and
/// subscribe its channels again. Ends when the subscriber is dropped.
fn keep_alive(subs: std::sync::Weak<RedisSubscriptions>, mut conn: ConnectionManager) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            if subs.strong_count() == 0 {
                return;
            }
            if let Err(e) = redis::cmd("PING").query_async::<redis::Value>(&mut conn).await {
                tracing::debug!(error = %e, "bus subscriber ping failed; reconnecting");
            }
        }
    });
}

/// One subscriber's channels.
struct RedisSubscriptions {
    conn: ConnectionManager,
    server: RedisServer,
}

#[async_trait]
impl Subscriptions for RedisSubscriptions {
    async fn subscribe(&self, topic: Topic) -> Result<()> {
        let mut conn = self.conn.clone();
        conn.subscribe(self.server.key(&topic.channel())).await.map_err(unavailable)
    }

    async fn unsubscribe(&self, topic: Topic) -> Result<()> {
        let mut conn = self.conn.clone();
        conn.unsubscribe(self.server.key(&topic.channel())).await.map_err(unavailable)
    }
}
