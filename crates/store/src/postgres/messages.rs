//! Message history in PostgreSQL: batches of commands in one transaction, history pages and
//! full-text search (`tsvector`).

use super::{PostgresStore, db_err};
use crate::batch::{self, Access, BatchDb, NonceKey, OutboxJob};
use crate::rows;
use async_trait::async_trait;
use parlor_domain::model::Message;
use parlor_domain::ports::{MessageStore, Page, Prepared};
use parlor_domain::queue::Outcome;
use parlor_domain::{Error, MessageId, Result, RoomId, Timestamp, UserId};
use sqlx::{PgConnection, Row};

async fn load(conn: &mut PgConnection, room_id: &RoomId, id: &MessageId) -> Result<Option<Message>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = $1 AND m.id = $2"
    ))
    .bind(room_id.as_str())
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(rows::message).transpose()
}

async fn by_nonce(
    conn: &mut PgConnection,
    room_id: &RoomId,
    author_id: &UserId,
    nonce: &str,
) -> Result<Option<Message>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m JOIN users u ON u.id = m.author_id \
         WHERE m.room_id = $1 AND m.author_id = $2 AND m.nonce = $3"
    ))
    .bind(room_id.as_str())
    .bind(author_id.as_str())
    .bind(nonce)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(rows::message).transpose()
}

#[async_trait]
impl BatchDb for PgConnection {
    async fn read_access(&mut self, pairs: &[(RoomId, UserId)]) -> Result<Vec<((RoomId, UserId), Access)>> {
        let rooms: Vec<&str> = pairs.iter().map(|(r, _)| r.as_str()).collect();
        let users: Vec<&str> = pairs.iter().map(|(_, u)| u.as_str()).collect();
        let found = sqlx::query(
            "SELECT k.room AS k_room, k.usr AS k_user, r.kind, r.visibility, m.role, \
             u.id AS u_id, u.username AS u_username, u.display_name AS u_display_name, \
             u.created_at AS u_created_at FROM UNNEST($1::text[], $2::text[]) AS k (room, usr) \
             JOIN rooms r ON r.id = k.room \
             LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = k.usr \
             LEFT JOIN users u ON u.id = k.usr",
        )
        .bind(rooms)
        .bind(users)
        .fetch_all(&mut *self)
        .await
        .map_err(db_err)?;
        found.iter().map(rows::access).collect()
    }

    async fn stored_by_nonces(&mut self, keys: &[NonceKey]) -> Result<Vec<Message>> {
        let rooms: Vec<&str> = keys.iter().map(|(r, _, _)| r.as_str()).collect();
        let authors: Vec<&str> = keys.iter().map(|(_, a, _)| a.as_str()).collect();
        let nonces: Vec<&str> = keys.iter().map(|(_, _, n)| n.as_str()).collect();
        let found = sqlx::query(concat!(
            "SELECT ",
            message_cols!(),
            " FROM UNNEST($1::text[], $2::text[], $3::text[]) AS k (room, author, nonce) \
             JOIN messages m ON m.room_id = k.room AND m.author_id = k.author AND m.nonce = k.nonce \
             JOIN users u ON u.id = m.author_id"
        ))
        .bind(rooms)
        .bind(authors)
        .bind(nonces)
        .fetch_all(&mut *self)
        .await
        .map_err(db_err)?;
        found.iter().map(rows::message).collect()
    }

    async fn reply_exists(&mut self, room_id: &RoomId, id: &MessageId) -> Result<bool> {
        let found = sqlx::query("SELECT 1 FROM messages WHERE room_id = $1 AND id = $2")
            .bind(room_id.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *self)
            .await
            .map_err(db_err)?;
        Ok(found.is_some())
    }

