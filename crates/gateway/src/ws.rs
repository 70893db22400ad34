//! `GET /api/v1/ws`: the WebSocket session. After authentication (header or first frame) the
//! connection joins the hub and gets `ready`; then one task per connection parses and applies
//! client frames, drains the connection's outbox to the socket in bursts (one flush per burst),
//! and pings on the heartbeat.

use crate::admission::{SendRequest, Sender, admit_send};
use crate::error::ApiError;
use crate::events;
use crate::extract::bearer;
use crate::hub::{Conn, close, to_frame};
use crate::pending::{Waiter, submit};
use crate::rooms::member_access;
use crate::state::AppState;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use parlor_domain::model::PresenceStatus;
use parlor_domain::ports::Page;
use parlor_domain::protocol::{ClientFrame, ErrorEvent, ServerEvent};
use parlor_domain::validate::{self, MAX_PAYLOAD_BYTES};
use parlor_domain::{Error, MessageId, RoomId, Timestamp};
use parlor_users::Authenticated;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Frames larger than this are refused by the WebSocket layer itself; frames between the
/// contract's 64 KiB and this are read and refused by the session, with close code 1009.
const HARD_FRAME_LIMIT: usize = 1024 * 1024;
/// Bytes read from the socket at a time. tungstenite's default (128 KiB) is zero-filled on the
/// first read and stays resident for the life of the connection; client frames are a few hundred
/// bytes, and a larger one gets room reserved for its whole length anyway.
const READ_BUFFER: usize = 512;
/// Most messages `sync` sends for one room.
const SYNC_ROOM_LIMIT: i64 = 500;
/// Most rooms one `sync` may name.
const SYNC_MAX_ROOMS: usize = 1000;
/// Most frames written between two flushes.
const BURST: usize = 256;

/// Upgrades the request. The upgrade always succeeds (the contract says so); a browser's socket
/// from a foreign origin then gets `error` `forbidden` and a close with 1008 before it can
/// authenticate, and anyone else's authentication follows on the socket.
#[utoipa::path(
    get, path = "/ws", tag = "realtime",
    description = "Authenticate with an `Authorization: Bearer` header on the upgrade, or with an `auth` \
                   frame first; frames are described in docs/api.md.",
    security((), ("bearer" = [])),
    responses(
        (status = 101, description = "switching to the WebSocket protocol; frames as in docs/api.md"),
        crate::openapi::InvalidRequest,
        crate::openapi::Unavailable
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let foreign = !crate::security::origin_allowed(&headers, &state.settings.cors_origins);
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError(Error::invalid("this endpoint expects a WebSocket upgrade")).into_response();
        }
    };
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        return ApiError(Error::Unavailable("too many connections; try again later".into())).into_response();
    };
    let header_token = bearer(&headers).map(str::to_owned);
    let sessions = state.sessions.clone();
    // The connection's lines carry the upgrade request's id.
    let span = tracing::Span::current();
    let ws =
        ws.max_message_size(HARD_FRAME_LIMIT).max_frame_size(HARD_FRAME_LIMIT).read_buffer_size(READ_BUFFER);
    ws.on_upgrade(move |socket| {
        sessions.track(
            async move {
                if foreign {
                    let mut socket = socket;
                    refuse(&mut socket, &crate::security::foreign_origin(), close::POLICY).await;
                } else {
                    session(socket, state, header_token).await;
                }
                drop(permit);
            }
            .instrument(span),
        )
    })
}

fn close_message(code: u16) -> Message {
    let reason = match code {
        close::GOING_AWAY => "server shutting down",
        close::TOO_BIG => "frame too large",
        close::TRY_AGAIN_LATER => "too slow: reconnect and sync",
        close::UNAUTHORIZED => "unauthorized",
        close::HEARTBEAT_TIMEOUT => "heartbeat timeout",
        close::POLICY => "origin not allowed",
        _ => "",
    };
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))
}

/// Sends an `error` frame and a close, giving up after a second.
async fn refuse<S: Socket>(socket: &mut S, e: &Error, code: u16) {
    let frame = to_frame(&ServerEvent::Error(ErrorEvent::from_error(e, None)));
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        socket.send(Message::Text(frame)).await?;
        socket.send(close_message(code)).await
    })
    .await;
}

