//! Applying a worker's batch, the same for every driver: runs of consecutive creates are written
//! with a handful of statements (one lookup of the nonces already stored, one access read per
//! (room, author), one sequence allocation per room, multi-row inserts), and each edit or delete
//! is applied after the creates before it. Every command ends as if it had been applied alone, in
//! order. A driver supplies the statements (`BatchDb`); a statement is a round trip (to SQLite's
//! thread, or to PostgreSQL over the network), so their number per message is what this saves.

use async_trait::async_trait;
use parlor_domain::model::{Message, Role, RoomKind, User, Visibility};
use parlor_domain::permissions;
use parlor_domain::ports::Prepared;
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{Error, MessageId, Result, RoomId, Timestamp, UserId};
use std::collections::HashMap;

/// A room, the acting user's place in it and the user, read inside the batch's transaction.
#[derive(Clone)]
pub(crate) struct Access {
    pub kind: RoomKind,
    pub visibility: Visibility,
    pub role: Option<Role>,
    pub user: Option<User>,
}

impl Access {
    /// The caller's role, or the error a non-member gets.
    pub fn member(&self) -> Result<Role> {
        self.role.ok_or_else(|| permissions::not_a_member(self.kind, self.visibility))
    }
}

/// Access already read in this batch: membership cannot change while the batch's transaction
/// runs (SQLite has one writer; in PostgreSQL a room belongs to one partition, so one batch).
pub(crate) type AccessCache = HashMap<(RoomId, UserId), Access>;

/// A (room, author, nonce) key.
pub(crate) type NonceKey = (RoomId, UserId, String);

/// A new message that may owe e-mail: one in a direct room or with mentions.
pub(crate) struct OutboxJob<'a> {
    pub message: &'a Message,
    pub due: Timestamp,
    pub now: Timestamp,
}

/// The statements a driver runs inside a batch's transaction.
#[async_trait]
pub(crate) trait BatchDb: Send {
    /// The access of each pair whose room exists.
    async fn read_access(&mut self, pairs: &[(RoomId, UserId)]) -> Result<Vec<((RoomId, UserId), Access)>>;
    /// The messages stored under any of these keys.
    async fn stored_by_nonces(&mut self, keys: &[NonceKey]) -> Result<Vec<Message>>;
    /// Whether a message of the room has this id.
    async fn reply_exists(&mut self, room_id: &RoomId, id: &MessageId) -> Result<bool>;
    /// Adds each count to its room's `last_seq`; answers each room's new `last_seq`.
    async fn allocate_seqs(&mut self, counts: &[(RoomId, i64)]) -> Result<Vec<(RoomId, i64)>>;
    /// Inserts new messages.
    async fn insert_messages(&mut self, messages: &[Message]) -> Result<()>;
    /// The outbox: for each new message, an `unread_email` job in the jobs table for the other
    /// member of a direct room and for each mentioned member who has an address and wants
    /// e-mail, due at `due` (grouped by recipient, deduplicated by recipient and message).
    async fn outbox(&mut self, jobs: &[OutboxJob<'_>]) -> Result<()>;
    /// A message of a room, deleted or not.
    async fn load_message(&mut self, room_id: &RoomId, id: &MessageId) -> Result<Option<Message>>;
    /// Replaces a message's text and marks it edited at `at`.
    async fn set_body(
        &mut self,
        id: &MessageId,
        body: &str,
        html: &str,
        mentions: &str,
        at: Timestamp,
    ) -> Result<()>;
    /// Empties a message and marks it deleted at `at`.
    async fn mark_deleted(&mut self, id: &MessageId, at: Timestamp) -> Result<()>;
}

/// The access of one pair, from the cache or read.
pub(crate) async fn access<D: BatchDb + ?Sized>(
    db: &mut D,
    cache: &mut AccessCache,
    room_id: &RoomId,
    user_id: &UserId,
) -> Result<Access> {
    let key = (room_id.clone(), user_id.clone());
    if !cache.contains_key(&key) {
        cache.extend(db.read_access(std::slice::from_ref(&key)).await?);
    }
    cache.get(&key).cloned().ok_or_else(|| Error::NotFound("room not found".into()))
}

/// Applies a batch inside the caller's transaction; the caller commits.
pub(crate) async fn apply_batch<D: BatchDb + ?Sized>(db: &mut D, batch: &[Prepared]) -> Result<Vec<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
    let mut cache = AccessCache::new();
    let mut run = Vec::new();
    for (i, p) in batch.iter().enumerate() {
        if matches!(p.command, Command::Create { .. }) {
            run.push(i);
            continue;
        }
        create_run(db, &mut cache, batch, &run, &mut outcomes).await?;
        run.clear();
        outcomes[i] = Some(apply_other(db, &mut cache, p).await?);
    }
    create_run(db, &mut cache, batch, &run, &mut outcomes).await?;
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Failed(Error::internal("no outcome for a command"))))
        .collect())
}

