//! The queue on RabbitMQ (the first seed's broker). Partition `p` is the durable queue
//! `<prefix>.inbound.<p>` declared with `x-single-active-consumer`, so one worker at a time
//! consumes a partition and one room's commands stay in order; when that worker dies, the broker
//! makes another consumer active and redelivers what was not acknowledged. Messages are
//! persistent and published with confirms: `push` returns only once the broker has the message.
//! Deliveries are acknowledged manually, after the batch's commit. The queue's depth is the
//! message count of a passive declare: messages ready, not those a worker holds unacknowledged.
//!
//! Workers share the partitions: a worker consumes only the partitions of its share, and the
//! single active consumer still guards each one while shares move (a worker that subscribes to a
//! partition before its last holder let go waits as standby). The membership goes through the
//! same broker: every worker publishes a beat (`+<id>`, or `-<id>` when it leaves) to the fanout
//! exchange `<prefix>.workers` each time it looks, and reads everyone's beats from an exclusive
//! queue of its own; a worker not heard of for the membership TTL counts as gone. Handing a
//! partition back closes the consumer's connection once its batch is acknowledged: the broker
//! returns what was prefetched and not acknowledged to the head of the queue, for the next holder.
//!
//! Connections are re-made on failure: a failed publish is retried once on a new connection,
//! then answered with `Unavailable`; a consumer whose connection broke reconnects on its next
//! read, and the broker redelivers what it had not acknowledged.

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use parlor_domain::partition::partition_of;
use parlor_domain::ports::{Consumer, Delivery, Membership, Queue};
use parlor_domain::queue::Inbound;
use parlor_domain::{Error, Result};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a read waits for a first delivery before returning an empty batch.
const WAIT: Duration = Duration::from_millis(500);

/// The RabbitMQ queue.
pub struct RabbitQueue {
    url: String,
    prefix: String,
    partitions: usize,
    /// The publishing channel (confirms on), made again after a failure.
    publisher: Mutex<Option<(Connection, Channel)>>,
    /// A channel on the publisher's connection for passive declares (queue depth): a failed
    /// declare closes its channel, so it is kept apart from the publishing one.
    inspector: Mutex<Option<Channel>>,
    /// How long a worker counts as alive after its last beat.
    member_ttl: Duration,
}

/// How long a worker counts as alive after its last beat, unless `with_member_ttl` says.
pub const MEMBER_TTL: Duration = Duration::from_secs(5);

fn unavailable(e: lapin::Error) -> Error {
    tracing::warn!(error = %e, "rabbitmq");
    Error::Unavailable("RabbitMQ is unavailable".into())
}

async fn open(url: &str) -> lapin::Result<(Connection, Channel)> {
    let conn = tokio::time::timeout(
        Duration::from_secs(3),
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .map_err(|_| {
        lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed))
    })??;
    let channel = conn.create_channel().await?;
    Ok((conn, channel))
}

async fn declare(channel: &Channel, name: &str) -> lapin::Result<()> {
    let mut args = FieldTable::default();
    args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    channel
        .queue_declare(name.into(), QueueDeclareOptions { durable: true, ..Default::default() }, args)
        .await?;
    Ok(())
}

impl RabbitQueue {
    /// Connects to the broker at `url` and declares the partitions' queues.
    pub async fn connect(url: &str, prefix: &str, partitions: usize) -> Result<Self> {
        let queue = Self {
            url: url.to_owned(),
            prefix: prefix.trim_end_matches('.').to_owned(),
            partitions: partitions.max(1),
            publisher: Mutex::new(None),
            inspector: Mutex::new(None),
            member_ttl: MEMBER_TTL,
        };
        let (conn, channel) = open(url).await.map_err(unavailable)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(unavailable)?;
        for p in 0..queue.partitions {
            declare(&channel, &queue.name(p)).await.map_err(unavailable)?;
        }
        *queue.publisher.lock().await = Some((conn, channel));
        Ok(queue)
    }

    /// Sets how long a worker counts as alive after its last beat: how soon a dead worker's
    /// partitions go to the others. Well above the workers' beat interval (250 ms).
    pub fn with_member_ttl(mut self, ttl: Duration) -> Self {
        self.member_ttl = ttl;
        self
    }

    /// The name of a partition's queue.
    pub fn name(&self, p: usize) -> String {
        format!("{}.inbound.{p}", self.prefix)
    }

    async fn publish_once(&self, queue: &str, body: &[u8]) -> lapin::Result<bool> {
        let mut publisher = self.publisher.lock().await;
        if publisher.as_ref().is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected()) {
            let (conn, channel) = open(&self.url).await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            *publisher = Some((conn, channel));
        }
        let Some((_, channel)) = publisher.as_ref() else { return Ok(false) };
        let properties =
            BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
        let confirm = channel
            .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, properties)
            .await?;
        Ok(matches!(confirm.await?, Confirmation::Ack(_)))
    }
}

