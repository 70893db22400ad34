//! Admission: the one place that decides whether a send, an edit or a delete may go to the queue,
//! and builds its command. Every edge (the WebSocket `send` frame, the REST routes, the gRPC
//! `Chat` service) calls these functions and only maps their error to its own shape, so a rule
//! about sending is written once.
//!
//! The steps, in this order: validate the input (cheap, no I/O), check the sender is a member of
//! the room, for an edit check the message is there and the sender's, then take one token from the
//! sender's bucket. Checks that can fail without I/O come first, and nothing that will be refused
//! anyway spends a token or reaches the worker, whose review counts repeats for the flood rule.

use crate::hub::Conn;
use crate::rooms::member_access;
use crate::state::AppState;
use parlor_domain::queue::Command;
use parlor_domain::{Error, MessageId, Result, RoomId, UserId, validate};

/// Who asks to write, which decides how membership is checked and whose bucket pays.
pub(crate) enum Sender<'a> {
    /// A user over REST.
    User(&'a UserId),
    /// A user over one of this gateway's WebSocket connections: membership comes from the hub's
    /// index when it knows the room, which saves a store read per frame.
    Connection(&'a Conn),
    /// A trusted integration (the gRPC `Chat` service, called with the service token) posting on
    /// behalf of `author`. It pays from the author's service bucket, not from the author's own.
    Service { author: &'a UserId },
}

impl Sender<'_> {
    /// The user the message is written as.
    fn author(&self) -> &UserId {
        match self {
            Sender::User(user) | Sender::Service { author: user } => user,
            Sender::Connection(conn) => &conn.user_id,
        }
    }

    /// Membership, from the hub's index when it knows, else from the store.
    pub(crate) async fn ensure_member(&self, state: &AppState, room_id: &RoomId) -> Result<()> {
        if let Sender::Connection(conn) = self
            && state.hub.in_room(conn, room_id)
        {
            return Ok(());
        }
        member_access(state, room_id, self.author()).await.map(|_| ())
    }

    /// Takes one write from the sender's bucket.
    fn take_token(&self, state: &AppState) -> Result<()> {
        match self {
            Sender::User(_) | Sender::Connection(_) => state.limits.send(self.author()),
            Sender::Service { author } => state.limits.service_send(author),
        }
    }
}

/// A new message as an edge received it.
pub(crate) struct SendRequest {
    pub room_id: RoomId,
    pub body: String,
    /// The client's idempotency key; required on the WebSocket, optional elsewhere.
    pub nonce: Option<String>,
    pub reply_to: Option<MessageId>,
}

/// Admits a new message: the `Create` command to queue, or why not.
pub(crate) async fn admit_send(state: &AppState, who: &Sender<'_>, request: SendRequest) -> Result<Command> {
    let SendRequest { room_id, body, nonce, reply_to } = request;
    validate::body(&body)?;
    if let Some(nonce) = &nonce {
        validate::nonce(nonce)?;
    }
    if let Some(reply_to) = &reply_to {
        validate::reply_to(reply_to.as_str())?;
    }
    who.ensure_member(state, &room_id).await?;
    who.take_token(state)?;
    Ok(Command::Create { room_id, author_id: who.author().clone(), body, nonce, reply_to })
}

/// Admits an edit of one of the sender's messages: the `Edit` command to queue, or why not.
///
/// The message is looked up here, before review: an edit of a message that is not there (or not
/// the sender's) is answered 404 (403) at once, instead of being reviewed first, where repeats of
/// it would feed the flood counter and end in `rejected`. The worker checks again when it applies
/// the edit, in the room's order, so a delete queued just before still wins.
pub(crate) async fn admit_edit(
    state: &AppState,
    who: &Sender<'_>,
    room_id: RoomId,
    message_id: MessageId,
    body: String,
) -> Result<Command> {
    validate::body(&body)?;
    who.ensure_member(state, &room_id).await?;
    let message = state
        .store
        .message(&room_id, &message_id)
        .await?
        .filter(|m| !m.deleted)
        .ok_or_else(|| Error::NotFound("message not found".into()))?;
    if &message.author.id != who.author() {
        return Err(Error::Forbidden("only the author may edit a message".into()));
    }
    who.take_token(state)?;
    Ok(Command::Edit { room_id, message_id, author_id: who.author().clone(), body })
}

/// Admits a delete: the `Delete` command to queue, or why not. Deletes are not reviewed and not
/// rate-limited (they only take away); the worker checks who may delete what.
pub(crate) async fn admit_delete(
    state: &AppState,
    who: &Sender<'_>,
    room_id: RoomId,
    message_id: MessageId,
) -> Result<Command> {
    who.ensure_member(state, &room_id).await?;
    Ok(Command::Delete { room_id, message_id, actor_id: who.author().clone() })
}
