//! The in-process bus: a map from topic to the subscribers of that topic. Publishing clones the
//! subscriber list out of the lock, then sends, so no lock is held across an await. Each
//! subscriber has one bounded channel; a full channel makes the publisher wait (back-pressure on
//! the worker) rather than drop an event, because a dropped event would be a gap for a client.

use async_trait::async_trait;
use parlor_domain::bus::{Envelope, Topic};
use parlor_domain::ports::{Bus, Subscriptions};
use parlor_domain::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

type Subscribers = Vec<(u64, mpsc::Sender<Arc<Envelope>>)>;

/// The in-process bus.
#[derive(Clone, Default)]
pub struct LocalBus {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Who receives each topic. Topics with no subscriber left are removed.
    topics: Mutex<HashMap<Topic, Subscribers>>,
    /// Ids for subscribers.
    next_id: AtomicU64,
}

/// Capacity of a subscriber's channel.
const SUBSCRIBER_CAPACITY: usize = 65_536;

impl LocalBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many topics have subscribers (for tests and metrics).
    pub fn topic_count(&self) -> usize {
        self.inner.topics.lock().map(|t| t.len()).unwrap_or(0)
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, envelope: Arc<Envelope>) -> Result<()> {
        let targets: Vec<mpsc::Sender<Arc<Envelope>>> = {
            let topics = self.inner.topics.lock().map_err(|_| Error::internal("bus lock poisoned"))?;
            match topics.get(&envelope.topic) {
                Some(subs) => subs.iter().map(|(_, tx)| tx.clone()).collect(),
                None => return Ok(()),
            }
        };
        for tx in targets {
            // A closed channel is a subscriber that went away; its topics are cleaned up when
            // its handle drops.
            let _closed = tx.send(envelope.clone()).await;
        }
        Ok(())
    }

    async fn subscriber(&self) -> Result<(Arc<dyn Subscriptions>, mpsc::Receiver<Arc<Envelope>>)> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_CAPACITY);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        Ok((Arc::new(LocalSubscriptions { id, tx, bus: self.inner.clone() }), rx))
    }
}

/// One subscriber's topics.
struct LocalSubscriptions {
    id: u64,
    tx: mpsc::Sender<Arc<Envelope>>,
    bus: Arc<Inner>,
}

#[async_trait]
impl Subscriptions for LocalSubscriptions {
    async fn subscribe(&self, topic: Topic) -> Result<()> {
        let mut topics = self.bus.topics.lock().map_err(|_| Error::internal("bus lock poisoned"))?;
        let subs = topics.entry(topic).or_default();
        if !subs.iter().any(|(id, _)| *id == self.id) {
            subs.push((self.id, self.tx.clone()));
        }
        Ok(())
    }

    async fn unsubscribe(&self, topic: Topic) -> Result<()> {
        let mut topics = self.bus.topics.lock().map_err(|_| Error::internal("bus lock poisoned"))?;
        if let Some(subs) = topics.get_mut(&topic) {
            subs.retain(|(id, _)| *id != self.id);
            if subs.is_empty() {
                topics.remove(&topic);
            }
        }
        Ok(())
    }
}

impl Drop for LocalSubscriptions {
    fn drop(&mut self) {
        if let Ok(mut topics) = self.bus.topics.lock() {
            topics.retain(|_, subs| {
                subs.retain(|(id, _)| *id != self.id);
                !subs.is_empty()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parlor_domain::RoomId;
    use parlor_domain::bus::{BusEvent, Frame};

    fn envelope(room: &str) -> Arc<Envelope> {
        Arc::new(Envelope {
            topic: Topic::Room(RoomId::from(room)),
            event: BusEvent::RoomEvent {
                room_id: RoomId::from(room),
                except_user: None,
                frame: Frame("{}".into()),
            },
        })
    }

    #[tokio::test]
    async fn subscribers_receive_only_their_topics_and_topics_are_removed_when_empty() {
        let bus = LocalBus::new();
        let (subs, mut rx) = bus.subscriber().await.expect("subscriber");
        subs.subscribe(Topic::Room(RoomId::from("a"))).await.expect("subscribe");
        bus.publish(envelope("b")).await.expect("publish");
        bus.publish(envelope("a")).await.expect("publish");
        let got = rx.recv().await.expect("an envelope");
        assert_eq!(got.topic, Topic::Room(RoomId::from("a")));
        assert!(rx.try_recv().is_err());
        subs.unsubscribe(Topic::Room(RoomId::from("a"))).await.expect("unsubscribe");
        assert_eq!(bus.topic_count(), 0);
    }
}