#[async_trait]
impl Queue for RabbitQueue {
    async fn push(&self, item: Inbound) -> Result<()> {
        let body = serde_json::to_vec(&item).map_err(Error::internal)?;
        let queue = self.name(partition_of(item.command.room_id(), self.partitions()));
        for attempt in 0..2 {
            match self.publish_once(&queue, &body).await {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(Error::Unavailable("RabbitMQ refused the message".into())),
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "rabbitmq publish failed");
                    *self.publisher.lock().await = None;
                }
            }
        }
        Err(Error::Unavailable("RabbitMQ is unavailable".into()))
    }

    fn partitions(&self) -> usize {
        self.partitions
    }

    /// Connects at the first beat (and again after a failure), so a worker starts while the
    /// broker is away, as its consumers do.
    async fn join(&self, worker: &str) -> Result<Box<dyn Membership>> {
        Ok(Box::new(RabbitMembership {
            url: self.url.clone(),
            exchange: format!("{}.workers", self.prefix),
            me: worker.to_owned(),
            ttl: self.member_ttl,
            state: None,
            heard: HashMap::new(),
        }))
    }

    /// Always a consumer: the broker makes it the partition's active consumer, or its standby
    /// until the holder lets go.
    async fn try_consumer(&self, partition: usize, _worker: &str) -> Result<Option<Box<dyn Consumer>>> {
        if partition >= self.partitions {
            return Err(Error::internal(format!("there is no partition {partition}")));
        }
        Ok(Some(Box::new(RabbitConsumer { url: self.url.clone(), queue: self.name(partition), state: None })))
    }

    /// The message count of a passive declare of each partition's queue: messages ready for a
    /// consumer. Messages delivered to a worker and not yet acknowledged (at most the batch size
    /// per partition) are not counted.
    async fn depths(&self) -> Result<Option<Vec<u64>>> {
        let down = || Error::Unavailable("RabbitMQ is unavailable".into());
        let channel = self.inspector().await.map_err(|_| down())?.ok_or_else(down)?;
        let mut depths = Vec::with_capacity(self.partitions);
        for p in 0..self.partitions {
            let passive = QueueDeclareOptions { passive: true, ..Default::default() };
            match channel.queue_declare(self.name(p).as_str().into(), passive, FieldTable::default()).await {
                Ok(queue) => depths.push(u64::from(queue.message_count())),
                Err(e) => {
                    tracing::debug!(error = %e, "rabbitmq: passive declare failed");
                    *self.inspector.lock().await = None;
                    return Err(down());
                }
            }
        }
        Ok(Some(depths))
    }

    async fn ping(&self) -> Result<()> {
        let publisher = self.publisher.lock().await;
        match publisher.as_ref() {
            Some((conn, _)) if conn.status().connected() => Ok(()),
            _ => {
                drop(publisher);
                // Reconnect now if the broker is back.
                self.publish_ready().await
            }
        }
    }
}

impl RabbitQueue {
    /// The inspecting channel, made on the publisher's connection when there is none.
    async fn inspector(&self) -> lapin::Result<Option<Channel>> {
        let mut inspector = self.inspector.lock().await;
        if let Some(channel) = inspector.as_ref().filter(|ch| ch.status().connected()) {
            return Ok(Some(channel.clone()));
        }
        let publisher = self.publisher.lock().await;
        let Some((conn, _)) = publisher.as_ref().filter(|(c, _)| c.status().connected()) else {
            return Ok(None);
        };
        let channel = conn.create_channel().await?;
        *inspector = Some(channel.clone());
        Ok(Some(channel))
    }

    async fn publish_ready(&self) -> Result<()> {
        let (conn, channel) = open(&self.url).await.map_err(unavailable)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(unavailable)?;
        *self.publisher.lock().await = Some((conn, channel));
        Ok(())
    }
}

/// The consumer of one partition's queue.
struct RabbitConsumer {
    url: String,
    queue: String,
    state: Option<(Connection, Channel, lapin::Consumer)>,
}

impl RabbitConsumer {
    async fn connect(&mut self, prefetch: u16) -> lapin::Result<()> {
        let (conn, channel) = open(&self.url).await?;
        declare(&channel, &self.queue).await?;
        channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.state = Some((conn, channel, consumer));
        Ok(())
    }
}

fn delivery(d: lapin::message::Delivery) -> Option<Delivery> {
    match serde_json::from_slice::<Inbound>(&d.data) {
        Ok(item) => Some(Delivery { tag: d.delivery_tag.to_string(), item }),
        Err(e) => {
            tracing::warn!(error = %e, "dropping an undecodable queue message");
            // Acknowledge it so it does not come back forever.
            tokio::spawn(async move {
                let _ = d.acker.ack(BasicAckOptions::default()).await;
            });
            None
        }
    }
}

