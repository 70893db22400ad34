//! The records of the public contract: users, rooms, members, messages and sessions, serialised
//! exactly as clients see them.

use crate::{MessageId, RoomId, SessionId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user as anyone may see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub created_at: Timestamp,
}

/// A user as its owner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OwnUser {
    #[serde(flatten)]
    pub user: User,
    pub email: Option<String>,
    /// Whether unread-message e-mails are sent (when an address is set).
    pub email_notifications: bool,
}

/// Everything the store keeps of a user, secrets included. Never serialised to a client.
#[derive(Clone, Debug)]
pub struct UserRecord {
    pub user: User,
    pub email: Option<String>,
    pub email_notifications: bool,
    pub password_hash: String,
    pub phrase_hash: String,
    pub last_seen_at: Option<Timestamp>,
    /// When an administrator disabled the account (`None`: it is active).
    pub disabled_at: Option<Timestamp>,
}

impl UserRecord {
    /// The owner's view of the account.
    pub fn own(&self) -> OwnUser {
        OwnUser {
            user: self.user.clone(),
            email: self.email.clone(),
            email_notifications: self.email_notifications,
        }
    }
}

/// Online or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    Online,
    Offline,
}

/// A user's presence as others see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PresenceInfo {
    pub status: PresenceStatus,
    pub last_seen_at: Option<Timestamp>,
}

/// A group room or a direct conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    Group,
    Direct,
}

/// Who may find and join a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

/// A member's role in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// Owners and admins manage a room.
    pub fn is_manager(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

/// A room. Direct rooms have no name, topic or owner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Room {
    pub id: RoomId,
    pub kind: RoomKind,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub visibility: Visibility,
    pub owner_id: Option<UserId>,
    pub created_at: Timestamp,
    pub member_count: i64,
    pub last_seq: i64,
    /// Only in lists of the caller's own rooms.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_read_seq: Option<i64>,
    /// Only in lists of the caller's own rooms.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unread_count: Option<i64>,
}

/// A member of a room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub user: User,
    pub role: Role,
    pub joined_at: Timestamp,
}

/// A message of a room's history. A deleted one keeps its seq with an empty body and html.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub room_id: RoomId,
    pub seq: i64,
    pub author: User,
    pub body: String,
    pub html: String,
    pub mentions: Vec<UserId>,
    pub reply_to: Option<MessageId>,
    pub nonce: Option<String>,
    pub created_at: Timestamp,
    pub edited_at: Option<Timestamp>,
    pub deleted: bool,
}

/// A login session as its owner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    pub id: SessionId,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub user_agent: Option<String>,
    pub current: bool,
}

/// A session as the store keeps it.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub user_agent: Option<String>,
    pub revoked_at: Option<Timestamp>,
}
