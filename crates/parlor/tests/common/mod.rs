//! The test harness: starts the real `parlor` binary on a free port with a fresh data directory,
//! and speaks HTTP and WebSocket to it like any client.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod cluster;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server.
pub struct TestApp {
    pub base: String,
    pub addr: String,
    child: Child,
    /// Every line the server wrote to stdout (its log), across restarts.
    logs: Logs,
    dir: DataDir,
    flags: BTreeMap<String, String>,
    http: reqwest::Client,
}

/// The data directory, kept across restarts and removed at the end.
pub struct DataDir(pub tempfile::TempDir);

impl DataDir {
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Flags every test server gets unless a test sets them: generous limits so tests are not
/// throttled by accident.
fn default_flags() -> BTreeMap<String, String> {
    [
        ("--auth-rate", "1000"),
        ("--auth-burst", "10000"),
        ("--auth-failures", "1000"),
        ("--send-rate", "1000"),
        ("--send-burst", "10000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The lines a server logged, as they come.
pub type Logs = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

fn start(dir: &Path, flags: &BTreeMap<String, String>, logs: &Logs) -> (Child, String) {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        dir.display().to_string(),
    ];
    for (k, v) in flags {
        args.push(k.clone());
        args.push(v.clone());
    }
    let (child, line) = spawn_parlor_logged(&args, "listening on ", logs.clone());
    (child, line.split_whitespace().next().unwrap_or_default().to_owned())
}

/// Starts `parlor <args>` and waits for a log line holding `ready`; returns the process and what
/// follows `ready` on that line.
pub fn spawn_parlor(args: &[String], ready: &str) -> (Child, String) {
    spawn_parlor_logged(args, ready, Logs::default())
}

/// [`spawn_parlor`], keeping every line of the server's log in `logs`.
pub fn spawn_parlor_logged(args: &[String], ready: &str, logs: Logs) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parlor"));
    cmd.args(args);
    cmd.env("RUST_LOG", std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info".into()));
    for (key, _) in std::env::vars() {
        if key.starts_with("PARLOR_") {
            cmd.env_remove(key);
        }
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the parlor binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let echo = std::env::var("TEST_LOG").is_ok();
    let wanted = ready.to_owned();
    let ready = wanted.clone();
    let role = args.first().cloned().unwrap_or_default();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if echo {
                println!("{role}: {line}");
            }
            if let Ok(mut logs) = logs.lock() {
                logs.push(line.clone());
            }
            if let Some(rest) = line.split(ready.as_str()).nth(1) {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("server stderr: {line}");
        }
    });
    let line = rx.recv_timeout(WAIT).unwrap_or_else(|_| panic!("parlor {args:?} never logged {wanted:?}"));
    (child, line)
}

impl TestApp {
    /// A server with the default test flags.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// A server with some flags set, e.g. `&[("--send-burst", "3")]`.
    pub async fn spawn_with(flags: &[(&str, &str)]) -> Self {
        let dir = DataDir(tempfile::tempdir().expect("a temporary directory"));
        let mut all = default_flags();
        for (k, v) in flags {
            all.insert((*k).to_owned(), (*v).to_owned());
        }
        let logs = Logs::default();
        let (child, addr) = start(dir.path(), &all, &logs);
        let app = Self {
            base: format!("http://{addr}"),
            addr,
            child,
            logs,
            dir,
            flags: all,
            http: reqwest::Client::builder().timeout(WAIT).build().expect("an HTTP client"),
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the server never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Kills the server with SIGKILL and starts it again on the same data directory.
    pub async fn kill_and_restart(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
        let (child, addr) = start(self.dir.path(), &self.flags, &self.logs);
        self.child = child;
        self.base = format!("http://{addr}");
        self.addr = addr;
        self.wait_ready().await;
    }

    /// Starts the server again on the same data directory, after it exited.
    pub async fn start_again(&mut self) {
        let (child, addr) = start(self.dir.path(), &self.flags, &self.logs);
        self.child = child;
        self.base = format!("http://{addr}");
        self.addr = addr;
        self.wait_ready().await;
    }

    /// The lines the server has logged so far (all its runs).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and how long it took.
    pub fn terminate(&mut self) -> (Option<i32>, Duration) {
        let started = std::time::Instant::now();
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill -TERM");
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status.code(), started.elapsed());
            }
            assert!(started.elapsed() < Duration::from_secs(15), "the server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with an optional token and JSON body; returns the status and the JSON body
    /// (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the request is answered");
        let status = resp.status();
        let text = resp.text().await.expect("a body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// A request with a raw body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut req =
            self.http.request(method, self.url(path)).header("content-type", "application/json").body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("the request is answered")
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Registers a user (password `password-<name>`).
    pub async fn register(&self, username: &str) -> TestUser {
        let password = format!("password-{username}");
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {username}: {body}");
        TestUser {
            id: body["user"]["id"].as_str().expect("user id").to_owned(),
            username: username.to_owned(),
            password,
            token: body["access_token"].as_str().expect("access token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh token").to_owned(),
            phrase: body["recovery_phrase"].as_str().expect("phrase").to_owned(),
        }
    }

    /// `register` with an owned name, for futures that outlive the name's borrow.
    pub async fn register_owned(&self, username: String) -> TestUser {
        self.register(&username).await
    }

    /// Creates a room owned by `owner`; returns its id.
    pub async fn room(&self, owner: &TestUser, name: &str, visibility: &str) -> String {
        let (status, body) =
            self.post("/api/v1/rooms", &owner.token, json!({"name": name, "visibility": visibility})).await;
        assert_eq!(status, StatusCode::CREATED, "create room: {body}");
        body["id"].as_str().expect("room id").to_owned()
    }

    /// `user` joins a public room.
    pub async fn join(&self, user: &TestUser, room: &str) {
        let (status, body) =
            self.call(Method::POST, &format!("/api/v1/rooms/{room}/join"), Some(&user.token), None).await;
        assert_eq!(status, StatusCode::OK, "join: {body}");
    }

    /// Posts a message over REST; returns it.
    pub async fn say(&self, user: &TestUser, room: &str, body: &str) -> Value {
        let (status, msg) =
            self.post(&format!("/api/v1/rooms/{room}/messages"), &user.token, json!({"body": body})).await;
        assert_eq!(status, StatusCode::CREATED, "send: {msg}");
        msg
    }

    /// Logs in with a username and password; returns the raw answer.
    pub async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// Logs in (a new session) and returns its access and refresh tokens.
    pub async fn login_ok(&self, username: &str, password: &str) -> (String, String) {
        let (status, body) = self.login(username, password).await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        (
            body["access_token"].as_str().expect("an access token").to_owned(),
            body["refresh_token"].as_str().expect("a refresh token").to_owned(),
        )
    }

    /// The direct room between `from` and `to` (created on first use); returns its id.
    pub async fn dm(&self, from: &TestUser, to: &TestUser) -> String {
        let (status, room) = self.post("/api/v1/dms", &from.token, json!({"user_id": to.id})).await;
        assert_eq!(status, StatusCode::OK, "{room}");
        room["id"].as_str().expect("room id").to_owned()
    }

    /// The caller's rooms from `GET /rooms` (with `last_read_seq` and `unread_count`).
    pub async fn my_rooms(&self, user: &TestUser) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/rooms", &user.token).await;
        assert_eq!(status, StatusCode::OK, "list rooms: {body}");
        body["rooms"].as_array().expect("rooms").clone()
    }

    /// One room of the caller's list; fails when it is not listed.
    pub async fn my_room(&self, user: &TestUser, room: &str) -> Value {
        self.my_rooms(user)
            .await
            .into_iter()
            .find(|r| r["id"] == room)
            .unwrap_or_else(|| panic!("room {room} is in the list of {}", user.username))
    }

    /// The room's history as `user` sees it (up to 200 messages).
    pub async fn history(&self, user: &TestUser, room: &str) -> Vec<Value> {
        let (status, page) = self.get(&format!("/api/v1/rooms/{room}/messages?limit=200"), &user.token).await;
        assert_eq!(status, StatusCode::OK, "history: {page}");
        page["messages"].as_array().expect("messages").clone()
    }

    /// Registers `alice` and `bob`; `alice` creates the public room `name` and `bob` joins it.
    /// Returns both users and the room's id.
    pub async fn alice_and_bob_in(&self, name: &str) -> (TestUser, TestUser, String) {
        let alice = self.register("alice").await;
        let bob = self.register("bob").await;
        let room = self.room(&alice, name, "public").await;
        self.join(&bob, &room).await;
        (alice, bob, room)
    }

    /// Posts `"{prefix} {i}"` for each `i` over REST, one after another; returns the messages.
    pub async fn say_numbered(
        &self,
        user: &TestUser,
        room: &str,
        prefix: &str,
        numbers: impl IntoIterator<Item = usize>,
    ) -> Vec<Value> {
        let mut sent = Vec::new();
        for i in numbers {
            sent.push(self.say(user, room, &format!("{prefix} {i}")).await);
        }
        sent
    }

    /// A WebSocket authenticated by header; waits for `ready`.
    pub async fn ws(&self, token: &str) -> WsClient {
        Self::ws_at(&self.addr, token).await
    }

    /// A WebSocket authenticated by header at another address; waits for `ready`.
    pub async fn ws_at(addr: &str, token: &str) -> WsClient {
        let mut req = format!("ws://{addr}/api/v1/ws").into_client_request().expect("request");
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        let (stream, _) = tokio_tungstenite::connect_async(req).await.expect("the upgrade succeeds");
        let mut ws = WsClient { stream, ready: Value::Null };
        ws.ready = ws.next_of_type("ready").await;
        ws
    }

    /// A WebSocket with no authentication yet.
    pub async fn ws_raw(&self) -> WsClient {
        let (stream, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/v1/ws", self.addr))
            .await
            .expect("the upgrade succeeds");
        WsClient { stream, ready: Value::Null }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registered user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub password: String,
    pub token: String,
    pub refresh: String,
    pub phrase: String,
}

/// A WebSocket client.
pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `ready` event, once authenticated.
    pub ready: Value,
}

/// What arrives on a socket.
#[derive(Debug)]
pub enum Got {
    Frame(Value),
    Closed(Option<u16>),
}

impl WsClient {
    pub async fn send(&mut self, frame: Value) {
        self.stream.send(Message::text(frame.to_string())).await.expect("send a frame");
    }

    pub async fn send_text(&mut self, text: String) {
        self.stream.send(Message::text(text)).await.expect("send a frame");
    }

    /// The next JSON frame or the close, skipping pings.
    pub async fn next(&mut self) -> Got {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next()).await.expect("a frame in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Got::Frame(serde_json::from_str(&t).expect("JSON frames"));
                }
                Some(Ok(Message::Close(frame))) => return Got::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Got::Closed(None),
            }
        }
    }

    /// The next JSON frame; fails on a close.
    pub async fn next_json(&mut self) -> Value {
        match self.next().await {
            Got::Frame(v) => v,
            Got::Closed(code) => panic!("expected a frame, the socket closed with {code:?}"),
        }
    }

    /// The next frame of a type, skipping others (presence, typing...).
    pub async fn next_of_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.next_json().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Waits for the close and returns its code, skipping frames.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Got::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    /// Asserts no frame of this type arrives within `wait`.
    pub async fn assert_no(&mut self, ty: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON frames");
                    assert_ne!(v["type"], ty, "unexpected frame {v}");
                }
                Ok(Some(Ok(_))) => {}
                Ok(_) => return,
            }
        }
    }

    /// Closes from the client side.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// Asserts an error answer: its status, its `error.code` and that it has a human message;
