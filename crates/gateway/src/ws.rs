//! `GET /api/v1/ws`: the WebSocket session. After authentication (header or first frame) the
//! connection joins the hub and gets `ready`; then a reader task (this one) parses and applies
//! client frames while a writer task drains the connection's queue to the socket in bursts,
//! flushing once per burst, and pings on the heartbeat. Either side closing closes both.

use crate::error::ApiError;
use crate::events;
use crate::extract::bearer;
use crate::hub::{Conn, close, to_frame};
use crate::pending::{Waiter, submit};
use crate::rooms::member_access;
use crate::state::AppState;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use parlor_domain::model::PresenceStatus;
use parlor_domain::ports::Page;
use parlor_domain::protocol::{ClientFrame, ErrorEvent, ServerEvent};
use parlor_domain::queue::Command;
use parlor_domain::validate::{self, MAX_PAYLOAD_BYTES};
use parlor_domain::{Error, MessageId, RoomId, Timestamp};
use parlor_users::Authenticated;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
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

/// Upgrades the request. The upgrade always succeeds; authentication follows on the socket.
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
    let tracker = state.tasks.clone();
    // The connection's lines carry the upgrade request's id.
    let span = tracing::Span::current();
    let ws =
        ws.max_message_size(HARD_FRAME_LIMIT).max_frame_size(HARD_FRAME_LIMIT).read_buffer_size(READ_BUFFER);
    ws.on_upgrade(move |socket| {
        tracker.track_future(
            async move {
                session(socket, state, header_token).await;
                drop(permit);
            }
            .instrument(span),
        )
    })
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

fn close_message(code: u16) -> Message {
    let reason = match code {
        close::GOING_AWAY => "server shutting down",
        close::TOO_BIG => "frame too large",
        close::TRY_AGAIN_LATER => "too slow: reconnect and sync",
        close::UNAUTHORIZED => "unauthorized",
        close::HEARTBEAT_TIMEOUT => "heartbeat timeout",
        _ => "",
    };
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))
}