#[async_trait]
impl Consumer for RabbitConsumer {
    async fn next_batch(&mut self, max: usize) -> Option<Vec<Delivery>> {
        if self.state.is_none()
            && let Err(e) = self.connect(max.clamp(1, u16::MAX as usize) as u16).await
        {
            tracing::warn!(error = %e, queue = %self.queue, "rabbitmq consumer cannot connect; retrying");
            self.state = None;
            tokio::time::sleep(WAIT).await;
            return Some(Vec::new());
        }
        let Some((_, _, consumer)) = self.state.as_mut() else { return Some(Vec::new()) };
        let first = match tokio::time::timeout(WAIT, consumer.next()).await {
            Err(_) => return Some(Vec::new()),
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "rabbitmq consumer failed; reconnecting");
                self.state = None;
                return Some(Vec::new());
            }
            Ok(None) => {
                self.state = None;
                return Some(Vec::new());
            }
        };
        let mut batch: Vec<Delivery> = delivery(first).into_iter().collect();
        while batch.len() < max {
            match consumer.next().now_or_never() {
                Some(Some(Ok(d))) => batch.extend(delivery(d)),
                _ => break,
            }
        }
        Some(batch)
    }

    async fn ack(&mut self, tags: &[String]) -> Result<()> {
        let Some((_, channel, _)) = self.state.as_ref() else {
            return Err(Error::Unavailable("the RabbitMQ channel closed; the broker redelivers".into()));
        };
        for tag in tags {
            let tag: u64 = tag.parse().map_err(|_| Error::internal(format!("bad delivery tag {tag}")))?;
            channel.basic_ack(tag, BasicAckOptions::default()).await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn release(mut self: Box<Self>) {
        // Closing the channel returns the unacknowledged deliveries to the queue, in order, and
        // lets the broker make the next consumer active.
        // A close that hangs (a broker going away) is given up on: dropping closes too.
        if let Some((conn, channel, _)) = self.state.take() {
            let close = async {
                let _ = channel.close(200, "partition released".into()).await;
                let _ = conn.close(200, "partition released".into()).await;
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
        }
    }
}

/// A worker's view of the membership, from the beats on the `<prefix>.workers` exchange.
struct RabbitMembership {
    url: String,
    exchange: String,
    me: String,
    ttl: Duration,
    state: Option<(Connection, Channel, lapin::Consumer)>,
    /// When each worker was last heard of.
    heard: HashMap<String, Instant>,
}

impl RabbitMembership {
    async fn connect(&mut self) -> lapin::Result<()> {
        let (conn, channel) = open(&self.url).await?;
        // Auto-deleted with the last member's queue: nothing is left of a deployment that stopped.
        let options = ExchangeDeclareOptions { auto_delete: true, ..Default::default() };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Fanout,
                options,
                FieldTable::default(),
            )
            .await?;
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        let queue = channel.queue_declare("".into(), options, FieldTable::default()).await?;
        channel
            .queue_bind(
                queue.name().as_str().into(),
                self.exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let options = BasicConsumeOptions { no_ack: true, exclusive: true, ..Default::default() };
        let consumer = channel
            .basic_consume(queue.name().as_str().into(), "".into(), options, FieldTable::default())
            .await?;
        self.state = Some((conn, channel, consumer));
        Ok(())
    }

    async fn say(&self, what: char) -> lapin::Result<()> {
        let Some((_, channel, _)) = self.state.as_ref() else { return Ok(()) };
        let body = format!("{what}{}", self.me);
        channel
            .basic_publish(
                self.exchange.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Membership for RabbitMembership {
    async fn beat(&mut self) -> Result<Vec<String>> {
        if self.state.as_ref().is_none_or(|(c, ch, _)| !c.status().connected() || !ch.status().connected()) {
            self.state = None;
            self.connect().await.map_err(unavailable)?;
        }
        if let Err(e) = self.say('+').await {
            self.state = None;
            return Err(unavailable(e));
        }
        let now = Instant::now();
        if let Some((_, _, consumer)) = self.state.as_mut() {
            while let Some(Some(Ok(d))) = consumer.next().now_or_never() {
                let beat = String::from_utf8_lossy(&d.data);
                match (beat.get(..1), beat.get(1..)) {
                    (Some("+"), Some(id)) => {
                        self.heard.insert(id.to_owned(), now);
                    }
                    (Some("-"), Some(id)) => {
                        self.heard.remove(id);
                    }
                    _ => tracing::debug!("rabbitmq: ignoring a beat that is not one"),
                }
            }
        }
        let ttl = self.ttl;
        self.heard.retain(|_, at| now.duration_since(*at) < ttl);
        self.heard.insert(self.me.clone(), now);
        Ok(self.heard.keys().cloned().collect())
    }

    async fn leave(mut self: Box<Self>) {
        if let Err(e) = self.say('-').await {
            tracing::warn!(error = %e, "rabbitmq: could not leave; the membership runs out instead");
        }
        if let Some((conn, _, _)) = self.state.take() {
            let _ = conn.close(200, "worker left".into()).await;
        }
    }
}