/// returns the `error` object.
#[track_caller]
pub fn assert_error(answer: (StatusCode, Value), status: StatusCode, code: &str) -> Value {
    let (got, body) = answer;
    assert_eq!(got, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "code of {body}");
    assert!(body["error"]["message"].is_string(), "a message in {body}");
    body["error"].clone()
}

/// The `Retry-After` header of an answer, in whole seconds.
#[track_caller]
pub fn retry_after_secs(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("Retry-After in whole seconds")
}

/// The numeric code of a close code.
pub fn code(c: CloseCode) -> u16 {
    u16::from(c)
}

/// An SMTP server on a port of its own, keeping each message as a file.
pub struct SmtpSink {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl SmtpSink {
    /// A sink that is not listening yet (for the outage test).
    pub fn reserved() -> Self {
        Self { port: free_port(), dir: tempfile::tempdir().expect("a directory"), child: None }
    }

    pub fn start() -> Self {
        let mut sink = Self::reserved();
        sink.up();
        sink
    }

    pub fn up(&mut self) {
        let maildir = self.dir.path().join("mail");
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                panic!("the SMTP sink exited: is aiosmtpd installed? (python3 -m pip install aiosmtpd)");
            }
            assert!(std::time::Instant::now() < deadline, "the SMTP sink did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let dir: PathBuf = self.dir.path().join("mail").join(sub);
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    out.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    /// Waits until `n` messages arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "only {} of {n} e-mails arrived", got.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
