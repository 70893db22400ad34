//! The public contract as a client sees it: REST calls with 429 retries, and authenticated
//! WebSockets opened from chosen source addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use indicatif::ProgressBar;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

pub type Ws = WebSocketStream<TcpStream>;

pub const PASSWORD: &str = "bench-password-0";

/// A registered account.
#[derive(Clone, Debug)]
pub struct Account {
    /// The user id (kept for reports and debugging).
    #[allow(dead_code)]
    pub id: String,
    pub token: String,
}

/// The target server: its REST base, its WebSocket URL and the socket address behind them.
#[derive(Clone)]
pub struct Target {
    http: reqwest::Client,
    base: String,
    ws_url: String,
    addr: SocketAddr,
    sources: Vec<IpAddr>,
}

impl Target {
    /// `source_ips` > 0 binds client sockets round-robin to 127.0.0.2, 127.0.0.3, ... (only when
    /// the target is on the loopback), so more connections fit than one address's port range.
    pub async fn new(url: &str, source_ips: usize) -> Result<Self> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("bad --url {url}"))?;
        let host = parsed.host_str().context("--url has no host")?.to_string();
        let port = parsed.port_or_known_default().context("--url has no port")?;
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to nothing"))?;
        let scheme = if parsed.scheme() == "https" { "wss" } else { "ws" };
        let host_port = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let ws_url = format!("{scheme}://{host_port}/api/v1/ws");
        let sources = if source_ips > 0 && addr.ip().is_loopback() && addr.is_ipv4() {
            (0..source_ips.min(250)).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8))).collect()
        } else {
            Vec::new()
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(256)
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base: url.trim_end_matches('/').to_string(), ws_url, addr, sources })
    }

    pub fn sources(&self) -> &[IpAddr] {
        &self.sources
    }

    /// POST with a JSON body; a 429 is retried after `retry_after_ms` (or `Retry-After`).
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Result<(u16, Value)> {
        let url = format!("{}{}", self.base, path);
        for _attempt in 0..1000 {
            let mut req = self.http.post(&url).json(&body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.with_context(|| format!("POST {url}"))?;
            let status = resp.status().as_u16();
            let retry_header = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| s * 1000);
            let text = resp.text().await.unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status == 429 {
                let wait = value
                    .pointer("/error/retry_after_ms")
                    .and_then(Value::as_u64)
                    .or(retry_header)
                    .unwrap_or(1000)
                    .clamp(10, 60_000);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                continue;
            }
            return Ok((status, value));
        }
        bail!("POST {url}: still rate limited after 1000 attempts")
    }

    /// Registers `username`; if it is taken, logs in with the bench password instead.
    pub async fn register(&self, username: &str) -> Result<Account> {
        let (status, v) = self
            .post("/api/v1/auth/register", None, json!({"username": username, "password": PASSWORD}))
            .await?;
        let v = match status {
            201 | 200 => v,
            409 => {
                let (status, v) = self
                    .post("/api/v1/auth/login", None, json!({"username": username, "password": PASSWORD}))
                    .await?;
                if status != 200 {
                    bail!("login {username}: HTTP {status} {v}");
                }
                v
            }
            _ => bail!("register {username}: HTTP {status} {v}"),
        };
        let token = v.get("access_token").and_then(Value::as_str).context("no access_token in answer")?;
        let id = v.pointer("/user/id").and_then(Value::as_str).context("no user.id in answer")?;
        Ok(Account { id: id.to_string(), token: token.to_string() })
    }

    /// Registers `n` accounts named `<prefix>_<i>`, `concurrency` at a time.
    pub async fn register_many(
        &self,
        prefix: &str,
        n: usize,
        concurrency: usize,
        bar: &ProgressBar,
    ) -> Result<Vec<Account>> {
        let mut out: Vec<(usize, Account)> = stream::iter(0..n)
            .map(|i| {
                let name = format!("{prefix}_{i}");
                async move {
                    let a = self.register(&name).await?;
                    bar.inc(1);
                    Ok::<_, anyhow::Error>((i, a))
                }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, a)| a).collect())
    }

    pub async fn create_room(&self, token: &str, name: &str) -> Result<String> {
        let (status, v) = self.post("/api/v1/rooms", Some(token), json!({"name": name})).await?;
        if status != 201 && status != 200 {
            bail!("create room: HTTP {status} {v}");
        }
        v.get("id").and_then(Value::as_str).map(str::to_string).context("no room id in answer")
    }

    /// Creates a room for each (owner token, name), 16 at a time; the ids in the same order.
    pub async fn create_rooms(&self, rooms: Vec<(String, String)>, bar: &ProgressBar) -> Result<Vec<String>> {
        stream::iter(rooms)
            .map(|(token, name)| async move {
                let id = self.create_room(&token, &name).await?;
                bar.inc(1);
                Ok::<_, anyhow::Error>(id)
            })
            .buffered(16)
            .try_collect()
            .await
    }

    pub async fn join(&self, token: &str, room: &str) -> Result<()> {
        let (status, v) = self.post(&format!("/api/v1/rooms/{room}/join"), Some(token), json!({})).await?;
        match status {
            200 | 201 | 204 | 409 => Ok(()),
            _ => bail!("join {room}: HTTP {status} {v}"),
        }
    }

    /// Joins each (token, room) pair, `concurrency` at a time.
    pub async fn join_many(
        &self,
        pairs: Vec<(String, String)>,
        concurrency: usize,
        bar: &ProgressBar,
    ) -> Result<()> {
        stream::iter(pairs)
            .map(|(token, room)| async move {
                self.join(&token, &room).await?;
                bar.inc(1);
                Ok::<_, anyhow::Error>(())
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Opens a WebSocket authenticated by header, from the `n`-th source address, and waits for
    /// `ready`.
    pub async fn connect(&self, token: &str, n: usize) -> Result<Ws> {
        let sock = if self.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if !self.sources.is_empty() {
            let ip = self.sources[n % self.sources.len()];
            sock.bind(SocketAddr::new(ip, 0)).with_context(|| format!("binding to {ip}"))?;
        }
        let stream = sock.connect(self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let mut req = self.ws_url.as_str().into_client_request()?;
        req.headers_mut().insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}"))?);
        // 16 KiB read buffers (not 128) keep ten thousand idle client sockets cheap for the bench.
        let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
        let (mut ws, _resp) = tokio_tungstenite::client_async_with_config(req, stream, Some(config))
            .await
            .context("WebSocket handshake")?;
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(msg) = ws.next().await {
                match msg.context("reading the first frames")? {
                    Message::Text(t) => match frame_type(&t) {
                        Some("ready") => return Ok(()),
                        Some("error") => bail!("server refused the socket: {}", t.as_str()),
                        _ => {}
                    },
                    Message::Close(c) => bail!("closed before ready: {c:?}"),
                    _ => {}
                }
            }
            Err(anyhow!("socket ended before ready"))
        })
        .await;
        match ready {
            Ok(r) => r?,
            Err(_) => bail!("no ready frame within 60 s"),
        }
        Ok(ws)
    }

    /// Opens one socket per token (`tokens[i]` for the i-th), `concurrency` at a time.
    pub async fn connect_many(
        &self,
        tokens: &[String],
        concurrency: usize,
        bar: &ProgressBar,
    ) -> Result<Vec<Ws>> {
        let mut out: Vec<(usize, Ws)> = stream::iter(tokens.iter().enumerate())
            .map(|(i, t)| async move {
                let ws = self.connect(t, i).await.with_context(|| format!("socket {i}"))?;
                bar.inc(1);
                Ok::<_, anyhow::Error>((i, ws))
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, w)| w).collect())
    }
}

