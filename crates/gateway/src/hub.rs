//! The hub: this gateway's WebSocket connections, indexed by user, session and room, and the
//! routing of bus envelopes to them. Fan-out takes the index lock (a plain mutex, never held
//! across an await), and pushes the event's one shared buffer into each recipient's bounded
//! queue; a recipient whose queue is full is a slow consumer and is closed with 1013.
//!
//! The hub subscribes the bus to a room's topic while at least one local connection is in the
//! room, and to a user's topic while the user has a local connection. Subscription changes are
//! made under an async lock, in the order the index changed, so the bus's view stays in step.

use crate::outbox::{Outbox, Refused};
use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use parlor_domain::bus::{BusEvent, Envelope, Topic};
use parlor_domain::ports::Subscriptions;
use parlor_domain::protocol::{ErrorEvent, ServerEvent};
use parlor_domain::{Error, RoomId, SessionId, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// Close codes the server uses.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// A browser's socket from an origin that is not allowed.
    pub const POLICY: u16 = 1008;
    /// A frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Slow consumer: too many frames queued; reconnect and `sync`.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Authentication failed, or the session ended.
    pub const UNAUTHORIZED: u16 = 4001;
    /// No frame for twice the heartbeat interval.
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
}

/// One local WebSocket connection, as the hub and its session task share it.
pub struct ConnInner {
    /// Unique within this gateway.
    pub id: u64,
    pub user_id: UserId,
    pub session_id: SessionId,
    /// Frames waiting to be written.
    pub outbox: Outbox,
    /// Cancelled when the connection must close.
    kill: CancellationToken,
    /// The close code to send; 0 until one is chosen.
    close_code: AtomicU16,
}

/// A cheap handle on a connection.
#[derive(Clone)]
pub struct Conn(pub Arc<ConnInner>);

impl std::ops::Deref for Conn {
    type Target = ConnInner;
    fn deref(&self) -> &ConnInner {
        &self.0
    }
}

impl Conn {
    /// Queues a frame without waiting. A full queue closes the connection (slow consumer).
    pub fn send(&self, frame: Utf8Bytes) -> bool {
        match self.outbox.try_push(frame) {
            Ok(()) => true,
            Err(Refused::Full) => {
                if self.close(close::TRY_AGAIN_LATER) {
                    metrics::counter!("parlor_slow_consumers_total").increment(1);
                    tracing::info!(conn = self.id, user_id = %self.user_id, "slow consumer closed");
                }
                false
            }
            Err(Refused::Closed) => false,
        }
    }

    /// Queues a frame, waiting for room (used by the connection's own replies, e.g. `sync`).
    pub async fn send_wait(&self, frame: Utf8Bytes) -> bool {
        let sent = tokio::select! {
            sent = self.outbox.push(frame) => sent,
            () = self.kill.cancelled() => false,
        };
        count_frames(frames::DIRECT, u64::from(sent));
        sent
    }

    /// Queues an event for this connection alone (an ack, an error, a pong).
    pub fn send_event(&self, event: &ServerEvent) -> bool {
        let sent = self.send(to_frame(event));
        count_frames(frames::DIRECT, u64::from(sent));
        sent
    }

    /// Queues an `error` event.
    pub fn send_error(&self, err: &Error, nonce: Option<String>) -> bool {
        self.send_event(&ServerEvent::Error(ErrorEvent::from_error(err, nonce)))
    }

    /// Asks the connection to close with `code`; the first code asked for wins. True if this call
    /// chose the code.
    pub fn close(&self, code: u16) -> bool {
        let chosen = self.close_code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok();
        self.kill.cancel();
        chosen
    }

    /// The close code chosen, if any.
    pub fn close_code(&self) -> Option<u16> {
        match self.close_code.load(Ordering::Acquire) {
            0 => None,
            c => Some(c),
        }
    }

    /// Resolves when the connection must close.
    pub fn killed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.kill.cancelled()
    }
}

