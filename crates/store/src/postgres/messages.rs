//! Messages in PostgreSQL: the statements of a batch in one transaction (`BatchDb`), multi-row
//! with `UNNEST` of arrays. The rest of `MessageStore` is shared (`sql::messages`); its full-text
//! search (`tsvector`) is in `dialect`.

use super::{PostgresStore, db_err};
use crate::batch::{Access, NonceKey, OutboxJob};
use crate::rows;
use parlor_domain::model::Message;
use parlor_domain::{Error, MessageId, Result, RoomId, UserId};
use sqlx::{PgConnection, Row};

crate::sql::messages::message_store!(PostgresStore, PgConnection, writer: pool, reader: pool, db_err: db_err);

crate::sql::messages::batch_db!(PgConnection, db_err: db_err, load: load, {
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

});
