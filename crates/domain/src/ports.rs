//! The ports: what the roles need from the world, each a trait with an embedded implementation
//! and (later) a distributed one, chosen once at start-up. Domain code names only these traits.
//!
//! Store methods answer with the domain's `Error`: `NotFound` and `Conflict` are the cases callers
//! branch on, `Unavailable` says the database is down, anything else is `Internal`.

use crate::bus::Envelope;
use crate::model::{Member, Message, OwnUser, Role, Room, SessionRecord, User, UserRecord, Visibility};
use crate::queue::{Command, Inbound, Outcome};
use crate::{MessageId, Result, RoomId, SessionId, Timestamp, UserId};
use async_trait::async_trait;
use std::sync::Arc;

/// A new account, hashes already made.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub phrase_hash: String,
    pub created_at: Timestamp,
}

/// A change to a profile; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
    /// `Some(None)` clears the address.
    pub email: Option<Option<String>>,
    pub email_notifications: Option<bool>,
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates an account; `Conflict` if the username is taken (case-insensitively).
    async fn create_user(&self, user: NewUser) -> Result<UserRecord>;
    /// An account by id.
    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>>;
    /// An account by username, case-insensitively.
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>>;
    /// The users with these usernames (case-insensitively); unknown names are left out.
    async fn users_by_usernames(&self, usernames: &[String]) -> Result<Vec<User>>;
    /// At most `limit` users whose username starts with `prefix`, by username.
    async fn search_users(&self, prefix: &str, limit: i64) -> Result<Vec<User>>;
    /// Changes the profile and returns the owner's view.
    async fn update_profile(&self, id: &UserId, patch: ProfilePatch) -> Result<OwnUser>;
    /// Replaces the password hash.
    async fn set_password_hash(&self, id: &UserId, hash: &str) -> Result<()>;
    /// Replaces the password and recovery-phrase hashes together.
    async fn set_credentials(&self, id: &UserId, password_hash: &str, phrase_hash: &str) -> Result<()>;
    /// Records when the user was last online.
    async fn set_last_seen(&self, id: &UserId, at: Timestamp) -> Result<()>;
    /// Disables the account as of `at` (an account already disabled keeps its earlier time), or
    /// enables it with `None`. Returns the account as it is now; `None` if there is no such one.
    async fn set_disabled(&self, id: &UserId, at: Option<Timestamp>) -> Result<Option<UserRecord>>;
}

/// The outcome of presenting a refresh token.
#[derive(Clone, Debug, PartialEq)]
pub enum Rotation {
    /// The token was current: it is now spent and the new one replaces it.
    Rotated { session_id: SessionId, user_id: UserId },
    /// The token had already been spent: the whole session has been revoked.
    Reused { session_id: SessionId, user_id: UserId },
    /// Unknown, expired, or of a revoked session.
    Invalid,
}

/// Login sessions and their refresh tokens (stored as hashes).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session with its first refresh token.
    async fn create_session(
        &self,
        session: SessionRecord,
        refresh_hash: &str,
        refresh_expires_at: Timestamp,
    ) -> Result<()>;
    /// A session by id, revoked or not.
    async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>>;
    /// The user's sessions that have not ended, newest first.
    async fn active_sessions(&self, user_id: &UserId) -> Result<Vec<SessionRecord>>;
    /// Spends `old_hash` and installs `new_hash`, or revokes the session if `old_hash` was spent.
    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: Timestamp,
        new_expires_at: Timestamp,
    ) -> Result<Rotation>;
    /// Notes that a session was used. Writes only when the recorded time is older than
    /// `TOUCH_EVERY_MS`: a burst of reconnections would otherwise queue a write each in front of
    /// the messages (the embedded store has one writer).
    async fn touch_session(&self, id: &SessionId, now: Timestamp) -> Result<()>;
    /// Ends a session; false if it had already ended or is unknown.
    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool>;
    /// Ends every session of a user but `except`; returns the ones ended.
    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        except: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>>;
    /// Sessions that ended at `since` or later, in the order they ended, at most `limit`: how a
    /// gateway learns of sessions ended by another process that could not tell it (a command).
    async fn sessions_ended_since(&self, since: Timestamp, limit: i64) -> Result<Vec<SessionRecord>>;
}

/// A new group room.
#[derive(Clone, Debug)]
pub struct NewRoom {
    pub id: RoomId,
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
    pub owner_id: UserId,
    pub created_at: Timestamp,
}