/// The kinds of frame `parlor_frames_out_total{kind}` counts: every frame queued to a socket
/// (all but the `ready` frame and pings, which the session writes itself).
mod frames {
    /// Message events (created, updated, deleted) fanned out to a room: the messages out.
    pub const MESSAGE: &str = "message";
    /// Other fanned-out events: typing, read markers, membership, presence, profile changes.
    pub const EVENT: &str = "event";
    /// Frames for one connection: acks, errors, pongs, sync replies, session-ended notices.
    pub const DIRECT: &str = "direct";
}

fn count_frames(kind: &'static str, n: u64) {
    metrics::counter!("parlor_frames_out_total", "kind" => kind).increment(n);
}

/// An event as a frame.
pub fn to_frame(event: &ServerEvent) -> Utf8Bytes {
    bytes_to_frame(event.to_bytes())
}

/// Serialised JSON as a text frame.
pub fn bytes_to_frame(bytes: bytes::Bytes) -> Utf8Bytes {
    Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from_static("{}"))
}

#[derive(Default)]
struct Index {
    conns: HashMap<u64, Conn>,
    by_user: HashMap<UserId, Vec<u64>>,
    by_session: HashMap<SessionId, Vec<u64>>,
    by_room: HashMap<RoomId, Vec<u64>>,
    rooms_of: HashMap<u64, HashSet<RoomId>>,
}

impl Index {
    /// Puts a connection in a room; true if the room had no local connection before.
    fn enter(&mut self, conn: u64, room: &RoomId) -> bool {
        let rooms = self.rooms_of.entry(conn).or_default();
        if !rooms.insert(room.clone()) {
            return false;
        }
        let members = self.by_room.entry(room.clone()).or_default();
        members.push(conn);
        members.len() == 1
    }

    /// Takes a connection out of a room; true if the room has no local connection left.
    fn exit(&mut self, conn: u64, room: &RoomId) -> bool {
        if let Some(rooms) = self.rooms_of.get_mut(&conn) {
            rooms.remove(room);
        }
        match self.by_room.get_mut(room) {
            Some(members) => {
                members.retain(|c| *c != conn);
                if members.is_empty() {
                    self.by_room.remove(room);
                    true
                } else {
                    false
                }
            }
            None => false,
        }
    }

    fn user_conns(&self, user: &UserId) -> Vec<u64> {
        self.by_user.get(user).cloned().unwrap_or_default()
    }
}

/// The hub of local connections.
pub struct Hub {
    index: Mutex<Index>,
    subs: Arc<dyn Subscriptions>,
    /// Serialises subscription changes with the index changes that caused them.
    sub_lock: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    /// This gateway's id, to name connections across the bus.
    gateway_id: String,
}

impl Hub {
    /// An empty hub over a bus subscriber.
    pub fn new(subs: Arc<dyn Subscriptions>, gateway_id: String) -> Self {
        Self {
            index: Mutex::new(Index::default()),
            subs,
            sub_lock: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            gateway_id,
        }
    }

    /// The name of a connection across the bus.
    pub fn conn_key(&self, conn: &Conn) -> String {
        format!("{}:{}", self.gateway_id, conn.id)
    }

    async fn apply(&self, subscribe: Vec<Topic>, unsubscribe: Vec<Topic>) {
        for topic in subscribe {
            if let Err(e) = self.subs.subscribe(topic).await {
                tracing::error!(error = %e, "bus subscribe failed");
            }
        }
        for topic in unsubscribe {
            if let Err(e) = self.subs.unsubscribe(topic).await {
                tracing::error!(error = %e, "bus unsubscribe failed");
            }
        }
    }