    async fn allocate_seqs(&mut self, counts: &[(RoomId, i64)]) -> Result<Vec<(RoomId, i64)>> {
        let rooms: Vec<&str> = counts.iter().map(|(r, _)| r.as_str()).collect();
        let ns: Vec<i64> = counts.iter().map(|(_, n)| *n).collect();
        let found = sqlx::query(
            "UPDATE rooms r SET last_seq = r.last_seq + k.n FROM UNNEST($1::text[], $2::bigint[]) AS k (id, n) \
             WHERE r.id = k.id RETURNING r.id, r.last_seq",
        )
        .bind(rooms)
        .bind(ns)
        .fetch_all(&mut *self)
        .await
        .map_err(db_err)?;
        found
            .iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(db_err)?;
                Ok((id.into(), row.try_get("last_seq").map_err(db_err)?))
            })
            .collect()
    }

    async fn insert_messages(&mut self, messages: &[Message]) -> Result<()> {
        let mentions: Vec<String> = messages
            .iter()
            .map(|m| serde_json::to_string(&m.mentions).map_err(Error::internal))
            .collect::<Result<_>>()?;
        sqlx::query(
            "INSERT INTO messages (id, room_id, seq, author_id, body, html, mentions, reply_to, nonce, created_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::bigint[])",
        )
        .bind(messages.iter().map(|m| m.id.as_str()).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.room_id.as_str()).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.seq).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.author.id.as_str()).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.html.as_str()).collect::<Vec<_>>())
        .bind(mentions)
        .bind(messages.iter().map(|m| m.reply_to.as_ref().map(MessageId::as_str)).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.nonce.as_deref()).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.created_at.millis()).collect::<Vec<_>>())
        .execute(&mut *self)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn outbox(&mut self, jobs: &[OutboxJob<'_>]) -> Result<()> {
        let ids: Vec<&str> = jobs.iter().map(|j| j.message.id.as_str()).collect();
        let dues: Vec<i64> = jobs.iter().map(|j| j.due.millis()).collect();
        let nows: Vec<i64> = jobs.iter().map(|j| j.now.millis()).collect();
        let rooms: Vec<&str> = jobs.iter().map(|j| j.message.room_id.as_str()).collect();
        let authors: Vec<&str> = jobs.iter().map(|j| j.message.author.id.as_str()).collect();
        let mentions: Vec<String> = jobs
            .iter()
            .map(|j| serde_json::to_string(&j.message.mentions).map_err(Error::internal))
            .collect::<Result<_>>()?;
        sqlx::query(
            "INSERT INTO jobs (name, payload, dedupe_key, group_key, due_at, max_attempts, created_at) \
             SELECT $7, json_build_object('recipient', m.user_id, 'room', m.room_id, 'message', j.message_id)::text, \
             m.user_id || ':' || j.message_id, m.user_id, j.due, $8, j.created \
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[]) \
                  AS j (message_id, due, created, room_id, author_id, mentions) \
             JOIN memberships m ON m.room_id = j.room_id \
             JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id \
             WHERE m.user_id <> j.author_id AND u.email IS NOT NULL AND u.email_notifications \
             AND (r.kind = 'direct' OR m.user_id IN (SELECT jsonb_array_elements_text(j.mentions::jsonb))) \
             ON CONFLICT (name, dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING",
        )
        .bind(ids)
        .bind(dues)
        .bind(nows)
        .bind(rooms)
        .bind(authors)
        .bind(mentions)
        .bind(parlor_domain::ports::unread_email::NAME)
        .bind(parlor_domain::ports::unread_email::MAX_ATTEMPTS)
        .execute(&mut *self)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn load_message(&mut self, room_id: &RoomId, id: &MessageId) -> Result<Option<Message>> {
        load(&mut *self, room_id, id).await
    }

    async fn set_body(
        &mut self,
        id: &MessageId,
        body: &str,
        html: &str,
        mentions: &str,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query("UPDATE messages SET body = $1, html = $2, mentions = $3, edited_at = $4 WHERE id = $5")
            .bind(body)
            .bind(html)
            .bind(mentions)
            .bind(at.millis())
            .bind(id.as_str())
            .execute(&mut *self)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn mark_deleted(&mut self, id: &MessageId, at: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE messages SET body = '', html = '', mentions = '[]', deleted = TRUE, edited_at = $1 WHERE id = $2",
        )
        .bind(at.millis())
        .bind(id.as_str())
        .execute(&mut *self)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

/// Turns the user's words into a `tsquery`: each word a prefix, all of them required. The words
/// hold only letters and digits, so no operator can be injected.
fn ts_query(q: &str) -> Option<String> {
    let words: Vec<String> =
        rows::search_words(q).iter().map(|w| format!("{}:*", w.to_lowercase())).collect();
    (!words.is_empty()).then(|| words.join(" & "))
}

#[async_trait]
impl MessageStore for PostgresStore {
    async fn apply(&self, batch: &[Prepared]) -> Result<Vec<Outcome>> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let outcomes = batch::apply_batch(&mut *tx, batch).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(outcomes)
    }

    async fn message(&self, room_id: &RoomId, id: &MessageId) -> Result<Option<Message>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        load(&mut conn, room_id, id).await
    }

    async fn message_by_nonce(
        &self,
        room_id: &RoomId,
        author_id: &UserId,
        nonce: &str,
    ) -> Result<Option<Message>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        by_nonce(&mut conn, room_id, author_id, nonce).await
    }

    async fn history(&self, room_id: &RoomId, page: Page, limit: i64) -> Result<(Vec<Message>, bool)> {
        let _timer = crate::ReadTimer::start("history");
        let fetch = limit + 1;
        let query = match page {
            Page::Latest => sqlx::query(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = $1 \
                 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
            ))
            .bind(room_id.as_str())
            .bind(i64::MAX),
            Page::Before(seq) => sqlx::query(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = $1 \
                 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
            ))
            .bind(room_id.as_str())
            .bind(seq),
            Page::After(seq) => sqlx::query(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = $1 \
                 AND m.seq > $2 ORDER BY m.seq ASC LIMIT $3"
            ))
            .bind(room_id.as_str())
            .bind(seq),
        };
        let found = query.bind(fetch).fetch_all(&self.pool).await.map_err(db_err)?;
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
        let Some(ts) = ts_query(query) else { return Ok(Vec::new()) };
        let found = sqlx::query(concat!(
            "SELECT ",
            message_cols!(),
            " FROM messages m JOIN users u ON u.id = m.author_id \
             JOIN memberships mb ON mb.room_id = m.room_id AND mb.user_id = $1 \
             WHERE m.search @@ to_tsquery('simple', $2) AND NOT m.deleted \
             AND ($3::text IS NULL OR m.room_id = $4) \
             ORDER BY m.created_at DESC, m.pk DESC LIMIT $5"
        ))
        .bind(user_id.as_str())
        .bind(ts)
        .bind(room_id.map(RoomId::as_str))
        .bind(room_id.map(RoomId::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        found.iter().map(rows::message).collect()
    }
}
