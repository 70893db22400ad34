//! What travels on the event `Bus`: envelopes addressed to a topic. Events meant for clients carry
//! their frame already serialised, so a gateway forwards the same bytes to every recipient; the
//! rest of the envelope tells the gateway which of its connections those are.

use crate::queue::Outcome;
use crate::{RoomId, SessionId, UserId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Where an envelope goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    /// Everything that happens in a room, for gateways holding its members.
    Room(RoomId),
    /// Events for one user's connections (membership changes, read markers, ended sessions).
    User(UserId),
    /// Replies for one gateway instance.
    Gateway(String),
    /// Presence changes; every gateway listens.
    Presence,
}

impl Topic {
    /// The channel name in a broker (`room.<id>`, `user.<id>`, ...).
    pub fn channel(&self) -> String {
        match self {
            Self::Room(id) => format!("room.{id}"),
            Self::User(id) => format!("user.{id}"),
            Self::Gateway(id) => format!("gateway.{id}"),
            Self::Presence => "presence".to_owned(),
        }
    }
}

/// A serialised `ServerEvent`, shared by every recipient.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame(pub Bytes);

impl Serialize for Frame {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(&self.0).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Frame {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(Bytes::from(String::deserialize(d)?)))
    }
}

/// An event and what a gateway needs to route it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum BusEvent {
    /// `message.created`, `message.updated` or `message.deleted` in a room.
    Message { room_id: RoomId, seq: i64, frame: Frame },
    /// A user became a member: sent on the room topic (to the other members) and on the user's
    /// topic (so their connections start receiving the room).
    MemberJoined { room_id: RoomId, user_id: UserId, frame: Frame },
    /// A user left or was removed, on the room topic and on the user's topic.
    MemberLeft { room_id: RoomId, user_id: UserId, frame: Frame },
    /// `room.updated` or `typing`: to the room's members except `except_user`.
    RoomEvent { room_id: RoomId, except_user: Option<UserId>, frame: Frame },
    /// `read` for the user's connections other than `except_connection`.
    UserEvent { user_id: UserId, except_connection: Option<String>, frame: Frame },
    /// `presence` for connections of users sharing one of `rooms` with `user_id`.
    Presence { user_id: UserId, rooms: Vec<RoomId>, frame: Frame },
    /// Sessions that ended: their connections close with code 4001.
    SessionsEnded { user_id: UserId, session_ids: Vec<SessionId> },
    /// The outcome of a queued command, for the gateway that waits on it.
    Reply { request_id: String, outcome: Box<Outcome> },
}

/// An event addressed to a topic.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub topic: Topic,
    pub event: BusEvent,
}