    /// Adds a connection in `rooms`, with a queue of `capacity` frames; returns its handle.
    pub async fn register(
        &self,
        user_id: UserId,
        session_id: SessionId,
        rooms: &[RoomId],
        capacity: usize,
    ) -> Conn {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Conn(Arc::new(ConnInner {
            id,
            user_id: user_id.clone(),
            session_id: session_id.clone(),
            outbox: Outbox::new(capacity.max(16)),
            kill: CancellationToken::new(),
            close_code: AtomicU16::new(0),
        }));
        let _order = self.sub_lock.lock().await;
        let mut subscribe = Vec::new();
        {
            let mut ix = self.index.lock();
            ix.conns.insert(id, conn.clone());
            let user_conns = ix.by_user.entry(user_id.clone()).or_default();
            user_conns.push(id);
            if user_conns.len() == 1 {
                subscribe.push(Topic::User(user_id));
            }
            ix.by_session.entry(session_id).or_default().push(id);
            ix.rooms_of.insert(id, HashSet::new());
            for room in rooms {
                if ix.enter(id, room) {
                    subscribe.push(Topic::Room(room.clone()));
                }
            }
        }
        self.apply(subscribe, Vec::new()).await;
        metrics::gauge!("parlor_connections_open").increment(1.0);
        conn
    }

    /// Puts a connection in more rooms (rooms found after it registered).
    pub async fn enter_rooms(&self, conn: &Conn, rooms: &[RoomId]) {
        let _order = self.sub_lock.lock().await;
        let subscribe: Vec<Topic> = {
            let mut ix = self.index.lock();
            if !ix.conns.contains_key(&conn.id) {
                return;
            }
            rooms.iter().filter(|r| ix.enter(conn.id, r)).map(|r| Topic::Room(r.clone())).collect()
        };
        self.apply(subscribe, Vec::new()).await;
    }

    /// Removes a connection.
    pub async fn unregister(&self, conn: &Conn) {
        let _order = self.sub_lock.lock().await;
        let mut unsubscribe = Vec::new();
        {
            let mut ix = self.index.lock();
            if ix.conns.remove(&conn.id).is_none() {
                return;
            }
            metrics::gauge!("parlor_connections_open").decrement(1.0);
            let rooms = ix.rooms_of.get(&conn.id).cloned().unwrap_or_default();
            for room in rooms {
                if ix.exit(conn.id, &room) {
                    unsubscribe.push(Topic::Room(room));
                }
            }
            ix.rooms_of.remove(&conn.id);
            if let Some(list) = ix.by_user.get_mut(&conn.user_id) {
                list.retain(|c| *c != conn.id);
                if list.is_empty() {
                    ix.by_user.remove(&conn.user_id);
                    unsubscribe.push(Topic::User(conn.user_id.clone()));
                }
            }
            if let Some(list) = ix.by_session.get_mut(&conn.session_id) {
                list.retain(|c| *c != conn.id);
                if list.is_empty() {
                    ix.by_session.remove(&conn.session_id);
                }
            }
        }
        self.apply(Vec::new(), unsubscribe).await;
    }

    /// Whether a connection is known to be in a room.
    pub fn in_room(&self, conn: &Conn, room: &RoomId) -> bool {
        self.index.lock().rooms_of.get(&conn.id).is_some_and(|r| r.contains(room))
    }

    /// How many connections are open here.
    pub fn connection_count(&self) -> usize {
        self.index.lock().conns.len()
    }

    /// Closes every connection with `code` (shutdown).
    pub fn close_all(&self, code: u16) {
        let conns: Vec<Conn> = self.index.lock().conns.values().cloned().collect();
        for conn in conns {
            conn.close(code);
        }
    }