/// A WebSocket as the session uses it: axum's `WebSocket`, or in tests a pair of channels.
pub(crate) trait Socket:
    Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin + Send
{
}

impl<T> Socket for T where
    T: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin + Send
{
}

/// Serves one upgraded connection to its end: authentication, `ready`, the frames, the goodbye.
pub(crate) async fn session<S: Socket>(mut socket: S, state: AppState, header_token: Option<String>) {
    // Transient steps are boxed: a connection's task keeps the size of its largest state for
    // its whole life, and an idle connection only needs the serving loop's.
    let auth = match Box::pin(authenticate(&state, header_token, &mut socket)).await {
        Ok(auth) => auth,
        Err(e) => {
            let code = if matches!(e, Error::Unauthorized(_)) { close::UNAUTHORIZED } else { 1011 };
            refuse(&mut socket, &e, code).await;
            return;
        }
    };
    let room_ids = match state.store.user_room_ids(&auth.user_id).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot load rooms for a new connection");
            refuse(&mut socket, &e, 1011).await;
            return;
        }
    };
    let conn = state
        .hub
        .register(auth.user_id.clone(), auth.session_id.clone(), &room_ids, state.settings.outbound_buffer)
        .await;
    tracing::info!(conn = conn.id, user_id = %auth.user_id, "connection open");
    if Box::pin(greet(&state, &conn, &auth, &mut socket)).await {
        serve(&state, &conn, &mut socket).await;
        conn.close(close::NORMAL);
        Box::pin(say_goodbye(&conn, &mut socket)).await;
    }
    conn.outbox.close();
    state.hub.unregister(&conn).await;
    // Record the time first, so that nobody sees the user offline with an older last_seen_at.
    let now = Timestamp::now();
    if let Err(e) = state.store.set_last_seen(&auth.user_id, now).await {
        tracing::warn!(error = %e, "could not record last seen");
    }
    if state.presence.disconnected(&auth.user_id).await.unwrap_or(false) {
        let rooms = state.store.user_room_ids(&auth.user_id).await.unwrap_or_default();
        events::presence(&state, &auth.user_id, PresenceStatus::Offline, Some(now), rooms).await;
    }
    tracing::info!(conn = conn.id, code = ?conn.close_code(), "connection closed");
}

/// Authenticates by the header token, or else by an `auth` first frame within the time allowed.
async fn authenticate<S: Socket>(
    state: &AppState,
    header_token: Option<String>,
    socket: &mut S,
) -> Result<Authenticated, Error> {
    if let Some(token) = header_token {
        return state.authenticator.authenticate(&token).await;
    }
    let unauthorized = |m: &str| Error::Unauthorized(m.to_owned());
    let first = tokio::time::timeout(state.settings.ws_auth_timeout, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => return Some(t),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    })
    .await
    .map_err(|_| unauthorized("no authentication in time"))?
    .ok_or_else(|| unauthorized("expected an auth frame"))?;
    match serde_json::from_str::<ClientFrame>(&first) {
        Ok(ClientFrame::Auth { token }) => state.authenticator.authenticate(&token).await,
        _ => Err(unauthorized("the first frame must be {\"type\":\"auth\",\"token\":...}")),
    }
}

/// Sends `ready` with the user and their rooms, and announces the user online. False if the
/// connection cannot go on.
async fn greet<S: Socket>(state: &AppState, conn: &Conn, auth: &Authenticated, socket: &mut S) -> bool {
    let ready = async {
        let user = state
            .store
            .user_by_id(&auth.user_id)
            .await?
            .ok_or_else(|| Error::Unauthorized("unknown user".into()))?;
        let rooms = state.store.user_rooms(&auth.user_id).await?;
        Ok::<_, Error>((user.user, rooms))
    };
    let (user, rooms) = match ready.await {
        Ok(r) => r,
        Err(e) => {
            refuse(socket, &e, 1011).await;
            return false;
        }
    };
    let room_ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
    // Rooms joined between the index and the snapshot.
    state.hub.enter_rooms(conn, &room_ids).await;
    let ready = ServerEvent::Ready {
        session_id: auth.session_id.clone(),
        user,
        rooms,
        heartbeat_ms: state.settings.heartbeat.as_millis() as u64,
    };
    if socket.send(Message::Text(to_frame(&ready))).await.is_err() {
        return false;
    }
    if state.presence.connected(&auth.user_id).await.unwrap_or(false) {
        events::presence(state, &auth.user_id, PresenceStatus::Online, Some(Timestamp::now()), room_ids)
            .await;
    }
    if let Err(e) = state.accounts.touch(auth).await {
        tracing::debug!(error = %e, "could not touch the session");
    }
    true
}

