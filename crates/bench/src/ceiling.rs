//! The ceiling: the leanest broadcast server that speaks parlor's frames, with no auth and no
//! storage, to show what this machine can do at all.
//!
//! It answers the REST calls the bench makes (register, login, create and join a room) with small
//! fake JSON bodies, so the same client code drives it. A WebSocket's user is the bearer token
//! itself (the fake register answers the user id as the token); its rooms are the user's rooms at
//! the time it connects. A `send` is answered with `ack` and one `message.created` frame,
//! serialised once and shared as bytes by every socket of the room; each socket's writer task
//! feeds a burst of queued frames and flushes once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const CREATED_AT: &str = "2026-01-01T00:00:00.000Z";
const BURST: usize = 256;

struct Member {
    conn: u64,
    tx: mpsc::Sender<Message>,
}

#[derive(Default)]
struct Room {
    seq: u64,
    members: Vec<Member>,
}

#[derive(Default)]
struct State {
    next_id: AtomicU64,
    /// user id → the rooms it is a member of.
    memberships: Mutex<HashMap<String, Vec<String>>>,
    rooms: RwLock<HashMap<String, Arc<Mutex<Room>>>>,
    outbound_buffer: usize,
}

impl State {
    fn id(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.next_id.fetch_add(1, Relaxed) + 1)
    }

    fn join(&self, user: &str, room: &str) {
        if let Ok(mut m) = self.memberships.lock() {
            let rooms = m.entry(user.to_string()).or_default();
            if !rooms.iter().any(|r| r == room) {
                rooms.push(room.to_string());
            }
        }
        if let Ok(mut rooms) = self.rooms.write() {
            rooms.entry(room.to_string()).or_default();
        }
    }

    fn room(&self, id: &str) -> Option<Arc<Mutex<Room>>> {
        self.rooms.read().ok()?.get(id).cloned()
    }
}

pub async fn serve(listen: &str, outbound_buffer: usize) -> Result<()> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    println!("ceiling: listening on {addr}");
    eprintln!(
        "ceiling: no auth, no storage; REST answers are fake. Pin it, e.g. `taskset -c 0 parlor-bench ceiling --listen {addr}`; it runs on cpus {}",
        crate::sys::cpus_allowed("self").unwrap_or_else(|| "?".into())
    );
    let state = Arc::new(State { outbound_buffer: outbound_buffer.max(16), ..State::default() });
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                eprintln!("ceiling: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = connection(stream, state).await;
        });
    }
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request; `buf` keeps what was read past it.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Request>> {
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 64 * 1024 {
            anyhow::bail!("request head too large");
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0).min(1 << 20);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Ok(Some(Request { method, path, headers, body }))
}

async fn respond(stream: &mut TcpStream, status: &str, body: &Value) -> Result<()> {
    let body = body.to_string();
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    Ok(())
}

fn user_json(id: &str, username: &str) -> Value {
    json!({"id": id, "username": username, "display_name": username, "created_at": CREATED_AT})
}

fn room_json(id: &str, owner: &str) -> Value {
    json!({"id": id, "kind": "group", "name": id, "topic": "", "visibility": "public", "owner_id": owner,
           "created_at": CREATED_AT, "member_count": 0, "last_seq": 0})
}

fn bearer(req: &Request) -> String {
    req.headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .unwrap_or_else(|| "anonymous".into())
}

async fn connection(mut stream: TcpStream, state: Arc<State>) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut stream, &mut buf).await? {
        let path = req.path.split('?').next().unwrap_or_default().to_string();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["api", "v1", "ws"]) => {
                let key = req.headers.get("sec-websocket-key").cloned().unwrap_or_default();
                let resp = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
                    derive_accept_key(key.as_bytes())
                );
                stream.write_all(resp.as_bytes()).await?;
                let user = bearer(&req);
                let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
                let ws = WebSocketStream::from_partially_read(stream, buf, Role::Server, Some(config)).await;
                return websocket(ws, user, state).await;
            }
            ("POST", ["api", "v1", "auth", "register" | "login"]) => {
                let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let name = v.get("username").and_then(Value::as_str).unwrap_or("user").to_string();
                let id = state.id("u");
                let body = json!({"user": user_json(&id, &name), "access_token": id, "refresh_token": "r",
                                  "expires_in": 900, "recovery_phrase": "fake"});
                let status = if parts[3] == "register" { "201 Created" } else { "200 OK" };
                respond(&mut stream, status, &body).await?;
            }
            ("POST", ["api", "v1", "rooms"]) => {
                let user = bearer(&req);
                let id = state.id("r");
                state.join(&user, &id);
                respond(&mut stream, "201 Created", &room_json(&id, &user)).await?;
            }
            ("POST", ["api", "v1", "rooms", room, "join"]) => {
                let user = bearer(&req);
                state.join(&user, room);
                respond(&mut stream, "200 OK", &room_json(room, "owner")).await?;
            }
            ("GET", ["healthz" | "readyz"]) => {
                respond(&mut stream, "200 OK", &json!({"status": "ok"})).await?
            }
            _ => {
                respond(
                    &mut stream,
                    "404 Not Found",
                    &json!({"error": {"code": "not_found", "message": "ceiling"}}),
                )
                .await?
            }
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct ClientFrame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    room_id: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    nonce: Option<String>,
}