    /// Routes an envelope from the bus to local connections.
    pub async fn dispatch(&self, envelope: &Envelope) {
        match &envelope.event {
            BusEvent::Message { room_id, frame, .. } => {
                let frame = bytes_to_frame(frame.0.clone());
                let ix = self.index.lock();
                let mut delivered = 0u64;
                for id in ix.by_room.get(room_id).into_iter().flatten() {
                    if let Some(conn) = ix.conns.get(id) {
                        delivered += u64::from(conn.send(frame.clone()));
                    }
                }
                metrics::histogram!("parlor_fanout_size").record(delivered as f64);
                count_frames(frames::MESSAGE, delivered);
            }
            BusEvent::RoomEvent { room_id, except_user, frame } => {
                let frame = bytes_to_frame(frame.0.clone());
                let ix = self.index.lock();
                let mut delivered = 0u64;
                for id in ix.by_room.get(room_id).into_iter().flatten() {
                    if let Some(conn) = ix.conns.get(id).filter(|c| Some(&c.user_id) != except_user.as_ref())
                    {
                        delivered += u64::from(conn.send(frame.clone()));
                    }
                }
                count_frames(frames::EVENT, delivered);
            }
            BusEvent::MemberJoined { room_id, user_id, frame }
            | BusEvent::MemberLeft { room_id, user_id, frame } => {
                let joined = matches!(envelope.event, BusEvent::MemberJoined { .. });
                let frame = bytes_to_frame(frame.0.clone());
                if let Topic::User(_) = envelope.topic {
                    self.membership_changed(user_id, room_id, joined, frame).await;
                } else {
                    // The member's own connections hear of it on their user topic.
                    let ix = self.index.lock();
                    let mut delivered = 0u64;
                    for id in ix.by_room.get(room_id).into_iter().flatten() {
                        if let Some(conn) = ix.conns.get(id).filter(|c| &c.user_id != user_id) {
                            delivered += u64::from(conn.send(frame.clone()));
                        }
                    }
                    count_frames(frames::EVENT, delivered);
                }
            }
            BusEvent::UserEvent { user_id, except_connection, frame } => {
                let frame = bytes_to_frame(frame.0.clone());
                let ix = self.index.lock();
                let mut delivered = 0u64;
                for id in ix.by_user.get(user_id).into_iter().flatten() {
                    if let Some(conn) = ix.conns.get(id)
                        && except_connection.as_deref() != Some(self.conn_key(conn).as_str())
                    {
                        delivered += u64::from(conn.send(frame.clone()));
                    }
                }
                count_frames(frames::EVENT, delivered);
            }
            BusEvent::Presence { user_id, rooms, frame } => {
                let frame = bytes_to_frame(frame.0.clone());
                let ix = self.index.lock();
                let mut seen = HashSet::new();
                let mut delivered = 0u64;
                for room in rooms {
                    for id in ix.by_room.get(room).into_iter().flatten() {
                        if let Some(conn) = ix.conns.get(id).filter(|c| &c.user_id != user_id)
                            && seen.insert(*id)
                        {
                            delivered += u64::from(conn.send(frame.clone()));
                        }
                    }
                }
                count_frames(frames::EVENT, delivered);
            }
            BusEvent::SessionsEnded { session_ids, .. } => {
                let ended = Error::Unauthorized("the session has ended".into());
                let conns: Vec<Conn> = {
                    let ix = self.index.lock();
                    session_ids
                        .iter()
                        .flat_map(|s| ix.by_session.get(s).cloned().unwrap_or_default())
                        .filter_map(|id| ix.conns.get(&id).cloned())
                        .collect()
                };
                for conn in conns {
                    conn.send_error(&ended, None);
                    conn.close(close::UNAUTHORIZED);
                }
            }
            // Replies are taken by the pending table before the hub sees the envelope.
            BusEvent::Reply { .. } => {}
        }
    }

    /// A user joined or left a room: their local connections enter or leave it, and get the event.
    async fn membership_changed(&self, user_id: &UserId, room_id: &RoomId, joined: bool, frame: Utf8Bytes) {
        let _order = self.sub_lock.lock().await;
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        {
            let mut ix = self.index.lock();
            let mut delivered = 0u64;
            for id in ix.user_conns(user_id) {
                if let Some(conn) = ix.conns.get(&id).cloned() {
                    delivered += u64::from(conn.send(frame.clone()));
                }
                if joined {
                    if ix.enter(id, room_id) {
                        subscribe.push(Topic::Room(room_id.clone()));
                    }
                } else if ix.exit(id, room_id) {
                    unsubscribe.push(Topic::Room(room_id.clone()));
                }
            }
            count_frames(frames::EVENT, delivered);
        }
        self.apply(subscribe, unsubscribe).await;
    }
}
