//! Messages in SQLite: the statements of a group-committed batch (`BatchDb`), multi-row with
//! `VALUES` lists. The rest of `MessageStore` is shared (`sql::messages`); its full-text search
//! (FTS5) is in `dialect`.

use super::{SqliteStore, db_err};
use crate::batch::{Access, NonceKey, OutboxJob};
use crate::rows;
use parlor_domain::model::Message;
use parlor_domain::{Error, MessageId, Result, RoomId, UserId};
use sqlx::{Row, SqliteConnection};

crate::sql::messages::message_store!(SqliteStore, SqliteConnection, writer: writer, reader: reader, db_err: db_err);

/// Most rows in one multi-row statement (10 parameters each; SQLite allows 32,766).
const ROWS_PER_INSERT: usize = 500;
/// Most keys or pairs looked up in one statement.
const KEYS_PER_SELECT: usize = 300;

crate::sql::messages::batch_db!(SqliteConnection, db_err: db_err, load: load, {
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

});