/// The value of the first `"type"` key of a frame (the tag, which servers write first).
pub fn frame_type(text: &str) -> Option<&str> {
    string_after(text, "\"type\":\"")
}

/// The string that follows `key` up to the next quote.
pub fn string_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// A `send` frame whose body and nonce carry the step, the sequence number and the send time.
pub fn send_frame(room: &str, step: usize, seq: u64, t_us: u64) -> Message {
    Message::Text(Utf8Bytes::from(format!(
        r#"{{"type":"send","room_id":"{room}","body":"bench {step} {seq} {t_us}","nonce":"{step}:{seq}:{t_us}"}}"#
    )))
}

/// Parses the `bench <step> <seq> <t_us>` body of a `message.created` frame.
pub fn parse_body(text: &str) -> Option<(usize, u64, u64)> {
    let body = string_after(text, "\"body\":\"bench ")?;
    let mut it = body.split(' ');
    let step = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let t = it.next()?.parse().ok()?;
    Some((step, seq, t))
}

/// Parses the `<step>:<seq>:<t_us>` nonce of an `ack` or `error` frame.
pub fn parse_nonce(text: &str) -> Option<(usize, u64, u64)> {
    let nonce = string_after(text, "\"nonce\":\"")?;
    let mut it = nonce.split(':');
    let step = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let t = it.next()?.parse().ok()?;
    Some((step, seq, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let Message::Text(t) = send_frame("r1", 2, 7, 12345) else { panic!("not text") };
        assert_eq!(frame_type(&t), Some("send"));
        assert_eq!(parse_nonce(&t), Some((2, 7, 12345)));
        let created = r#"{"type":"message.created","message":{"id":"m","author":{"id":"u"},"body":"bench 2 7 12345","html":"<p>bench 2 7 12345</p>"}}"#;
        assert_eq!(frame_type(created), Some("message.created"));
        assert_eq!(parse_body(created), Some((2, 7, 12345)));
        assert_eq!(parse_body(r#"{"type":"message.created","message":{"body":"hello"}}"#), None);
    }
}
