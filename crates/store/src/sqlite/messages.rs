//! Message history in SQLite: group-committed batches of commands, history pages and full-text
//! search (FTS5).

use super::{SqliteStore, db_err};
use crate::rows;
use async_trait::async_trait;
use parlor_domain::model::{Message, Role, RoomKind, Visibility};
use parlor_domain::permissions;
use parlor_domain::ports::{MessageStore, Page, Prepared};
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{Error, MessageId, Result, RoomId, UserId};
use sqlx::{Row, SqliteConnection};

/// A room and the acting user's place in it, read inside the batch's transaction.
struct Access {
    kind: RoomKind,
    visibility: Visibility,
    role: Option<Role>,
}

async fn access(conn: &mut SqliteConnection, room_id: &RoomId, user_id: &UserId) -> Result<Access> {
    let row = sqlx::query(
        "SELECT r.kind, r.visibility, m.role FROM rooms r \
         LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = ? WHERE r.id = ?",
    )
    .bind(user_id.as_str())
    .bind(room_id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?
    .ok_or_else(|| Error::NotFound("room not found".into()))?;
    let kind: String = row.try_get("kind").map_err(db_err)?;
    let visibility: String = row.try_get("visibility").map_err(db_err)?;
    let role: Option<String> = row.try_get("role").map_err(db_err)?;
    Ok(Access {
        kind: if kind == "direct" { RoomKind::Direct } else { RoomKind::Group },
        visibility: if visibility == "public" { Visibility::Public } else { Visibility::Private },
        role: role.as_deref().map(rows::role).transpose()?,
    })
}

impl Access {
    /// The caller's role, or the error a non-member gets.
    fn member(&self) -> Result<Role> {
        self.role.ok_or_else(|| permissions::not_a_member(self.kind, self.visibility))
    }
}

async fn load(conn: &mut SqliteConnection, room_id: &RoomId, id: &MessageId) -> Result<Option<Message>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = ? AND m.id = ?"
    ))
    .bind(room_id.as_str())
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(rows::message).transpose()
}

async fn by_nonce(
    conn: &mut SqliteConnection,
    room_id: &RoomId,
    author_id: &UserId,
    nonce: &str,
) -> Result<Option<Message>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m JOIN users u ON u.id = m.author_id \
         WHERE m.room_id = ? AND m.author_id = ? AND m.nonce = ?"
    ))
    .bind(room_id.as_str())
    .bind(author_id.as_str())
    .bind(nonce)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(rows::message).transpose()
}