async fn session(socket: WebSocket, state: AppState, header_token: Option<String>) {
    let (mut sink, mut stream) = socket.split();
    // Transient steps are boxed: a connection's task keeps the size of its largest state for
    // its whole life, and an idle connection only needs the read loop's.
    let auth = match Box::pin(authenticate(&state, header_token, &mut stream)).await {
        Ok(auth) => auth,
        Err(e) => {
            let code = if matches!(e, Error::Unauthorized(_)) { close::UNAUTHORIZED } else { 1011 };
            let frame = to_frame(&ServerEvent::Error(ErrorEvent::from_error(&e, None)));
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                sink.send(Message::Text(frame)).await?;
                sink.send(close_message(code)).await
            })
            .await;
            return;
        }
    };
    let room_ids = match state.store.user_room_ids(&auth.user_id).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot load rooms for a new connection");
            let frame = to_frame(&ServerEvent::Error(ErrorEvent::from_error(&e, None)));
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Text(frame))).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close_message(1011))).await;
            return;
        }
    };
    let (conn, rx) = state
        .hub
        .register(auth.user_id.clone(), auth.session_id.clone(), &room_ids, state.settings.outbound_buffer)
        .await;
    tracing::info!(conn = conn.id, user_id = %auth.user_id, "connection open");
    run(&state, &conn, &auth, rx, sink, stream).await;
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
async fn authenticate(
    state: &AppState,
    header_token: Option<String>,
    stream: &mut Stream,
) -> Result<Authenticated, Error> {
    if let Some(token) = header_token {
        return state.authenticator.authenticate(&token).await;
    }
    let unauthorized = |m: &str| Error::Unauthorized(m.to_owned());
    let first = tokio::time::timeout(state.settings.ws_auth_timeout, async {
        loop {
            match stream.next().await {
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

/// Serves an authenticated connection until it closes.
async fn run(
    state: &AppState,
    conn: &Conn,
    auth: &Authenticated,
    rx: mpsc::Receiver<Utf8Bytes>,
    mut sink: Sink,
    mut stream: Stream,
) {
    let ready = async {
        let user = state
            .store
            .user_by_id(&auth.user_id)
            .await?
            .ok_or_else(|| Error::Unauthorized("unknown user".into()))?;
        let rooms = state.store.user_rooms(&auth.user_id).await?;
        Ok::<_, Error>((user.user, rooms))
    };
    let (user, rooms) = match Box::pin(ready).await {
        Ok(r) => r,
        Err(e) => {
            let _ = sink
                .send(Message::Text(to_frame(&ServerEvent::Error(ErrorEvent::from_error(&e, None)))))
                .await;
            let _ = sink.send(close_message(1011)).await;
            return;
        }
    };
    let room_ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
    // Rooms joined between the index and the snapshot.
    state.hub.enter_rooms(conn, &room_ids).await;
    let heartbeat = state.settings.heartbeat;
    let ready = ServerEvent::Ready {
        session_id: auth.session_id.clone(),
        user,
        rooms,
        heartbeat_ms: heartbeat.as_millis() as u64,
    };
    if sink.send(Message::Text(to_frame(&ready))).await.is_err() {
        return;
    }
    if state.presence.connected(&auth.user_id).await.unwrap_or(false) {
        events::presence(state, &auth.user_id, PresenceStatus::Online, Some(Timestamp::now()), room_ids)
            .await;
    }
    if let Err(e) = state.accounts.touch(auth).await {
        tracing::debug!(error = %e, "could not touch the session");
    }
    let writer = tokio::spawn(write_loop(sink, rx, conn.clone(), heartbeat));
    read_loop(state, conn, &mut stream, heartbeat).await;
    conn.close(close::NORMAL);
    let _ = writer.await;
}

async fn read_loop(state: &AppState, conn: &Conn, stream: &mut Stream, heartbeat: Duration) {
    let mut last_heard = Instant::now();
    loop {
        let next = tokio::select! {
            biased;
            () = conn.killed() => return,
            () = state.shutdown.cancelled() => {
                conn.close(close::GOING_AWAY);
                return;
            }
            next = tokio::time::timeout_at(last_heard + heartbeat * 2, stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                conn.close(close::HEARTBEAT_TIMEOUT);
                return;
            }
            Ok(None) => return,
            Ok(Some(Err(e))) => {
                // tungstenite reports frames over its hard limit as a capacity error.
                if e.to_string().contains("Space limit exceeded") {
                    conn.close(close::TOO_BIG);
                }
                return;
            }
            Ok(Some(Ok(m))) => m,
        };
        last_heard = Instant::now();
        match message {
            Message::Text(text) => {
                if text.len() > MAX_PAYLOAD_BYTES {
                    conn.close(close::TOO_BIG);
                    return;
                }
                Box::pin(handle(state, conn, text.as_str())).await;
            }
            Message::Binary(data) => {
                if data.len() > MAX_PAYLOAD_BYTES {
                    conn.close(close::TOO_BIG);
                    return;
                }
                conn.send_error(
                    &Error::invalid("binary frames are not supported; send JSON text frames"),
                    None,
                );
            }
            Message::Ping(_) | Message::Pong(_) => {}
            Message::Close(_) => return,
        }
    }
}

/// Writes queued frames in bursts, one flush per burst, and pings every heartbeat.
async fn write_loop(mut sink: Sink, mut rx: mpsc::Receiver<Utf8Bytes>, conn: Conn, heartbeat: Duration) {
    let mut ping = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    loop {
        let ok = tokio::select! {
            biased;
            () = conn.killed() => break,
            frame = rx.recv() => match frame {
                Some(frame) => guarded(&conn, write_burst(&mut sink, frame, &mut rx)).await,
                None => false,
            },
            _ = ping.tick() => guarded(&conn, sink.send(Message::Ping(Default::default()))).await,
        };
        if !ok {
            conn.close(close::NORMAL);
            break;
        }
    }
    let code = conn.close_code().unwrap_or(close::NORMAL);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        // What was queued before the close (an `error` saying why, the last events before a
        // shutdown) goes out first; a slow consumer's backlog is what it is closed for.
        if code != close::TRY_AGAIN_LATER {
            while let Ok(frame) = rx.try_recv() {
                sink.feed(Message::Text(frame)).await?;
            }
        }
        sink.send(close_message(code)).await
    })
    .await;
}

/// Runs a write unless the connection is told to close first.
async fn guarded<E>(conn: &Conn, write: impl std::future::Future<Output = Result<(), E>>) -> bool {
    tokio::select! {
        r = write => r.is_ok(),
        () = conn.killed() => false,
    }
}

async fn write_burst(
    sink: &mut Sink,
    first: Utf8Bytes,
    rx: &mut mpsc::Receiver<Utf8Bytes>,
) -> Result<(), axum::Error> {
    sink.feed(Message::Text(first)).await?;
    for _ in 1..BURST {
        match rx.try_recv() {
            Ok(frame) => sink.feed(Message::Text(frame)).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
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
    if state.hub.in_room(conn, room_id) {
        return Ok(());
    }
    member_access(state, room_id, &conn.user_id).await.map(|_| ())
}

async fn send(
    state: &AppState,
    conn: &Conn,
    room_id: RoomId,
    body: String,
    nonce: String,
    reply_to: Option<MessageId>,
) -> Result<(), Error> {
    validate::nonce(&nonce)?;
    validate::body(&body)?;
    ensure_member(state, conn, &room_id).await?;
    state.limits.send(&conn.user_id)?;
    let command = Command::Create {
        room_id,
        author_id: conn.user_id.clone(),
        body,
        nonce: Some(nonce.clone()),
        reply_to,
    };
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
