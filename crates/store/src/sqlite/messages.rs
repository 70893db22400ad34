//! Message history in SQLite: group-committed batches of commands, history pages and full-text
//! search (FTS5).

use super::{SqliteStore, db_err};
use crate::rows;
use async_trait::async_trait;
use parlor_domain::model::{Message, Role, RoomKind, User, Visibility};
use parlor_domain::permissions;
use parlor_domain::ports::{MessageStore, Page, Prepared};
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{Error, MessageId, Result, RoomId, UserId};
use sqlx::{Row, SqliteConnection};
use std::collections::HashMap;

/// A room, the acting user's place in it and the user, read inside the batch's transaction.
#[derive(Clone)]
struct Access {
    kind: RoomKind,
    visibility: Visibility,
    role: Option<Role>,
    user: Option<User>,
}

/// What a batch has read once: membership cannot change while the batch's transaction holds the
/// only writer connection, so each (room, user) is looked up once per batch.
#[derive(Default)]
struct BatchCache {
    access: HashMap<(RoomId, UserId), Access>,
}

async fn access(
    conn: &mut SqliteConnection,
    cache: &mut BatchCache,
    room_id: &RoomId,
    user_id: &UserId,
) -> Result<Access> {
    let key = (room_id.clone(), user_id.clone());
    if let Some(found) = cache.access.get(&key) {
        return Ok(found.clone());
    }
    read_access(conn, cache, &[(room_id, user_id)]).await?;
    cache.access.get(&key).cloned().ok_or_else(|| Error::NotFound("room not found".into()))
}

/// Most (room, user) pairs read in one statement.
const PAIRS_PER_SELECT: usize = 400;

/// Reads the access of every pair not cached yet, in one statement per chunk. A pair whose room
/// does not exist stays out of the cache.
async fn read_access(
    conn: &mut SqliteConnection,
    cache: &mut BatchCache,
    pairs: &[(&RoomId, &UserId)],
) -> Result<()> {
    let mut missing: Vec<(&RoomId, &UserId)> = Vec::new();
    for &(room_id, user_id) in pairs {
        let key = (room_id.clone(), user_id.clone());
        if !cache.access.contains_key(&key) && !missing.contains(&(room_id, user_id)) {
            missing.push((room_id, user_id));
        }
    }
    for chunk in missing.chunks(PAIRS_PER_SELECT) {
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
        for row in query.fetch_all(&mut *conn).await.map_err(db_err)? {
            let kind: String = row.try_get("kind").map_err(db_err)?;
            let visibility: String = row.try_get("visibility").map_err(db_err)?;
            let role: Option<String> = row.try_get("role").map_err(db_err)?;
            let known: Option<String> = row.try_get("u_id").map_err(db_err)?;
            let room: String = row.try_get("k_room").map_err(db_err)?;
            let user: String = row.try_get("k_user").map_err(db_err)?;
            let found = Access {
                kind: if kind == "direct" { RoomKind::Direct } else { RoomKind::Group },
                visibility: if visibility == "public" { Visibility::Public } else { Visibility::Private },
                role: role.as_deref().map(rows::role).transpose()?,
                user: known.map(|_| rows::user_prefixed(&row)).transpose()?,
            };
            cache.access.insert((room.into(), user.into()), found);
        }
    }
    Ok(())
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

/// Most rows in one multi-row statement (10 parameters each; SQLite allows 32,766).
const ROWS_PER_INSERT: usize = 500;
/// Most (room, author, nonce) triples looked up in one statement.
const NONCES_PER_SELECT: usize = 300;

/// The messages already stored under some (room, author, nonce) triples, in one statement per
/// chunk.
async fn stored_by_nonces(
    conn: &mut SqliteConnection,
    keys: &[(&RoomId, &UserId, &str)],
) -> Result<HashMap<(RoomId, UserId, String), Message>> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(NONCES_PER_SELECT) {
        let terms = vec!["(m.room_id = ? AND m.author_id = ? AND m.nonce = ?)"; chunk.len()].join(" OR ");
        let sql = format!(
            "SELECT {} FROM messages m JOIN users u ON u.id = m.author_id WHERE {terms}",
            message_cols!()
        );
        // Built from constant fragments only; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (room_id, author_id, nonce) in chunk {
            query = query.bind(room_id.as_str()).bind(author_id.as_str()).bind(*nonce);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(db_err)? {
            let message = rows::message(&row)?;
            if let Some(nonce) = message.nonce.clone() {
                found.insert((message.room_id.clone(), message.author.id.clone(), nonce), message);
            }
        }
    }
    Ok(found)
}

