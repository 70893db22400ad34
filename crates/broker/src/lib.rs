//! parlor's adapters for the `Queue`, `Bus` and `Presence` ports: in process (tokio channels and
//! maps, so `parlor serve` runs the whole message path in one process), on Redis, and (the queue)
//! on RabbitMQ.

mod bus;
mod presence;
mod queue;
pub mod rabbitmq;
pub mod redis;

pub use bus::LocalBus;
pub use presence::LocalPresence;
pub use queue::LocalQueue;
