//! The JSON bodies of the REST API's requests, as the gateway deserialises them. They live here,
//! away from the handlers, so that the fuzz targets (`crates/fuzzing`) can parse into the very
//! same types without building the gateway.

use crate::model::{Role, Visibility};
use crate::{MessageId, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

// `/auth`.

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterBody {
    /// 3–32 characters: letters, digits, `_`, `-`, `.`; unique regardless of case.
    pub username: String,
    /// 8–128 characters.
    pub password: String,
    /// Up to 64 characters; the username when absent.
    pub display_name: Option<String>,
    /// Where unread-message e-mails go.
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoverBody {
    pub username: String,
    /// The 12 words given at registration, separated by spaces.
    pub recovery_phrase: String,
    pub new_password: String,
}

// `/rooms` and `/dms`.

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateBody {
    /// 1–64 characters.
    pub name: String,
    /// Up to 256 characters.
    pub topic: Option<String>,
    /// `public` when absent.
    pub visibility: Option<Visibility>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateBody {
    pub name: Option<String>,
    /// An empty topic clears it.
    pub topic: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMemberBody {
    pub user_id: UserId,
    /// `member` when absent.
    pub role: Option<Role>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DirectBody {
    /// The other user.
    pub user_id: UserId,
}

// `/rooms/{id}/messages` and `/rooms/{id}/read`.

#[derive(Debug, Deserialize, ToSchema)]
pub struct SendBody {
    /// 1–4000 characters of markdown.
    pub body: String,
    /// Up to 64 characters; a send repeated with the same nonce gives the first message back (200).
    pub nonce: Option<String>,
    /// A message of the same room.
    pub reply_to: Option<MessageId>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EditBody {
    /// The new text, 1–4000 characters.
    pub body: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReadBody {
    /// The last seq seen; the marker never moves back.
    pub seq: i64,
}

// `/users/me`.

#[derive(Debug, Deserialize, ToSchema)]
pub struct PatchMe {
    pub display_name: Option<String>,
    /// Absent: unchanged; null or "": cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    pub email_notifications: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordBody {
    pub current_password: String,
    pub new_password: String,
}

/// Tells an absent field (`None`) from a null one (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}
