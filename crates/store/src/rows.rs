//! Turning rows into domain records, for both drivers, and the columns they are read from: every
//! query that returns one of these records selects the columns a `*_cols!` macro names.

/// Columns of a user record (see `rows::user_record`).
macro_rules! user_cols {
    () => {
        "id, username, display_name, created_at, email, email_notifications, password_hash, \
         phrase_hash, last_seen_at, disabled_at"
    };
}

/// Columns of a room, table alias `r` (see `rows::room`).
macro_rules! room_cols {
    () => {
        "r.id, r.kind, r.name, r.topic, r.visibility, r.owner_id, r.created_at, r.member_count, \
         r.last_seq"
    };
}

/// Columns of a message with its author, table aliases `m` and `u` (see `rows::message`).
macro_rules! message_cols {
    () => {
        "m.id, m.room_id, m.seq, m.body, m.html, m.mentions, m.reply_to, m.nonce, m.created_at, \
         m.edited_at, m.deleted, u.id AS u_id, u.username AS u_username, \
         u.display_name AS u_display_name, u.created_at AS u_created_at"
    };
}

use crate::batch::Access;
use parlor_domain::model::{
    Member, Message, Role, Room, RoomKind, SessionRecord, User, UserRecord, Visibility,
};
use parlor_domain::{Error, Result, RoomId, Timestamp, UserId};
use sqlx::Row;

/// Reading typed columns from a row of either driver.
pub trait Get {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    /// A boolean: `INTEGER` 0/1 in SQLite, `BOOLEAN` in PostgreSQL.
    fn flag(&self, col: &str) -> Result<bool>;
}

fn decode(col: &str, e: sqlx::Error) -> Error {
    Error::internal(format!("column {col}: {e}"))
}

macro_rules! get_common {
    () => {
        fn text(&self, col: &str) -> Result<String> {
            self.try_get(col).map_err(|e| decode(col, e))
        }
        fn opt_text(&self, col: &str) -> Result<Option<String>> {
            self.try_get(col).map_err(|e| decode(col, e))
        }
        fn int(&self, col: &str) -> Result<i64> {
            self.try_get(col).map_err(|e| decode(col, e))
        }
        fn opt_int(&self, col: &str) -> Result<Option<i64>> {
            self.try_get(col).map_err(|e| decode(col, e))
        }
    };
}

impl Get for sqlx::sqlite::SqliteRow {
    get_common!();
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.int(col)? != 0)
    }
}

impl Get for sqlx::postgres::PgRow {
    get_common!();
    fn flag(&self, col: &str) -> Result<bool> {
        self.try_get(col).map_err(|e| decode(col, e))
    }
}

pub fn user_record(row: &impl Get) -> Result<UserRecord> {
    Ok(UserRecord {
        user: user(row)?,
        email: row.opt_text("email")?,
        email_notifications: row.flag("email_notifications")?,
        password_hash: row.text("password_hash")?,
        phrase_hash: row.text("phrase_hash")?,
        last_seen_at: row.opt_int("last_seen_at")?.map(Timestamp),
        disabled_at: row.opt_int("disabled_at")?.map(Timestamp),
    })
}

/// A public user from plain columns.
pub fn user(row: &impl Get) -> Result<User> {
    Ok(User {
        id: row.text("id")?.into(),
        username: row.text("username")?,
        display_name: row.text("display_name")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

/// A public user from columns prefixed `u_`.
pub fn user_prefixed(row: &impl Get) -> Result<User> {
    Ok(User {
        id: row.text("u_id")?.into(),
        username: row.text("u_username")?,
        display_name: row.text("u_display_name")?,
        created_at: Timestamp(row.int("u_created_at")?),
    })
}

pub fn session(row: &impl Get) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: row.text("id")?.into(),
        user_id: row.text("user_id")?.into(),
        created_at: Timestamp(row.int("created_at")?),
        last_seen_at: Timestamp(row.int("last_seen_at")?),
        user_agent: row.opt_text("user_agent")?,
        revoked_at: row.opt_int("revoked_at")?.map(Timestamp),
    })
}

pub fn room(row: &impl Get) -> Result<Room> {
    Ok(Room {
        id: row.text("id")?.into(),
        kind: if row.text("kind")? == "direct" { RoomKind::Direct } else { RoomKind::Group },
        name: row.opt_text("name")?,
        topic: row.opt_text("topic")?,
        visibility: if row.text("visibility")? == "public" {
            Visibility::Public
        } else {
            Visibility::Private
        },
        owner_id: row.opt_text("owner_id")?.map(Into::into),
        created_at: Timestamp(row.int("created_at")?),
        member_count: row.int("member_count")?,
        last_seq: row.int("last_seq")?,
        last_read_seq: None,
        unread_count: None,
    })
}

/// A room with the caller's read marker and unread count.
pub fn own_room(row: &impl Get) -> Result<Room> {
    let mut room = room(row)?;
    room.last_read_seq = Some(row.int("last_read_seq")?);
    room.unread_count = Some(row.int("unread_count")?);
    Ok(room)
}

pub fn role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| Error::internal(format!("unknown role {s:?} in the database")))
}

pub fn member(row: &impl Get) -> Result<Member> {
    Ok(Member {
        user: user_prefixed(row)?,
        role: role(&row.text("role")?)?,
        joined_at: Timestamp(row.int("joined_at")?),
    })
}

pub fn message(row: &impl Get) -> Result<Message> {
    Ok(Message {
        id: row.text("id")?.into(),
        room_id: row.text("room_id")?.into(),
        seq: row.int("seq")?,
        author: user_prefixed(row)?,
        body: row.text("body")?,
        html: row.text("html")?,
        mentions: serde_json::from_str(&row.text("mentions")?).map_err(Error::internal)?,
        reply_to: row.opt_text("reply_to")?.map(Into::into),
        nonce: row.opt_text("nonce")?,
        created_at: Timestamp(row.int("created_at")?),
        edited_at: row.opt_int("edited_at")?.map(Timestamp),
        deleted: row.flag("deleted")?,
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

/// Turns the user's words into the terms of a full-text query: letters and digits only (so no
/// operator can be injected), at most 16.
pub fn search_words(q: &str) -> Vec<&str> {
    q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(16).collect()
}

/// A (room, user) pair and its access, from columns `k_room`, `k_user`, `kind`, `visibility`,
/// `role` and the user's prefixed `u_` columns (null when the user does not exist).
pub(crate) fn access(row: &impl Get) -> Result<((RoomId, UserId), Access)> {
    let kind = row.text("kind")?;
    let visibility = row.text("visibility")?;
    let access = Access {
        kind: if kind == "direct" { RoomKind::Direct } else { RoomKind::Group },
        visibility: if visibility == "public" { Visibility::Public } else { Visibility::Private },
        role: row.opt_text("role")?.as_deref().map(role).transpose()?,
        user: match row.opt_text("u_id")? {
            Some(_) => Some(user_prefixed(row)?),
            None => None,
        },
    };
    Ok(((row.text("k_room")?.into(), row.text("k_user")?.into()), access))
}