/// Writes a run of consecutive creates of a batch with a handful of statements: one lookup of
/// the nonces already stored, one membership read per (room, author), one sequence allocation
/// per room, one multi-row insert per 500 messages (and the outbox rows of those that notify).
/// Each command ends the same as if it had been applied alone, in order.
async fn create_run(
    conn: &mut SqliteConnection,
    cache: &mut BatchCache,
    batch: &[Prepared],
    run: &[usize],
    outcomes: &mut [Option<Outcome>],
) -> Result<()> {
    if run.is_empty() {
        return Ok(());
    }
    let creates: Vec<(usize, &Prepared, Create<'_>)> =
        run.iter().filter_map(|&i| Create::of(&batch[i]).map(|c| (i, &batch[i], c))).collect();
    let keys: Vec<(&RoomId, &UserId, &str)> =
        creates.iter().filter_map(|(_, _, c)| c.nonce.map(|n| (c.room_id, c.author_id, n))).collect();
    let stored = if keys.is_empty() { HashMap::new() } else { stored_by_nonces(conn, &keys).await? };
    let pairs: Vec<(&RoomId, &UserId)> = creates.iter().map(|(_, _, c)| (c.room_id, c.author_id)).collect();
    read_access(conn, cache, &pairs).await?;

    // Which creates go in, in order; repeats of one of them in this run follow its fate.
    let mut accepted: Vec<(usize, &Prepared, Create<'_>, User)> = Vec::new();
    let mut first_of: HashMap<(&RoomId, &UserId, &str), usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (i, p, c) in creates {
        let acc = access(conn, cache, c.room_id, c.author_id).await?;
        if let Err(e) = acc.member() {
            outcomes[i] = Some(Outcome::Failed(e));
            continue;
        }
        if let Some(nonce) = c.nonce {
            let key = (c.room_id.clone(), c.author_id.clone(), nonce.to_owned());
            if let Some(first) = stored.get(&key) {
                outcomes[i] = Some(Outcome::Created { message: first.clone(), created: false });
                continue;
            }
            if let Some(&first) = first_of.get(&(c.room_id, c.author_id, nonce)) {
                repeats.push((i, first));
                continue;
            }
        }
        if let Some(reply_to) = c.reply_to {
            let exists = sqlx::query("SELECT 1 FROM messages WHERE room_id = ? AND id = ?")
                .bind(c.room_id.as_str())
                .bind(reply_to.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
            if exists.is_none() {
                outcomes[i] =
                    Some(Outcome::Failed(Error::validation("reply_to", "no such message in this room")));
                continue;
            }
        }
        let Some(author) = acc.user else {
            outcomes[i] = Some(Outcome::Failed(Error::NotFound("user not found".into())));
            continue;
        };
        if let Some(nonce) = c.nonce {
            first_of.insert((c.room_id, c.author_id, nonce), i);
        }
        accepted.push((i, p, c, author));
    }

    // One sequence allocation per room: the run's messages of a room take consecutive seqs.
    let mut per_room: Vec<(&RoomId, i64)> = Vec::new();
    for (_, _, c, _) in &accepted {
        match per_room.iter_mut().find(|(r, _)| *r == c.room_id) {
            Some((_, n)) => *n += 1,
            None => per_room.push((c.room_id, 1)),
        }
    }
    let mut next_seq: HashMap<RoomId, i64> = HashMap::new();
    for chunk in per_room.chunks(PAIRS_PER_SELECT) {
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
        for row in query.fetch_all(&mut *conn).await.map_err(db_err)? {
            let id: String = row.try_get("id").map_err(db_err)?;
            let last: i64 = row.try_get("last_seq").map_err(db_err)?;
            let n = chunk.iter().find(|(r, _)| r.as_str() == id).map_or(0, |(_, n)| *n);
            next_seq.insert(id.into(), last - n + 1);
        }
    }

    let mut written: HashMap<usize, Message> = HashMap::new();
    let mut rows: Vec<(usize, &Prepared, Message, String)> = Vec::with_capacity(accepted.len());
    for (i, p, c, author) in accepted {
        let seq = next_seq.get_mut(c.room_id).ok_or_else(|| Error::internal("no seq for a room"))?;
        let message = Message {
            id: MessageId::generate(),
            room_id: c.room_id.clone(),
            seq: *seq,
            author,
            body: c.body.to_owned(),
            html: p.html.clone(),
            mentions: p.mentions.clone(),
            reply_to: c.reply_to.cloned(),
            nonce: c.nonce.map(str::to_owned),
            created_at: p.now,
            edited_at: None,
            deleted: false,
        };
        *seq += 1;
        let mentions = serde_json::to_string(&p.mentions).map_err(Error::internal)?;
        rows.push((i, p, message, mentions));
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO messages (id, room_id, seq, author_id, body, html, mentions, reply_to, nonce, created_at) \
             VALUES {values}"
        );
        // Built from constant fragments only; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, _, m, mentions) in chunk {
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
        query.execute(&mut *conn).await.map_err(db_err)?;
    }
    for (i, p, message, mentions) in rows {
        if let Some(due) = p.notify_at {
            outbox(conn, &message, mentions.as_str(), due, p.now).await?;
        }
        written.insert(i, message.clone());
        outcomes[i] = Some(Outcome::Created { message, created: true });
    }
    for (i, first) in repeats {
        outcomes[i] = Some(match written.get(&first) {
            Some(message) => Outcome::Created { message: message.clone(), created: false },
            None => outcomes[first].clone().unwrap_or_else(|| Outcome::Failed(Error::internal("no outcome"))),
        });
    }
    Ok(())
}

/// The outbox: e-mails for the other member of a direct room and for mentioned members who have
/// an address and want e-mail, in the message's transaction.
async fn outbox(
    conn: &mut SqliteConnection,
    message: &Message,
    mentions: &str,
    due: parlor_domain::Timestamp,
    now: parlor_domain::Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO notification_jobs (recipient_id, room_id, message_id, seq, due_at, next_attempt_at, created_at) \
         SELECT m.user_id, m.room_id, ?, ?, ?, ?, ? FROM memberships m \
         JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id \
         WHERE m.room_id = ? AND m.user_id <> ? AND u.email IS NOT NULL AND u.email_notifications = 1 \
         AND (r.kind = 'direct' OR m.user_id IN (SELECT value FROM json_each(?)))",
    )
    .bind(message.id.as_str())
    .bind(message.seq)
    .bind(due.millis())
    .bind(due.millis())
    .bind(now.millis())
    .bind(message.room_id.as_str())
    .bind(message.author.id.as_str())
    .bind(mentions)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// The parts of a create command.
struct Create<'a> {
    room_id: &'a RoomId,
    author_id: &'a UserId,
    body: &'a str,
    nonce: Option<&'a str>,
    reply_to: Option<&'a MessageId>,
}

impl<'a> Create<'a> {
    fn of(p: &'a Prepared) -> Option<Self> {
        match &p.command {
            Command::Create { room_id, author_id, body, nonce, reply_to } => Some(Create {
                room_id,
                author_id,
                body,
                nonce: nonce.as_deref(),
                reply_to: reply_to.as_ref(),
            }),
            _ => None,
        }
    }
}

/// Applies one command inside the batch's transaction. Rule violations come back as
/// `Outcome::Failed` before anything is written; an `Err` aborts the whole batch.
async fn apply_one(conn: &mut SqliteConnection, cache: &mut BatchCache, p: &Prepared) -> Result<Outcome> {
    let mentions = serde_json::to_string(&p.mentions).map_err(Error::internal)?;
    match &p.command {
        // Creates are written in runs by `create_run`.
        Command::Create { .. } => Err(Error::internal("a create reached apply_one")),
        Command::Edit { room_id, message_id, author_id, body } => {
            let acc = access(conn, cache, room_id, author_id).await?;
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
            let acc = access(conn, cache, room_id, actor_id).await?;
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
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut cache = BatchCache::default();
        // Runs of consecutive creates are written together; an edit or delete waits for the
        // creates before it, so it sees them.
        let mut run = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            if matches!(p.command, Command::Create { .. }) {
                run.push(i);
                continue;
            }
            create_run(&mut tx, &mut cache, batch, &run, &mut outcomes).await?;
            run.clear();
            outcomes[i] = Some(apply_one(&mut tx, &mut cache, p).await?);
        }
        create_run(&mut tx, &mut cache, batch, &run, &mut outcomes).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Failed(Error::internal("no outcome for a command"))))
            .collect())
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