static CONN_IDS: AtomicU64 = AtomicU64::new(1);

async fn websocket(ws: WebSocketStream<TcpStream>, user: String, state: Arc<State>) -> Result<()> {
    let conn = CONN_IDS.fetch_add(1, Relaxed);
    let (tx, mut rx) = mpsc::channel::<Message>(state.outbound_buffer);
    let rooms: Vec<String> =
        state.memberships.lock().ok().and_then(|m| m.get(&user).cloned()).unwrap_or_default();
    for r in &rooms {
        if let Some(room) = state.room(r)
            && let Ok(mut g) = room.lock()
        {
            g.members.push(Member { conn, tx: tx.clone() });
        }
    }
    let (mut sink, mut source) = ws.split();
    let ready = json!({"type": "ready", "session_id": format!("s{conn}"), "user": user_json(&user, &user),
                       "rooms": rooms.iter().map(|r| room_json(r, "owner")).collect::<Vec<_>>(), "heartbeat_ms": 30000});
    let _ = tx.try_send(Message::Text(Utf8Bytes::from(ready.to_string())));
    // The writer: one flush per burst of queued frames.
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.feed(m).await.is_err() {
                return;
            }
            let mut n = 1;
            while n < BURST {
                match rx.try_recv() {
                    Ok(m) => {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
            if sink.flush().await.is_err() || close {
                return;
            }
        }
    });
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(frame) = serde_json::from_str::<ClientFrame>(&text) else {
            let err = json!({"type": "error", "code": "invalid_request", "message": "malformed frame"});
            let _ = tx.try_send(Message::Text(Utf8Bytes::from(err.to_string())));
            continue;
        };
        match frame.kind.as_str() {
            "send" => send(&state, &user, &tx, frame),
            "ping" => {
                let _ = tx.try_send(Message::Text(Utf8Bytes::from_static(r#"{"type":"pong"}"#)));
            }
            _ => {}
        }
    }
    for r in &rooms {
        if let Some(room) = state.room(r)
            && let Ok(mut g) = room.lock()
        {
            g.members.retain(|m| m.conn != conn);
        }
    }
    drop(tx);
    writer.abort();
    Ok(())
}

fn send(state: &State, user: &str, tx: &mpsc::Sender<Message>, frame: ClientFrame) {
    let Some(room) = state.room(&frame.room_id) else {
        let err =
            json!({"type": "error", "nonce": frame.nonce, "code": "not_found", "message": "no such room"});
        let _ = tx.try_send(Message::Text(Utf8Bytes::from(err.to_string())));
        return;
    };
    let Ok(mut g) = room.lock() else { return };
    g.seq += 1;
    let message = json!({
        "id": format!("m{}-{}", frame.room_id, g.seq), "room_id": frame.room_id, "seq": g.seq,
        "author": user_json(user, user), "body": frame.body, "html": format!("<p>{}</p>", frame.body.replace('&', "&amp;").replace('<', "&lt;")),
        "mentions": [], "reply_to": null, "nonce": frame.nonce, "created_at": CREATED_AT,
        "edited_at": null, "deleted": false,
    })
    .to_string();
    let nonce = serde_json::to_string(&frame.nonce).unwrap_or_else(|_| "null".into());
    let _ = tx.try_send(Message::Text(Utf8Bytes::from(format!(
        r#"{{"type":"ack","nonce":{nonce},"message":{message}}}"#
    ))));
    // Serialised once; every member's queue gets a reference to the same bytes.
    let created =
        Message::Text(Utf8Bytes::from(format!(r#"{{"type":"message.created","message":{message}}}"#)));
    let mut slow = Vec::new();
    for m in &g.members {
        if m.tx.try_send(created.clone()).is_err() {
            slow.push(m.conn);
        }
    }
    if !slow.is_empty() {
        // As parlor does with a full queue: drop the slow consumer (1013), it would resync.
        for m in g.members.iter().filter(|m| slow.contains(&m.conn)) {
            let _ = m
                .tx
                .try_send(Message::Close(Some(CloseFrame { code: CloseCode::Again, reason: "slow".into() })));
        }
        g.members.retain(|m| !slow.contains(&m.conn));
    }
}