/// A room together with the caller's membership, if any.
#[derive(Clone, Debug)]
pub struct RoomAccess {
    pub room: Room,
    pub role: Option<Role>,
    /// The user's read marker, when a member.
    pub last_read_seq: Option<i64>,
}

/// Rooms, memberships and read markers.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Creates a group room with its owner as first member.
    async fn create_room(&self, room: NewRoom) -> Result<Room>;
    /// The direct room of two users, created on first call (`true` when created now).
    async fn direct_room(&self, a: &UserId, b: &UserId, now: Timestamp) -> Result<(Room, bool)>;
    /// A room and the user's role in it.
    async fn room_access(&self, room_id: &RoomId, user_id: &UserId) -> Result<Option<RoomAccess>>;
    /// The user's rooms, with read markers and unread counts.
    async fn user_rooms(&self, user_id: &UserId) -> Result<Vec<Room>>;
    /// Ids of the user's rooms.
    async fn user_room_ids(&self, user_id: &UserId) -> Result<Vec<RoomId>>;
    /// Public group rooms whose name contains `query` (all when empty), by name.
    async fn public_rooms(&self, query: &str, limit: i64) -> Result<Vec<Room>>;
    /// Changes the name and the topic (`Some(None)` clears the topic).
    async fn update_room(
        &self,
        room_id: &RoomId,
        name: Option<String>,
        topic: Option<Option<String>>,
    ) -> Result<Room>;
    /// The members of a room, owners first.
    async fn members(&self, room_id: &RoomId) -> Result<Vec<Member>>;
    /// Adds a member; `Conflict` if already one.
    async fn add_member(&self, room_id: &RoomId, user_id: &UserId, role: Role, now: Timestamp) -> Result<()>;
    /// Removes a member; false if they were not one.
    async fn remove_member(&self, room_id: &RoomId, user_id: &UserId) -> Result<bool>;
    /// Moves the read marker forward (never back, never past the last seq); returns where it is.
    async fn mark_read(&self, room_id: &RoomId, user_id: &UserId, seq: i64) -> Result<i64>;
}

/// A command ready to be applied: reviewed, with its rendering.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub command: Command,
    /// For creates and edits: the rendered body and the mentioned users.
    pub html: String,
    pub mentions: Vec<UserId>,
    pub now: Timestamp,
    /// When the unread-message e-mail of a new message falls due (for the other member of a
    /// direct room, and for mentioned members); `None`: no e-mail.
    pub notify_at: Option<Timestamp>,
}

/// How stale a session's `last_seen_at` may get before a use writes it again.
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// Which way a history page goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The newest messages.
    Latest,
    /// Messages with a seq below this one, newest of them.
    Before(i64),
    /// Messages with a seq above this one, oldest of them.
    After(i64),
}

/// Message history.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Applies commands in order in one transaction (group commit). Each gets its own outcome;
    /// a command that breaks a rule fails alone. An `Err` means nothing was committed.
    async fn apply(&self, batch: &[Prepared]) -> Result<Vec<Outcome>>;
    /// One message of a room.
    async fn message(&self, room_id: &RoomId, id: &MessageId) -> Result<Option<Message>>;
    /// The message an author sent to a room with this nonce, if any.
    async fn message_by_nonce(
        &self,
        room_id: &RoomId,
        author_id: &UserId,
        nonce: &str,
    ) -> Result<Option<Message>>;
    /// A page of history in ascending seq, and whether more exist in that direction.
    async fn history(&self, room_id: &RoomId, page: Page, limit: i64) -> Result<(Vec<Message>, bool)>;
    /// Full-text search in the user's rooms (or one of them), newest first.
    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        room_id: Option<&RoomId>,
        limit: i64,
    ) -> Result<Vec<Message>>;
}

/// An e-mail to send.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The same for every try of one digest, so a receiver can drop a repeat.
    pub message_id: String,
    /// The one-click unsubscribe address.
    pub unsubscribe_url: String,
}

/// Sends e-mail: over SMTP, or to the log in development.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one e-mail; `Unavailable` when the server cannot take it now.
    async fn send(&self, mail: &Mail) -> Result<()>;
}

/// The unread-message e-mail job as the worker's group commit writes it into the jobs table (the
/// outbox): the notifier's `UnreadEmail` job runs it under this name. Its payload is
/// `{"recipient", "room", "message"}`, its group the recipient, its dedupe key
/// `recipient:message`.
pub mod unread_email {
    /// The job's name in the jobs table.
    pub const NAME: &str = "unread_email";
    /// Tries before a digest is given up.
    pub const MAX_ATTEMPTS: i64 = 8;
}

