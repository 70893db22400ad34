//! parlor's domain: the ids, records and errors every role shares, the rules that judge input
//! (lengths, charsets, permissions), the WebSocket wire protocol, and the ports (`Store`, `Queue`,
//! `Bus`, `Presence`, `Reviewer`) that adapters implement. Nothing here does I/O.

pub mod bus;
pub mod error;
pub mod ids;
pub mod model;
pub mod partition;
pub mod permissions;
pub mod ports;
pub mod protocol;
pub mod queue;
pub mod requests;
pub mod time;
pub mod validate;

pub use error::{Error, RejectReason, Result};
pub use ids::{MessageId, RoomId, SessionId, UserId};
pub use time::Timestamp;
