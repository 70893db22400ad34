//! The WebSocket protocol, version 1: the frames a client sends (`ClientFrame`) and the events the
//! server sends (`ServerEvent`), both JSON objects tagged by `"type"`.

use crate::model::{Message, Room, User};
use crate::{Error, MessageId, RoomId, SessionId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A frame from a client.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Authentication from a browser, as the first frame.
    Auth { token: String },
    /// Post a message.
    Send {
        room_id: RoomId,
        body: String,
        nonce: String,
        #[serde(default)]
        reply_to: Option<MessageId>,
    },
    /// The user is typing in a room.
    Typing { room_id: RoomId },
    /// Move the read marker.
    Read { room_id: RoomId, seq: i64 },
    /// Catch up on missed messages: room id to the last seq seen.
    Sync { rooms: HashMap<RoomId, i64> },
    /// Application-level ping.
    Ping,
}

/// The presence event's payload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PresenceEvent {
    pub user_id: UserId,
    pub status: crate::model::PresenceStatus,
    pub last_seen_at: Option<Timestamp>,
}

/// An event from the server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum ServerEvent {
    #[serde(rename = "ready")]
    Ready { session_id: SessionId, user: User, rooms: Vec<Room>, heartbeat_ms: u64 },
    #[serde(rename = "ack")]
    Ack { nonce: String, message: Message },
    #[serde(rename = "message.created")]
    MessageCreated { message: Message },
    #[serde(rename = "message.updated")]
    MessageUpdated { message: Message },
    #[serde(rename = "message.deleted")]
    MessageDeleted { room_id: RoomId, message_id: MessageId, seq: i64 },
    #[serde(rename = "member.joined")]
    MemberJoined { room_id: RoomId, user: User },
    #[serde(rename = "member.left")]
    MemberLeft { room_id: RoomId, user_id: UserId },
    #[serde(rename = "room.updated")]
    RoomUpdated { room: Room },
    #[serde(rename = "typing")]
    Typing { room_id: RoomId, user_id: UserId },
    #[serde(rename = "read")]
    Read { room_id: RoomId, seq: i64 },
    #[serde(rename = "presence")]
    Presence(PresenceEvent),
    #[serde(rename = "sync.truncated")]
    SyncTruncated { room_id: RoomId },
    #[serde(rename = "synced")]
    Synced,
    #[serde(rename = "pong")]
    Pong,
    #[serde(rename = "error")]
    Error(ErrorEvent),
}

/// The `error` event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorEvent {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after_ms: Option<u64>,
}

impl ErrorEvent {
    /// The event for an error, answering the send with `nonce` if there was one.
    pub fn from_error(err: &Error, nonce: Option<String>) -> Self {
        let (field, reason, retry_after_ms) = match err {
            Error::Validation { field, .. } => (field.clone(), None, None),
            Error::Rejected { reason, .. } => (None, Some(reason.as_str().to_owned()), None),
            Error::RateLimited { retry_after_ms } => (None, None, Some(*retry_after_ms)),
            _ => (None, None, None),
        };
        Self {
            code: err.code().to_owned(),
            message: err.public_message(),
            nonce,
            field,
            reason,
            retry_after_ms,
        }
    }
}

impl ServerEvent {
    /// The event serialised once, to be shared by every recipient.
    pub fn to_bytes(&self) -> bytes::Bytes {
        // Serialising these types cannot fail: every map key is a string.
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_by_type() {
        let f: ClientFrame = serde_json::from_str(r#"{"type":"send","room_id":"r","body":"hi","nonce":"n"}"#)
            .unwrap_or(ClientFrame::Ping);
        assert!(matches!(f, ClientFrame::Send { .. }));
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nope"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"read","room_id":"r","seq":"x"}"#).is_err());
    }

    #[test]
    fn events_carry_dotted_type_names() {
        let e = ServerEvent::SyncTruncated { room_id: RoomId::from("r") };
        let v: serde_json::Value = serde_json::from_slice(&e.to_bytes()).unwrap_or_default();
        assert_eq!(v["type"], "sync.truncated");
        assert_eq!(v["room_id"], "r");
    }
}
