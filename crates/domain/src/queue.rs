//! What travels through the inbound `Queue`: commands that change a room's history, each tagged
//! with the request that made it and the gateway that waits for its outcome.

use crate::model::Message;
use crate::{Error, MessageId, RoomId, UserId};
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