/// One task serves the connection: it reads and applies client frames one at a time, writes
/// queued frames in bursts with one flush per burst (also while a frame is being applied, so a
/// reply waiting for room in the queue is never stuck), pings every heartbeat, and closes the
/// connection after two heartbeats without a frame from the client.
async fn serve<S: Socket>(state: &AppState, conn: &Conn, socket: &mut S) {
    let heartbeat = state.settings.heartbeat;
    let mut last_heard = Instant::now();
    let mut next_ping = last_heard + heartbeat;
    let timer = tokio::time::sleep_until(next_ping);
    tokio::pin!(timer);
    let mut rearm = false;
    let mut applying: Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = None;
    loop {
        tokio::select! {
            biased;
            () = conn.killed() => return,
            () = state.shutdown.cancelled() => {
                conn.close(close::GOING_AWAY);
                return;
            }
            () = conn.outbox.ready() => {
                if !guarded(conn, write_burst(socket, conn)).await {
                    return;
                }
            }
            () = async { if let Some(f) = applying.as_mut() { f.await } }, if applying.is_some() => {
                applying = None;
                last_heard = Instant::now();
            }
            next = socket.next(), if applying.is_none() => {
                last_heard = Instant::now();
                match next {
                    None => return,
                    Some(Err(e)) => {
                        // tungstenite reports frames over its hard limit as a capacity error.
                        if e.to_string().contains("Space limit exceeded") {
                            conn.close(close::TOO_BIG);
                        }
                        return;
                    }
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > MAX_PAYLOAD_BYTES {
                            conn.close(close::TOO_BIG);
                            return;
                        }
                        applying = Some(Box::pin(async move { handle(state, conn, text.as_str()).await }));
                    }
                    Some(Ok(Message::Binary(data))) => {
                        if data.len() > MAX_PAYLOAD_BYTES {
                            conn.close(close::TOO_BIG);
                            return;
                        }
                        conn.send_error(
                            &Error::invalid("binary frames are not supported; send JSON text frames"),
                            None,
                        );
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) => return,
                }
            }
            () = &mut timer => {
                rearm = true;
                let now = Instant::now();
                if applying.is_some() {
                    // The client is waiting on us, not the other way round.
                    last_heard = now;
                }
                if now >= last_heard + heartbeat * 2 {
                    conn.close(close::HEARTBEAT_TIMEOUT);
                    return;
                }
                if now >= next_ping {
                    if !guarded(conn, socket.send(Message::Ping(Default::default()))).await {
                        return;
                    }
                    next_ping = now + heartbeat;
                }
            }
        }
        let deadline = next_ping.min(last_heard + heartbeat * 2);
        // A fired timer must be re-armed, or it would fire again at once.
        if std::mem::take(&mut rearm) || timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
    }
}

/// Writes what was queued before the close (an `error` saying why, the last events before a
/// shutdown; a slow consumer's backlog is what it is closed for), then the close frame.
async fn say_goodbye<S: Socket>(conn: &Conn, socket: &mut S) {
    let code = conn.close_code().unwrap_or(close::NORMAL);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if code != close::TRY_AGAIN_LATER {
            while let Some(frame) = conn.outbox.pop() {
                socket.feed(Message::Text(frame)).await?;
            }
        }
        socket.send(close_message(code)).await
    })
    .await;
}

/// Runs a write unless the connection is told to close first.
async fn guarded<E>(conn: &Conn, write: impl Future<Output = Result<(), E>>) -> bool {
    tokio::select! {
        r = write => r.is_ok(),
        () = conn.killed() => false,
    }
}

/// Writes up to a burst of queued frames and flushes once.
async fn write_burst<S: Socket>(socket: &mut S, conn: &Conn) -> Result<(), axum::Error> {
    let mut fed = false;
    for _ in 0..BURST {
        match conn.outbox.pop() {
            Some(frame) => {
                socket.feed(Message::Text(frame)).await?;
                fed = true;
            }
            None => break,
        }
    }
    if fed { socket.flush().await } else { Ok(()) }
}

