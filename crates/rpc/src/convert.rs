//! Domain records to and from their protobuf forms.

use parlor_domain::model::{Message, User};
use parlor_domain::{Error, Timestamp};
use parlor_proto::v1 as pb;

/// A timestamp as protobuf has it.
pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    let millis = t.millis();
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf timestamp as the domain has it.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Timestamp {
    Timestamp(t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos / 1_000_000)))
}

pub fn user(u: &User) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        created_at: Some(timestamp(u.created_at)),
    }
}

pub fn from_user(u: pb::User) -> User {
    User {
        id: u.id.into(),
        username: u.username,
        display_name: u.display_name,
        created_at: u.created_at.as_ref().map(from_timestamp).unwrap_or(Timestamp(0)),
    }
}

pub fn message(m: &Message) -> pb::Message {
    pb::Message {
        id: m.id.to_string(),
        room_id: m.room_id.to_string(),
        seq: m.seq,
        author: Some(user(&m.author)),
        body: m.body.clone(),
        html: m.html.clone(),
        mentions: m.mentions.iter().map(ToString::to_string).collect(),
        reply_to: m.reply_to.as_ref().map(ToString::to_string),
        nonce: m.nonce.clone(),
        created_at: Some(timestamp(m.created_at)),
        edited_at: m.edited_at.map(timestamp),
        deleted: m.deleted,
    }
}

/// A required field of a protobuf message.
pub fn required<T>(field: Option<T>, name: &str) -> Result<T, Error> {
    field.ok_or_else(|| Error::invalid(format!("{name} is missing")))
}
