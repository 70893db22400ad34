//! Message history in SQLite: group-committed batches of commands, history pages and full-text
//! search (FTS5).

use super::{SqliteStore, db_err};
use crate::batch::{self, Access, BatchDb, NonceKey, OutboxJob};
use crate::rows;
use async_trait::async_trait;
use parlor_domain::model::Message;
use parlor_domain::ports::{MessageStore, Page, Prepared};
use parlor_domain::queue::Outcome;
use parlor_domain::{Error, MessageId, Result, RoomId, Timestamp, UserId};
use sqlx::{Row, SqliteConnection};

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

/// Most rows in one multi-row statement (10 parameters each; SQLite allows 32,766).
const ROWS_PER_INSERT: usize = 500;
/// Most keys or pairs looked up in one statement.
const KEYS_PER_SELECT: usize = 300;

#[async_trait]
impl BatchDb for SqliteConnection {
    async fn read_access(&mut self, pairs: &[(RoomId, UserId)]) -> Result<Vec<((RoomId, UserId), Access)>> {
        let mut found = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(KEYS_PER_SELECT) {
            let values = vec!["(?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT k.column1 AS k_room, k.column2 AS k_user, r.kind, r.visibility, m.role, \
                 u.id AS u_id, u.username AS u_username, u.display_name AS u_display_name, \
                 u.created_at AS u_created_at FROM (VALUES {values}) k JOIN rooms r ON r.id = k.column1 \
                 LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = k.column2 \
                 LEFT JOIN users u ON u.id = k.column2"
            );
            // Built from constant fragments only; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (room_id, user_id) in chunk {
                query = query.bind(room_id.as_str()).bind(user_id.as_str());
            }
            for row in query.fetch_all(&mut *self).await.map_err(db_err)? {
                found.push(rows::access(&row)?);
            }
        }
        Ok(found)
    }

    async fn stored_by_nonces(&mut self, keys: &[NonceKey]) -> Result<Vec<Message>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(KEYS_PER_SELECT) {
            let terms = vec!["(m.room_id = ? AND m.author_id = ? AND m.nonce = ?)"; chunk.len()].join(" OR ");
            let sql = format!(
                "SELECT {} FROM messages m JOIN users u ON u.id = m.author_id WHERE {terms}",
                message_cols!()
            );
            // Built from constant fragments only; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (room_id, author_id, nonce) in chunk {
                query = query.bind(room_id.as_str()).bind(author_id.as_str()).bind(nonce.as_str());
            }
            for row in query.fetch_all(&mut *self).await.map_err(db_err)? {
                found.push(rows::message(&row)?);
            }
        }
        Ok(found)
    }

    async fn reply_exists(&mut self, room_id: &RoomId, id: &MessageId) -> Result<bool> {
        let found = sqlx::query("SELECT 1 FROM messages WHERE room_id = ? AND id = ?")
            .bind(room_id.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *self)
            .await
            .map_err(db_err)?;
        Ok(found.is_some())
    }

    async fn allocate_seqs(&mut self, counts: &[(RoomId, i64)]) -> Result<Vec<(RoomId, i64)>> {
        let mut last = Vec::with_capacity(counts.len());
        for chunk in counts.chunks(KEYS_PER_SELECT) {
            let cases = vec!["WHEN ? THEN ?"; chunk.len()].join(" ");
            let ids = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "UPDATE rooms SET last_seq = last_seq + CASE id {cases} END WHERE id IN ({ids}) \
                 RETURNING id, last_seq"
            );
            // Built from constant fragments only; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (room_id, n) in chunk {
                query = query.bind(room_id.as_str()).bind(*n);
            }
            for (room_id, _) in chunk {
                query = query.bind(room_id.as_str());
            }
            for row in query.fetch_all(&mut *self).await.map_err(db_err)? {
                let id: String = row.try_get("id").map_err(db_err)?;
                last.push((id.into(), row.try_get("last_seq").map_err(db_err)?));
            }
        }
        Ok(last)
    }

    async fn insert_messages(&mut self, messages: &[Message]) -> Result<()> {
        for chunk in messages.chunks(ROWS_PER_INSERT) {
            let mentions: Vec<String> = chunk
                .iter()
                .map(|m| serde_json::to_string(&m.mentions).map_err(Error::internal))
                .collect::<Result<_>>()?;
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO messages (id, room_id, seq, author_id, body, html, mentions, reply_to, nonce, created_at) \
                 VALUES {values}"
            );
            // Built from constant fragments only; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (m, mentions) in chunk.iter().zip(&mentions) {
                query = query
                    .bind(m.id.as_str())
                    .bind(m.room_id.as_str())
                    .bind(m.seq)
                    .bind(m.author.id.as_str())
                    .bind(m.body.as_str())
                    .bind(m.html.as_str())
                    .bind(mentions.as_str())
                    .bind(m.reply_to.as_ref().map(MessageId::as_str))
                    .bind(m.nonce.as_deref())
                    .bind(m.created_at.millis());
            }
            query.execute(&mut *self).await.map_err(db_err)?;
        }
        Ok(())
    }

    async fn outbox(&mut self, jobs: &[OutboxJob<'_>]) -> Result<()> {
        for chunk in jobs.chunks(ROWS_PER_INSERT) {
            let values = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "WITH j (message_id, due, created, room_id, author_id, mentions) AS (VALUES {values}) \
                 INSERT INTO jobs (name, payload, dedupe_key, group_key, due_at, max_attempts, created_at) \
                 SELECT ?, json_object('recipient', m.user_id, 'room', m.room_id, 'message', j.message_id), \
                 m.user_id || ':' || j.message_id, m.user_id, j.due, ?, j.created FROM j \
                 JOIN memberships m ON m.room_id = j.room_id \
                 JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id \
                 WHERE m.user_id <> j.author_id AND u.email IS NOT NULL AND u.email_notifications = 1 \
                 AND (r.kind = 'direct' OR m.user_id IN (SELECT value FROM json_each(j.mentions))) \
                 ON CONFLICT (name, dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING"
            );
            // Built from constant fragments only; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for job in chunk {
                let mentions = serde_json::to_string(&job.message.mentions).map_err(Error::internal)?;
                query = query
                    .bind(job.message.id.as_str())
                    .bind(job.due.millis())
                    .bind(job.now.millis())
                    .bind(job.message.room_id.as_str())
                    .bind(job.message.author.id.as_str())
                    .bind(mentions);
            }
            query = query
                .bind(parlor_domain::ports::unread_email::NAME)
                .bind(parlor_domain::ports::unread_email::MAX_ATTEMPTS);
            query.execute(&mut *self).await.map_err(db_err)?;
        }
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
        sqlx::query("UPDATE messages SET body = ?, html = ?, mentions = ?, edited_at = ? WHERE id = ?")
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
            "UPDATE messages SET body = '', html = '', mentions = '[]', deleted = 1, edited_at = ? WHERE id = ?",
        )
        .bind(at.millis())
        .bind(id.as_str())
        .execute(&mut *self)
        .await
        .map_err(db_err)?;
        Ok(())
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
        let outcomes = batch::apply_batch(&mut *tx, batch).await?;
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