/// Parses and applies one client frame. Errors go back as `error` frames; the connection stays.
async fn handle(state: &AppState, conn: &Conn, text: &str) {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            conn.send_error(&Error::invalid(format!("malformed JSON: {e}")), None);
            return;
        }
    };
    let nonce = value.get("nonce").and_then(|n| n.as_str()).map(str::to_owned);
    let frame = match serde_json::from_value::<ClientFrame>(value) {
        Ok(f) => f,
        Err(e) => {
            conn.send_error(&Error::invalid(format!("invalid frame: {e}")), nonce);
            return;
        }
    };
    let result = match frame {
        ClientFrame::Ping => {
            conn.send_event(&ServerEvent::Pong);
            Ok(())
        }
        ClientFrame::Auth { .. } => Err(Error::invalid("already authenticated")),
        ClientFrame::Send { room_id, body, nonce, reply_to } => {
            if let Err(e) = send(state, conn, room_id, body, nonce.clone(), reply_to).await {
                conn.send_error(&e, Some(nonce));
            }
            Ok(())
        }
        ClientFrame::Typing { room_id } => typing(state, conn, room_id).await,
        ClientFrame::Read { room_id, seq } => read(state, conn, room_id, seq).await,
        ClientFrame::Sync { rooms } => sync(state, conn, rooms).await,
    };
    if let Err(e) = result {
        conn.send_error(&e, None);
    }
}

/// Membership, from the hub's index when it knows, else from the store.
async fn ensure_member(state: &AppState, conn: &Conn, room_id: &RoomId) -> Result<(), Error> {
    Sender::Connection(conn).ensure_member(state, room_id).await
}

async fn send(
    state: &AppState,
    conn: &Conn,
    room_id: RoomId,
    body: String,
    nonce: String,
    reply_to: Option<MessageId>,
) -> Result<(), Error> {
    let request = SendRequest { room_id, body, nonce: Some(nonce.clone()), reply_to };
    let command = admit_send(state, &Sender::Connection(conn), request).await?;
    submit(state, command, Waiter::Ws { conn: conn.clone(), nonce }).await
}

async fn typing(state: &AppState, conn: &Conn, room_id: RoomId) -> Result<(), Error> {
    ensure_member(state, conn, &room_id).await?;
    events::typing(state, &room_id, &conn.user_id).await;
    Ok(())
}

async fn read(state: &AppState, conn: &Conn, room_id: RoomId, seq: i64) -> Result<(), Error> {
    let seq = validate::seq("seq", seq)?;
    ensure_member(state, conn, &room_id).await?;
    let at = state.store.mark_read(&room_id, &conn.user_id, seq).await?;
    events::read_moved(state, &conn.user_id, &room_id, at, Some(state.hub.conn_key(conn))).await;
    Ok(())
}

/// Sends every message after each room's last seen seq, at most 500 a room, then `synced`.
async fn sync(state: &AppState, conn: &Conn, rooms: HashMap<RoomId, i64>) -> Result<(), Error> {
    if rooms.len() > SYNC_MAX_ROOMS {
        return Err(Error::validation("rooms", "sync at most 1000 rooms at a time"));
    }
    for (room_id, last_seen) in rooms {
        if let Err(e) = sync_room(state, conn, &room_id, last_seen).await {
            conn.send_error(&e, None);
        }
    }
    conn.send_wait(to_frame(&ServerEvent::Synced)).await;
    Ok(())
}

async fn sync_room(state: &AppState, conn: &Conn, room_id: &RoomId, last_seen: i64) -> Result<(), Error> {
    let last_seen = validate::seq("rooms", last_seen)?;
    member_access(state, room_id, &conn.user_id).await?;
    let (messages, has_more) = state.store.history(room_id, Page::After(last_seen), SYNC_ROOM_LIMIT).await?;
    for message in messages {
        if !conn.send_wait(to_frame(&ServerEvent::MessageCreated { message })).await {
            return Ok(());
        }
    }
    if has_more {
        conn.send_wait(to_frame(&ServerEvent::SyncTruncated { room_id: room_id.clone() })).await;
    }
    Ok(())
}
