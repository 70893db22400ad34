//! What travels through the inbound `Queue`: commands that change a room's history, each tagged
//! with the request that made it and the gateway that waits for its outcome.

use crate::model::Message;
use crate::{Error, MessageId, RoomId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// A command on a room's history. Every change of messages goes through the worker, so one room's
/// changes are applied in one order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Post a message.
    Create {
        room_id: RoomId,
        author_id: UserId,
        body: String,
        nonce: Option<String>,
        reply_to: Option<MessageId>,
    },
    /// Replace a message's body (author only).
    Edit { room_id: RoomId, message_id: MessageId, author_id: UserId, body: String },
    /// Delete a message (author, owner or admin).
    Delete { room_id: RoomId, message_id: MessageId, actor_id: UserId },
}

impl Command {
    /// The room the command applies to: the queue's partition key.
    pub fn room_id(&self) -> &RoomId {
        match self {
            Self::Create { room_id, .. } | Self::Edit { room_id, .. } | Self::Delete { room_id, .. } => {
                room_id
            }
        }
    }
}

/// A command with its return address.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Inbound {
    /// Unique per request; the gateway matches the outcome with it.
    pub request_id: String,
    /// The gateway instance that waits for the outcome.
    pub origin: String,
    pub command: Command,
    /// When the gateway queued the command, for the queue-lag metric. Absent in entries queued
    /// before the field existed (and then no lag is measured), so old and new processes can share
    /// a queue during a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enqueued_at: Option<Timestamp>,
}

/// What became of a command.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Outcome {
    /// A message was stored (`created` false when a repeated nonce returned the first one).
    Created { message: Message, created: bool },
    /// A message was edited.
    Edited { message: Message },
    /// A message was deleted.
    Deleted { room_id: RoomId, message_id: MessageId, seq: i64 },
    /// The command failed; nothing was written.
    Failed(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_without_an_enqueue_time_still_read_and_new_ones_carry_it() {
        let old = r#"{"request_id":"r1","origin":"g1","command":{"op":"delete","room_id":"room","message_id":"m","actor_id":"u"}}"#;
        let item: Inbound = serde_json::from_str(old).expect("an entry queued before the field existed");
        assert_eq!(item.enqueued_at, None);
        let new = Inbound { enqueued_at: Some(Timestamp(1_700_000_000_123)), ..item };
        let json = serde_json::to_string(&new).expect("serialises");
        assert!(json.contains(r#""enqueued_at":"2023-11-14T22:13:20.123Z""#), "{json}");
        assert_eq!(serde_json::from_str::<Inbound>(&json).expect("reads back"), new);
        let none = serde_json::to_string(&Inbound { enqueued_at: None, ..new }).expect("serialises");
        assert!(!none.contains("enqueued_at"), "{none}");
    }
}