/// Applies an edit or a delete. Rule violations come back as `Outcome::Failed` before anything
/// is written; an `Err` aborts the whole batch.
async fn apply_other<D: BatchDb + ?Sized>(
    db: &mut D,
    cache: &mut AccessCache,
    p: &Prepared,
) -> Result<Outcome> {
    match &p.command {
        Command::Create { .. } => Err(Error::internal("a create reached apply_other")),
        Command::Edit { room_id, message_id, author_id, body } => {
            let acc = access(db, cache, room_id, author_id).await?;
            if let Err(e) = acc.member() {
                return Ok(Outcome::Failed(e));
            }
            let Some(message) = db.load_message(room_id, message_id).await?.filter(|m| !m.deleted) else {
                return Ok(Outcome::Failed(Error::NotFound("message not found".into())));
            };
            if &message.author.id != author_id {
                return Ok(Outcome::Failed(Error::Forbidden("only the author may edit a message".into())));
            }
            let mentions = serde_json::to_string(&p.mentions).map_err(Error::internal)?;
            db.set_body(message_id, body, &p.html, &mentions, p.now).await?;
            let message = db
                .load_message(room_id, message_id)
                .await?
                .ok_or_else(|| Error::internal("message vanished"))?;
            Ok(Outcome::Edited { message })
        }
        Command::Delete { room_id, message_id, actor_id } => {
            let acc = access(db, cache, room_id, actor_id).await?;
            let role = match acc.member() {
                Ok(role) => role,
                Err(e) => return Ok(Outcome::Failed(e)),
            };
            let Some(message) = db.load_message(room_id, message_id).await? else {
                return Ok(Outcome::Failed(Error::NotFound("message not found".into())));
            };
            if !permissions::can_delete_message(&message.author.id == actor_id, Some(role)) {
                return Ok(Outcome::Failed(Error::Forbidden(
                    "only the author or a room owner or admin may delete a message".into(),
                )));
            }
            if !message.deleted {
                db.mark_deleted(message_id, p.now).await?;
            }
            Ok(Outcome::Deleted {
                room_id: room_id.clone(),
                message_id: message_id.clone(),
                seq: message.seq,
            })
        }
    }
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

/// Writes a run of consecutive creates.
async fn create_run<D: BatchDb + ?Sized>(
    db: &mut D,
    cache: &mut AccessCache,
    batch: &[Prepared],
    run: &[usize],
    outcomes: &mut [Option<Outcome>],
) -> Result<()> {
    if run.is_empty() {
        return Ok(());
    }
    let creates: Vec<(usize, &Prepared, Create<'_>)> =
        run.iter().filter_map(|&i| Create::of(&batch[i]).map(|c| (i, &batch[i], c))).collect();
    let keys: Vec<NonceKey> = creates
        .iter()
        .filter_map(|(_, _, c)| c.nonce.map(|n| (c.room_id.clone(), c.author_id.clone(), n.to_owned())))
        .collect();
    let mut stored: HashMap<NonceKey, Message> = HashMap::new();
    if !keys.is_empty() {
        for message in db.stored_by_nonces(&keys).await? {
            if let Some(nonce) = message.nonce.clone() {
                stored.insert((message.room_id.clone(), message.author.id.clone(), nonce), message);
            }
        }
    }
    let mut missing: Vec<(RoomId, UserId)> = Vec::new();
    for (_, _, c) in &creates {
        let key = (c.room_id.clone(), c.author_id.clone());
        if !cache.contains_key(&key) && !missing.contains(&key) {
            missing.push(key);
        }
    }
    if !missing.is_empty() {
        cache.extend(db.read_access(&missing).await?);
    }

    // Which creates go in, in order; repeats of one of them in this run share its fate.
    let mut accepted: Vec<(usize, &Prepared, Create<'_>, User, RoomKind)> = Vec::new();
    let mut first_of: HashMap<(&RoomId, &UserId, &str), usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (i, p, c) in creates {
        let acc = access(db, cache, c.room_id, c.author_id).await?;
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
        if let Some(reply_to) = c.reply_to
            && !db.reply_exists(c.room_id, reply_to).await?
        {
            outcomes[i] =
                Some(Outcome::Failed(Error::validation("reply_to", "no such message in this room")));
            continue;
        }
        let Some(author) = acc.user else {
            outcomes[i] = Some(Outcome::Failed(Error::NotFound("user not found".into())));
            continue;
        };
        if let Some(nonce) = c.nonce {
            first_of.insert((c.room_id, c.author_id, nonce), i);
        }
        accepted.push((i, p, c, author, acc.kind));
    }
    if accepted.is_empty() {
        return finish_repeats(repeats, outcomes);
    }

    // One allocation per room: the run's messages of a room take consecutive seqs.
    let mut counts: Vec<(RoomId, i64)> = Vec::new();
    for (_, _, c, _, _) in &accepted {
        match counts.iter_mut().find(|(r, _)| r == c.room_id) {
            Some((_, n)) => *n += 1,
            None => counts.push((c.room_id.clone(), 1)),
        }
    }
    let mut next_seq: HashMap<RoomId, i64> = HashMap::new();
    for (room_id, last) in db.allocate_seqs(&counts).await? {
        let n = counts.iter().find(|(r, _)| *r == room_id).map_or(0, |(_, n)| *n);
        next_seq.insert(room_id, last - n + 1);
    }

    let mut rows: Vec<Message> = Vec::with_capacity(accepted.len());
    let mut written: Vec<(usize, &Prepared, RoomKind)> = Vec::with_capacity(accepted.len());
    for (i, p, c, author, kind) in accepted {
        let seq = next_seq.get_mut(c.room_id).ok_or_else(|| Error::internal("no seq for a room"))?;
        rows.push(Message {
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
        });
        written.push((i, p, kind));
        *seq += 1;
    }
    db.insert_messages(&rows).await?;
    // Only a direct message or a mention can owe anyone an e-mail.
    let jobs: Vec<OutboxJob<'_>> = written
        .iter()
        .zip(&rows)
        .filter(|((_, _, kind), m)| *kind == RoomKind::Direct || !m.mentions.is_empty())
        .filter_map(|((_, p, _), message)| p.notify_at.map(|due| OutboxJob { message, due, now: p.now }))
        .collect();
    if !jobs.is_empty() {
        db.outbox(&jobs).await?;
    }
    for ((i, _, _), message) in written.into_iter().zip(rows) {
        outcomes[i] = Some(Outcome::Created { message, created: true });
    }
    finish_repeats(repeats, outcomes)
}

/// A repeat gets the message its first wrote (as not created), or the first's failure.
fn finish_repeats(repeats: Vec<(usize, usize)>, outcomes: &mut [Option<Outcome>]) -> Result<()> {
    for (i, first) in repeats {
        outcomes[i] = Some(match outcomes[first].clone() {
            Some(Outcome::Created { message, .. }) => Outcome::Created { message, created: false },
            Some(other) => other,
            None => Outcome::Failed(Error::internal("no outcome")),
        });
    }
    Ok(())
}
