//! The in-process queue: one bounded channel per partition, a room always in the same partition.
//! It is not durable, and need not be: nothing is acknowledged to a client before the worker has
//! committed, so a crash loses only commands whose senders are still waiting and will retry.
//! There is one worker in the process: it is alone in the membership (the port's default) and
//! holds every partition; a released (or dropped) consumer's receiver goes back for the next
//! `try_consumer`.

use async_trait::async_trait;
use parlor_domain::partition::partition_of;
use parlor_domain::ports::{Consumer, Delivery, Queue};
use parlor_domain::queue::Inbound;
use parlor_domain::{Error, Result};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The in-process queue.
pub struct LocalQueue {
    /// The sending end of each partition.
    senders: Vec<mpsc::Sender<Inbound>>,
    /// The receiving ends, while no consumer holds them.
    receivers: Arc<Mutex<Vec<Option<mpsc::Receiver<Inbound>>>>>,
}

impl LocalQueue {
    /// A queue of `partitions` partitions holding up to `capacity` commands each; pushes wait
    /// when a partition is full.
    pub fn new(partitions: usize, capacity: usize) -> Self {
        let partitions = partitions.max(1);
        let (senders, receivers) = (0..partitions)
            .map(|_| {
                let (tx, rx) = mpsc::channel(capacity.max(1));
                (tx, Some(rx))
            })
            .unzip();
        Self { senders, receivers: Arc::new(Mutex::new(receivers)) }
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn push(&self, item: Inbound) -> Result<()> {
        let p = partition_of(item.command.room_id(), self.partitions());
        self.senders[p].send(item).await.map_err(|_| Error::Unavailable("the message queue is closed".into()))
    }

    fn partitions(&self) -> usize {
        self.senders.len()
    }

    async fn try_consumer(&self, partition: usize, _worker: &str) -> Result<Option<Box<dyn Consumer>>> {
        if partition >= self.senders.len() {
            return Err(Error::internal(format!("there is no partition {partition}")));
        }
        let mut receivers = self.receivers.lock().map_err(|_| Error::internal("queue lock poisoned"))?;
        Ok(receivers[partition].take().map(|rx| {
            Box::new(LocalConsumer { rx: Some(rx), partition, slots: self.receivers.clone(), next_tag: 0 })
                as Box<dyn Consumer>
        }))
    }

    /// Commands in each partition's channel that no worker has taken yet (a batch being applied
    /// has left the channel and is not counted).
    async fn depths(&self) -> Result<Option<Vec<u64>>> {
        Ok(Some(self.senders.iter().map(|tx| (tx.max_capacity() - tx.capacity()) as u64).collect()))
    }
}

/// The consumer of one partition.
struct LocalConsumer {
    /// Always `Some` until dropped.
    rx: Option<mpsc::Receiver<Inbound>>,
    partition: usize,
    /// Where the receiver goes back on release.
    slots: Arc<Mutex<Vec<Option<mpsc::Receiver<Inbound>>>>>,
    next_tag: u64,
}

#[async_trait]
impl Consumer for LocalConsumer {
    async fn next_batch(&mut self, max: usize) -> Option<Vec<Delivery>> {
        let mut items = Vec::new();
        let rx = self.rx.as_mut()?;
        let n = rx.recv_many(&mut items, max.max(1)).await;
        if n == 0 {
            return None;
        }
        Some(
            items
                .into_iter()
                .map(|item| {
                    self.next_tag += 1;
                    Delivery { tag: self.next_tag.to_string(), item }
                })
                .collect(),
        )
    }

    async fn ack(&mut self, _tags: &[String]) -> Result<()> {
        // In process, a delivery is gone once received; there is nothing to redeliver.
        Ok(())
    }

    async fn release(self: Box<Self>) {
        // Dropping gives the receiver back.
    }
}

impl Drop for LocalConsumer {
    /// The receiver goes back, so a consumer dropped without `release` (its task aborted) does not
    /// close the partition: commands queued meanwhile wait for the next consumer.
    fn drop(&mut self) {
        if let (Some(rx), Ok(mut slots)) = (self.rx.take(), self.slots.lock()) {
            slots[self.partition] = Some(rx);
        }
    }
}
