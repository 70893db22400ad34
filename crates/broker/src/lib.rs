//! parlor's in-process adapters for the `Queue`, `Bus` and `Presence` ports: tokio channels and
//! maps behind the same traits the Redis and RabbitMQ adapters implement, so `parlor serve` runs
//! the whole message path in one process.

mod bus;
mod presence;
mod queue;

pub use bus::LocalBus;
pub use presence::LocalPresence;
pub use queue::LocalQueue;