/// A job to enqueue. The typed way in is `parlor_jobs::enqueue`, which fills this from a `Job`.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Which job runs it (`Job::NAME`).
    pub name: String,
    /// Its payload, JSON text.
    pub payload: String,
    /// A pending job of the same name and dedupe key makes this one a no-op.
    pub dedupe_key: Option<String>,
    /// Jobs of one group falling due within the job's window are claimed and run together.
    pub group_key: Option<String>,
    /// When it may run first.
    pub due: Timestamp,
    /// Tries before it is given up (the job keeps the limit it was enqueued with).
    pub max_attempts: i64,
    /// When it is enqueued.
    pub now: Timestamp,
}

/// What to claim: due jobs of one name, leased to one holder.
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    pub name: &'a str,
    pub now: Timestamp,
    /// Jobs with a group key come by group: a group with a job due at `now`, none of it held,
    /// comes with all its jobs due by `horizon`. Jobs without one come one by one.
    pub horizon: Timestamp,
    /// Most groups (and most single jobs) to claim.
    pub limit: i64,
    /// The claim's own name; each claimed group's lease token starts with it.
    pub holder: &'a str,
    /// When the lease runs out unless renewed.
    pub lease_until: Timestamp,
}

/// A claimed job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: i64,
    /// JSON text, as enqueued.
    pub payload: String,
    /// Tries already made.
    pub attempts: i64,
    pub max_attempts: i64,
}

/// Jobs claimed together under one lease: a group, or a single job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedGroup {
    /// The lease's token: every later call about these jobs presents it, and is refused (does
    /// nothing, answers 0) once another claim has taken them.
    pub lease: String,
    pub group_key: Option<String>,
    pub jobs: Vec<ClaimedJob>,
}

/// The durable job queue (`parlor-jobs` runs it). A job is pending until it is finished (then
/// deleted) or given up (kept as `failed`); a pending job is held while its lease runs. Every
/// call after the claim is guarded by the lease token and answers how many jobs it changed, so
/// a holder whose lease ran out and was taken over changes nothing.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Enqueues a job; `false` when a pending job of the same name and dedupe key made it a no-op.
    async fn enqueue(&self, job: NewJob) -> Result<bool>;
    /// Claims due jobs (see `Claim`), oldest first.
    async fn claim_jobs(&self, claim: Claim<'_>) -> Result<Vec<ClaimedGroup>>;
    /// Extends a lease to `until`.
    async fn renew_lease(&self, lease: &str, until: Timestamp) -> Result<u64>;
    /// Ends the jobs of a lease as done (they are deleted).
    async fn finish_jobs(&self, lease: &str) -> Result<u64>;
    /// Counts a failed try and makes the jobs due again at `due`, lease released.
    async fn retry_jobs(&self, lease: &str, due: Timestamp, error: &str) -> Result<u64>;
    /// Counts a failed try and gives the jobs up (state `failed`, kept with the error).
    async fn fail_jobs(&self, lease: &str, error: &str) -> Result<u64>;
    /// Releases a lease without counting a try (a runner stopping mid-job).
    async fn release_jobs(&self, lease: &str) -> Result<u64>;
    /// How many jobs are pending, held or not (for tests and metrics).
    async fn pending_jobs(&self) -> Result<i64>;
}

/// Everything the store keeps.
#[async_trait]
pub trait Store: UserStore + SessionStore + RoomStore + MessageStore + JobStore {
    /// `Ok` when the database answers.
    async fn ping(&self) -> Result<()>;
}

/// Durable, at-least-once hand-off of commands to the workers, partitioned by room
/// (`partition::partition_of`) so one room's commands are applied in the order they were queued.
///
/// Workers share the partitions: each `join`s the queue's membership, `beat`s every few hundred
/// milliseconds to learn who is alive, computes its share (`partition::assigned`), takes those
/// partitions with `try_consumer` and `release`s the others. The queue makes sure one worker at a
/// time consumes a partition (a lease, or the broker's single active consumer), so two workers
/// that briefly disagree on the membership cost a partition a pause, never its order.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Queues a command; `Unavailable` if it cannot be made durable.
    async fn push(&self, item: Inbound) -> Result<()>;
    /// How many partitions there are; each is consumed by one worker at a time.
    fn partitions(&self) -> usize;
    /// Joins the workers sharing this queue as `worker` (an id unique to one running worker).
    /// By default a worker is alone: the in-process queue has one.
    async fn join(&self, worker: &str) -> Result<Box<dyn Membership>> {
        Ok(Box::new(Alone(worker.to_owned())))
    }
    /// The consumer of a partition for `worker`, or `None` while another worker holds it.
    async fn try_consumer(&self, partition: usize, worker: &str) -> Result<Option<Box<dyn Consumer>>>;
    /// `Ok` when the queue's server answers.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
    /// How many commands wait in each partition, as far as the queue can tell cheaply (each
    /// adapter says what it counts); `None` when it cannot tell. For the queue-depth metric.
    async fn depths(&self) -> Result<Option<Vec<u64>>> {
        Ok(None)
    }
}

