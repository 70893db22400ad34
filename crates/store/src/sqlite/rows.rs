//! Turning rows into domain records. Every query that returns one of these records selects the
//! columns named here, in the same shape.

use super::db_err;
use parlor_domain::model::{
    Member, Message, Role, Room, RoomKind, SessionRecord, User, UserRecord, Visibility,
};
use parlor_domain::{Error, Result, Timestamp};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

pub fn user_record(row: &SqliteRow) -> Result<UserRecord> {
    Ok(UserRecord {
        user: User {
            id: row.try_get::<String, _>("id").map_err(db_err)?.into(),
            username: row.try_get("username").map_err(db_err)?,
            display_name: row.try_get("display_name").map_err(db_err)?,
            created_at: Timestamp(row.try_get("created_at").map_err(db_err)?),
        },
        email: row.try_get("email").map_err(db_err)?,
        email_notifications: row.try_get::<i64, _>("email_notifications").map_err(db_err)? != 0,
        password_hash: row.try_get("password_hash").map_err(db_err)?,
        phrase_hash: row.try_get("phrase_hash").map_err(db_err)?,
        last_seen_at: row.try_get::<Option<i64>, _>("last_seen_at").map_err(db_err)?.map(Timestamp),
    })
}

/// A public user from columns prefixed `u_`.
pub fn user_prefixed(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: row.try_get::<String, _>("u_id").map_err(db_err)?.into(),
        username: row.try_get("u_username").map_err(db_err)?,
        display_name: row.try_get("u_display_name").map_err(db_err)?,
        created_at: Timestamp(row.try_get("u_created_at").map_err(db_err)?),
    })
}

/// A public user from plain columns.
pub fn user(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: row.try_get::<String, _>("id").map_err(db_err)?.into(),
        username: row.try_get("username").map_err(db_err)?,
        display_name: row.try_get("display_name").map_err(db_err)?,
        created_at: Timestamp(row.try_get("created_at").map_err(db_err)?),
    })
}

pub fn session(row: &SqliteRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: row.try_get::<String, _>("id").map_err(db_err)?.into(),
        user_id: row.try_get::<String, _>("user_id").map_err(db_err)?.into(),
        created_at: Timestamp(row.try_get("created_at").map_err(db_err)?),
        last_seen_at: Timestamp(row.try_get("last_seen_at").map_err(db_err)?),
        user_agent: row.try_get("user_agent").map_err(db_err)?,
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at").map_err(db_err)?.map(Timestamp),
    })
}

pub fn room(row: &SqliteRow) -> Result<Room> {
    let kind = match row.try_get::<String, _>("kind").map_err(db_err)?.as_str() {
        "direct" => RoomKind::Direct,
        _ => RoomKind::Group,
    };
    let visibility = match row.try_get::<String, _>("visibility").map_err(db_err)?.as_str() {
        "public" => Visibility::Public,
        _ => Visibility::Private,
    };
    Ok(Room {
        id: row.try_get::<String, _>("id").map_err(db_err)?.into(),
        kind,
        name: row.try_get("name").map_err(db_err)?,
        topic: row.try_get("topic").map_err(db_err)?,
        visibility,
        owner_id: row.try_get::<Option<String>, _>("owner_id").map_err(db_err)?.map(Into::into),
        created_at: Timestamp(row.try_get("created_at").map_err(db_err)?),
        member_count: row.try_get("member_count").map_err(db_err)?,
        last_seq: row.try_get("last_seq").map_err(db_err)?,
        last_read_seq: None,
        unread_count: None,
    })
}

pub fn role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| Error::internal(format!("unknown role {s:?} in the database")))
}

pub fn member(row: &SqliteRow) -> Result<Member> {
    Ok(Member {
        user: user_prefixed(row)?,
        role: role(&row.try_get::<String, _>("role").map_err(db_err)?)?,
        joined_at: Timestamp(row.try_get("joined_at").map_err(db_err)?),
    })
}

pub fn message(row: &SqliteRow) -> Result<Message> {
    let mentions: String = row.try_get("mentions").map_err(db_err)?;
    Ok(Message {
        id: row.try_get::<String, _>("id").map_err(db_err)?.into(),
        room_id: row.try_get::<String, _>("room_id").map_err(db_err)?.into(),
        seq: row.try_get("seq").map_err(db_err)?,
        author: user_prefixed(row)?,
        body: row.try_get("body").map_err(db_err)?,
        html: row.try_get("html").map_err(db_err)?,
        mentions: serde_json::from_str(&mentions).map_err(Error::internal)?,
        reply_to: row.try_get::<Option<String>, _>("reply_to").map_err(db_err)?.map(Into::into),
        nonce: row.try_get("nonce").map_err(db_err)?,
        created_at: Timestamp(row.try_get("created_at").map_err(db_err)?),
        edited_at: row.try_get::<Option<i64>, _>("edited_at").map_err(db_err)?.map(Timestamp),
        deleted: row.try_get::<i64, _>("deleted").map_err(db_err)? != 0,
    })
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
