//! The in-process queue: one bounded channel per partition, a room always in the same partition.
//! It is not durable, and need not be: nothing is acknowledged to a client before the worker has
//! committed, so a crash loses only commands whose senders are still waiting and will retry.

use async_trait::async_trait;
use parlor_domain::ports::{Consumer, Delivery, Queue};
use parlor_domain::partition::partition_of;
use parlor_domain::queue::Inbound;
use parlor_domain::{Error, Result};
use std::sync::Mutex;
use tokio::sync::mpsc;

/// The in-process queue.
pub struct LocalQueue {
    /// The sending end of each partition.
    senders: Vec<mpsc::Sender<Inbound>>,
    /// The receiving ends, until a worker takes them.
    receivers: Mutex<Vec<Option<mpsc::Receiver<Inbound>>>>,
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
        Self { senders, receivers: Mutex::new(receivers) }
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

    async fn consumer(&self, partition: usize) -> Result<Box<dyn Consumer>> {
        let mut receivers = self.receivers.lock().map_err(|_| Error::internal("queue lock poisoned"))?;
        let rx = receivers.get_mut(partition).and_then(Option::take).ok_or_else(|| {
            Error::internal(format!("partition {partition} is already consumed or does not exist"))
        })?;
        Ok(Box::new(LocalConsumer { rx, next_tag: 0 }))
    }

    /// Commands in each partition's channel that no worker has taken yet (a batch being applied
    /// has left the channel and is not counted).
    async fn depths(&self) -> Result<Option<Vec<u64>>> {
        Ok(Some(self.senders.iter().map(|tx| (tx.max_capacity() - tx.capacity()) as u64).collect()))
    }
}

/// The consumer of one partition.
struct LocalConsumer {
    rx: mpsc::Receiver<Inbound>,
    next_tag: u64,
}

#[async_trait]
impl Consumer for LocalConsumer {
    async fn next_batch(&mut self, max: usize) -> Option<Vec<Delivery>> {
        let mut items = Vec::new();
        let n = self.rx.recv_many(&mut items, max.max(1)).await;
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
}