/// Applies one command inside the batch's transaction. Rule violations come back as
/// `Outcome::Failed` before anything is written; an `Err` aborts the whole batch.
async fn apply_one(conn: &mut SqliteConnection, p: &Prepared) -> Result<Outcome> {
    let mentions = serde_json::to_string(&p.mentions).map_err(Error::internal)?;
    match &p.command {
        Command::Create { room_id, author_id, body, nonce, reply_to } => {
            let acc = access(conn, room_id, author_id).await?;
            if let Err(e) = acc.member() {
                return Ok(Outcome::Failed(e));
            }
            if let Some(nonce) = nonce
                && let Some(first) = by_nonce(conn, room_id, author_id, nonce).await?
            {
                return Ok(Outcome::Created { message: first, created: false });
            }
            if let Some(reply_to) = reply_to {
                let exists = sqlx::query("SELECT 1 FROM messages WHERE room_id = ? AND id = ?")
                    .bind(room_id.as_str())
                    .bind(reply_to.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_err)?;
                if exists.is_none() {
                    return Ok(Outcome::Failed(Error::validation(
                        "reply_to",
                        "no such message in this room",
                    )));
                }
            }
            let seq: i64 =
                sqlx::query("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq")
                    .bind(room_id.as_str())
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db_err)?
                    .try_get("last_seq")
                    .map_err(db_err)?;
            let id = MessageId::generate();
            sqlx::query(
                "INSERT INTO messages (id, room_id, seq, author_id, body, html, mentions, reply_to, nonce, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id.as_str())
            .bind(room_id.as_str())
            .bind(seq)
            .bind(author_id.as_str())
            .bind(body)
            .bind(&p.html)
            .bind(&mentions)
            .bind(reply_to.as_ref().map(MessageId::as_str))
            .bind(nonce)
            .bind(p.now.millis())
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
            if let Some(due) = p.notify_at {
                // The outbox: e-mails for the other member of a direct room and for mentioned
                // members who have an address and want e-mail, in the message's transaction.
                sqlx::query(
                    "INSERT INTO notification_jobs (recipient_id, room_id, message_id, seq, due_at, next_attempt_at, created_at) \
                     SELECT m.user_id, m.room_id, ?, ?, ?, ?, ? FROM memberships m \
                     JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id \
                     WHERE m.room_id = ? AND m.user_id <> ? AND u.email IS NOT NULL AND u.email_notifications = 1 \
                     AND (r.kind = 'direct' OR m.user_id IN (SELECT value FROM json_each(?)))",
                )
                .bind(id.as_str())
                .bind(seq)
                .bind(due.millis())
                .bind(due.millis())
                .bind(p.now.millis())
                .bind(room_id.as_str())
                .bind(author_id.as_str())
                .bind(&mentions)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            }
            let message =
                load(conn, room_id, &id).await?.ok_or_else(|| Error::internal("message vanished"))?;
            Ok(Outcome::Created { message, created: true })
        }
        Command::Edit { room_id, message_id, author_id, body } => {
            let acc = access(conn, room_id, author_id).await?;
            if let Err(e) = acc.member() {
                return Ok(Outcome::Failed(e));
            }
            let Some(message) = load(conn, room_id, message_id).await?.filter(|m| !m.deleted) else {
                return Ok(Outcome::Failed(Error::NotFound("message not found".into())));
            };
            if &message.author.id != author_id {
                return Ok(Outcome::Failed(Error::Forbidden("only the author may edit a message".into())));
            }
            sqlx::query("UPDATE messages SET body = ?, html = ?, mentions = ?, edited_at = ? WHERE id = ?")
                .bind(body)
                .bind(&p.html)
                .bind(&mentions)
                .bind(p.now.millis())
                .bind(message_id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            let message =
                load(conn, room_id, message_id).await?.ok_or_else(|| Error::internal("message vanished"))?;
            Ok(Outcome::Edited { message })
        }
        Command::Delete { room_id, message_id, actor_id } => {
            let acc = access(conn, room_id, actor_id).await?;
            let role = match acc.member() {
                Ok(role) => role,
                Err(e) => return Ok(Outcome::Failed(e)),
            };
            let Some(message) = load(conn, room_id, message_id).await? else {
                return Ok(Outcome::Failed(Error::NotFound("message not found".into())));
            };
            if !permissions::can_delete_message(&message.author.id == actor_id, Some(role)) {
                return Ok(Outcome::Failed(Error::Forbidden(
                    "only the author or a room owner or admin may delete a message".into(),
                )));
            }
            if !message.deleted {
                sqlx::query(
                    "UPDATE messages SET body = '', html = '', mentions = '[]', deleted = 1, edited_at = ? WHERE id = ?",
                )
                .bind(p.now.millis())
                .bind(message_id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            }
            Ok(Outcome::Deleted {
                room_id: room_id.clone(),
                message_id: message_id.clone(),
                seq: message.seq,
            })
        }
    }
}

/// Turns the user's words into an FTS5 query: each word quoted (so no operator can be injected)
/// and matched as a prefix, all of them required.
fn fts_query(q: &str) -> Option<String> {
    let words: Vec<String> = rows::search_words(q).iter().map(|w| format!("\"{w}\"*")).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn apply(&self, batch: &[Prepared]) -> Result<Vec<Outcome>> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for p in batch {
            outcomes.push(apply_one(&mut tx, p).await?);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(outcomes)
    }

    async fn message(&self, room_id: &RoomId, id: &MessageId) -> Result<Option<Message>> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        load(&mut conn, room_id, id).await
    }

    async fn message_by_nonce(
        &self,
        room_id: &RoomId,
        author_id: &UserId,
        nonce: &str,
    ) -> Result<Option<Message>> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        by_nonce(&mut conn, room_id, author_id, nonce).await
    }

    async fn history(&self, room_id: &RoomId, page: Page, limit: i64) -> Result<(Vec<Message>, bool)> {
        let _timer = crate::ReadTimer::start("history");
        let fetch = limit + 1;
        let query = match page {
            Page::Latest => sqlx::query(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = ? \
                 AND m.seq < ? ORDER BY m.seq DESC LIMIT ?"
            ))
            .bind(room_id.as_str())
            .bind(i64::MAX),
            Page::Before(seq) => sqlx::query(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = ? \
                 AND m.seq < ? ORDER BY m.seq DESC LIMIT ?"
            ))
            .bind(room_id.as_str())
            .bind(seq),
            Page::After(seq) => sqlx::query(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = ? \
                 AND m.seq > ? ORDER BY m.seq ASC LIMIT ?"
            ))
            .bind(room_id.as_str())
            .bind(seq),
        };
        let found = query.bind(fetch).fetch_all(&self.reader).await.map_err(db_err)?;
        let mut messages = found.iter().map(rows::message).collect::<Result<Vec<_>>>()?;
        let has_more = messages.len() as i64 > limit;
        messages.truncate(limit as usize);
        if !matches!(page, Page::After(_)) {
            messages.reverse();
        }
        Ok((messages, has_more))
    }

    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        room_id: Option<&RoomId>,
        limit: i64,
    ) -> Result<Vec<Message>> {
        let _timer = crate::ReadTimer::start("search");
        let Some(fts) = fts_query(query) else { return Ok(Vec::new()) };
        let found = sqlx::query(concat!(
            "SELECT ",
            message_cols!(),
            " FROM messages_fts f JOIN messages m ON m.pk = f.rowid JOIN users u ON u.id = m.author_id \
             JOIN memberships mb ON mb.room_id = m.room_id AND mb.user_id = ? \
             WHERE messages_fts MATCH ? AND m.deleted = 0 AND (? IS NULL OR m.room_id = ?) \
             ORDER BY m.created_at DESC, m.pk DESC LIMIT ?"
        ))
        .bind(user_id.as_str())
        .bind(fts)
        .bind(room_id.map(RoomId::as_str))
        .bind(room_id.map(RoomId::as_str))
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        found.iter().map(rows::message).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn search_words_cannot_inject_fts_operators() {
        assert_eq!(fts_query("hello world").as_deref(), Some("\"hello\"* \"world\"*"));
        assert_eq!(fts_query("\" OR * NEAR(").as_deref(), Some("\"OR\"* \"NEAR\"*"));
        assert_eq!(fts_query("  ,,, "), None);
    }
}