/// A worker's place among the workers sharing a queue.
#[async_trait]
pub trait Membership: Send {
    /// Says this worker is alive (until the queue's lease runs out without another beat) and
    /// answers the ids of the workers alive now, this one among them, in no particular order.
    async fn beat(&mut self) -> Result<Vec<String>>;
    /// Leaves at once, so the others take this worker's partitions without waiting for its
    /// membership to run out.
    async fn leave(self: Box<Self>);
}

/// The membership of a worker that has a queue to itself.
struct Alone(String);

#[async_trait]
impl Membership for Alone {
    async fn beat(&mut self) -> Result<Vec<String>> {
        Ok(vec![self.0.clone()])
    }

    async fn leave(self: Box<Self>) {}
}

/// A delivery from the queue, to be acknowledged once applied.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The queue's name for the delivery (a counter, a stream entry id, an AMQP delivery tag).
    pub tag: String,
    pub item: Inbound,
}

/// The reading end of one queue partition, held by one worker.
#[async_trait]
pub trait Consumer: Send {
    /// Waits a while for deliveries and returns up to `max`: an empty batch when none came in
    /// time (so the caller can look up), `None` once this consumer is done: the queue is closed
    /// and drained, or another worker took the partition (a lease that ran out).
    async fn next_batch(&mut self, max: usize) -> Option<Vec<Delivery>>;
    /// Acknowledges deliveries: they will not be delivered again.
    async fn ack(&mut self, tags: &[String]) -> Result<()>;
    /// Gives the partition up, so another worker can take it at once. Call it after the batch in
    /// hand is applied and acknowledged: deliveries not acknowledged go to the next holder.
    async fn release(self: Box<Self>);
}

/// Event fan-out to the gateways.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Publishes an envelope to its topic's subscribers, in order per topic.
    async fn publish(&self, envelope: Arc<Envelope>) -> Result<()>;
    /// A new subscriber: its control handle and the stream of what it receives.
    async fn subscriber(&self) -> Result<(Arc<dyn Subscriptions>, tokio_mpsc::Receiver<Arc<Envelope>>)>;
    /// `Ok` when the bus's server answers.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

/// The receiving end's topics.
#[async_trait]
pub trait Subscriptions: Send + Sync {
    /// Starts receiving a topic.
    async fn subscribe(&self, topic: crate::bus::Topic) -> Result<()>;
    /// Stops receiving a topic.
    async fn unsubscribe(&self, topic: crate::bus::Topic) -> Result<()>;
}

/// Who is online.
#[async_trait]
pub trait Presence: Send + Sync {
    /// A connection of the user opened; true if the user just came online.
    async fn connected(&self, user_id: &UserId) -> Result<bool>;
    /// A connection of the user closed; true if the user just went offline.
    async fn disconnected(&self, user_id: &UserId) -> Result<bool>;
    /// Whether each user is online.
    async fn online(&self, user_ids: &[UserId]) -> Result<Vec<bool>>;
    /// `Ok` when the presence server answers.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

/// What review decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Post it, with this rendering.
    Allow { html: String, mentions: Vec<UserId> },
    /// Refuse it.
    Reject { reason: crate::RejectReason, message: String },
}

/// A body to review.
#[derive(Clone, Debug)]
pub struct ReviewRequest {
    pub author_id: UserId,
    pub room_id: RoomId,
    pub body: String,
    /// The id that follows the request through every service's logs (the queued command's
    /// request id); may be empty.
    pub trace_id: String,
}

/// The moderation role: judges and renders message bodies.
#[async_trait]
pub trait Reviewer: Send + Sync {
    /// Reviews one body.
    async fn review(&self, request: ReviewRequest) -> Result<Verdict>;
}

/// The mpsc receiver type subscribers read from (tokio's, re-exported so adapters agree).
pub mod tokio_mpsc {
    pub use tokio::sync::mpsc::Receiver;
}
