//! Logs: JSON lines with `--log-format json`, a request id on every line of a request (and of a
//! WebSocket connection), the trace id of a message from the gateway through the worker, and no
//! password, recovery phrase, token or message body ever, even at debug level.

mod common;

use common::WAIT;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

struct Server {
    child: Child,
    log: std::path::PathBuf,
    base: String,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("parlor.log");
        let file = std::fs::File::create(&log).expect("a log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_parlor"));
        cmd.args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "debug")
            .stdout(file)
            .stderr(Stdio::inherit());
        for (key, _) in std::env::vars() {
            if key.starts_with("PARLOR_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd.spawn().expect("parlor starts");
        let started = Instant::now();
        let addr = loop {
            let found = lines(&log).into_iter().find_map(|l| {
                l["message"].as_str().and_then(|m| m.strip_prefix("listening on ")).map(str::to_owned)
            });
            if let Some(addr) = found {
                break addr;
            }
            assert!(started.elapsed() < WAIT, "parlor never logged `listening on`");
            std::thread::sleep(Duration::from_millis(50));
        };
        Server { child, log, base: format!("http://{addr}"), addr, _dir: dir }
    }
}

/// Every line of the log, each of which must be a JSON object.
fn lines(path: &std::path::Path) -> Vec<Value> {
    let Ok(file) = std::fs::File::open(path) else { return Vec::new() };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(&l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The value of a field on the line itself or on any of its spans.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a str> {
    line[name].as_str().or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|s| s[name].as_str())
            .or_else(|| line["span"][name].as_str())
    })
}

#[tokio::test]
async fn logs_are_json_carry_request_and_trace_ids_and_never_hold_secrets_or_bodies() {
    let server = Server::start();
    let http = reqwest::Client::builder().timeout(WAIT).build().expect("a client");
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut req = http.post(format!("{}{path}", server.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    };
    let password = "Pw-Hunter2-Swordfish";
    let new_password = "Pw-Correct-Horse-Battery";
    let resp = post("/api/v1/auth/register", None, json!({"username": "alice", "password": password}))
        .header("x-request-id", "test-register-1")
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["x-request-id"], "test-register-1", "the client's request id comes back");
    let alice: Value = resp.json().await.expect("json");
    let phrase = alice["recovery_phrase"].as_str().expect("a phrase").to_owned();
    let resp = post("/api/v1/auth/login", None, json!({"username": "alice", "password": "wrong-password-1"}))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let generated = resp.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(generated.len() >= 32 && !generated.contains(' '), "an unfit id is replaced: {generated}");
    let recovered: Value = post(
        "/api/v1/auth/recover",
        None,
        json!({"username": "alice", "recovery_phrase": phrase, "new_password": new_password}),
    )
    .send()
    .await
    .expect("recover")
    .json()
    .await
    .expect("json");
    let token = recovered["access_token"].as_str().expect("a token").to_owned();
    let refresh = recovered["refresh_token"].as_str().expect("a refresh token").to_owned();
    let new_phrase = recovered["recovery_phrase"].as_str().expect("a new phrase").to_owned();
    let room: Value = post("/api/v1/rooms", Some(&token), json!({"name": "general"}))
        .send()
        .await
        .expect("room")
        .json()
        .await
        .expect("json");
    let room_id = room["id"].as_str().expect("an id").to_owned();

    let rest_body = "zebra xyzzy plugh REST body";
    let resp = post(&format!("/api/v1/rooms/{room_id}/messages"), Some(&token), json!({"body": rest_body}))
        .header("x-request-id", "test-send-1")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = post(
        &format!("/api/v1/rooms/{room_id}/messages"),
        Some(&token),
        json!({"body": "buy followers now"}),
    )
    .header("x-request-id", "test-send-spam")
    .send()
    .await
    .expect("send");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let ws_body = "quokka wombat WebSocket body";
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/api/v1/ws", server.addr),
    )
    .expect("a request");
    request.headers_mut().insert("x-request-id", "test-ws-1".parse().expect("a header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("the socket opens");
    ws.send(WsMessage::text(json!({"type": "auth", "token": token}).to_string())).await.expect("auth");
    ws.send(WsMessage::text(
        json!({"type": "send", "room_id": room_id, "body": ws_body, "nonce": "n-1"}).to_string(),
    ))
    .await
    .expect("send");
    let acked = tokio::time::timeout(WAIT, async {
        while let Some(Ok(frame)) = ws.next().await {
            if let WsMessage::Text(text) = frame
                && text.contains("\"ack\"")
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(acked, "the WebSocket send is acknowledged");
    ws.close(None).await.expect("close");
    let resp =
        post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh})).send().await.expect("refresh");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = post(
        "/api/v1/users/me/password",
        Some(&token),
        json!({"current_password": new_password, "new_password": "Pw-Third-Password-99"}),
    )
    .header("x-request-id", "test-password-last")
    .send()
    .await
    .expect("password");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // The log is written in order, and this request's answer is the last line asserted on: once
    // it is in the file, all the lines before it are.
    let started = Instant::now();
    while !lines(&server.log)
        .iter()
        .any(|l| field(l, "request_id") == Some("test-password-last") && l["message"] == "answered")
    {
        assert!(started.elapsed() < WAIT, "the last request's answer was never logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let log = lines(&server.log);
    let text = std::fs::read_to_string(&server.log).expect("the log");
    let first_words: String = phrase.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    for secret in [
        password,
        new_password,
        "Pw-Third-Password-99",
        "wrong-password-1",
        phrase.as_str(),
        first_words.as_str(),
        new_phrase.as_str(),
        token.as_str(),
        refresh.as_str(),
        alice["access_token"].as_str().unwrap_or("-"),
        rest_body,
        "zebra",
        ws_body,
        "quokka",
        "buy followers",
    ] {
        let leak = text.lines().find(|l| l.contains(secret));
        assert!(leak.is_none(), "{secret:?} is in the log: {leak:?}");
    }

    // Every line of a request carries its id; one line says how it was answered.
    let of = |id: &str| log.iter().filter(|l| field(l, "request_id") == Some(id)).collect::<Vec<_>>();
    let register = of("test-register-1");
    assert!(register.iter().any(|l| l["message"] == "answered" && l["status"] == 201), "{register:?}");
    let login = of(&generated);
    assert!(login.iter().any(|l| l["message"] == "answered" && l["status"] == 401), "{login:?}");

    // The REST send: the gateway logs the trace id it queued under the request id; the worker's
    // line for the same trace id says it was stored; the rejected one says why.
    let trace_of = |request: &str| {
        of(request)
            .iter()
            .find(|l| l["message"] == "queued")
            .and_then(|l| l["trace_id"].as_str())
            .unwrap_or_else(|| panic!("no `queued` line for {request}: {:?}", of(request)))
            .to_owned()
    };
    let trace = trace_of("test-send-1");
    let worker: Vec<_> = log.iter().filter(|l| l["trace_id"] == trace.as_str()).collect();
    assert!(worker.iter().any(|l| l["message"] == "stored" && l["seq"] == 1), "{worker:?}");
    assert!(worker.iter().any(|l| l["message"] == "outcome received"), "{worker:?}");
    let spam = trace_of("test-send-spam");
    assert!(
        log.iter().any(|l| l["trace_id"] == spam.as_str() && l["reason"] == "blocked_word"
            || l["trace_id"] == spam.as_str() && l["message"] == "rejected by moderation"),
        "the rejection is logged with its trace id"
    );

    // The WebSocket connection's lines carry the upgrade's request id, including its send.
    let ws_lines = of("test-ws-1");
    assert!(ws_lines.iter().any(|l| l["message"] == "connection open"), "{ws_lines:?}");
    let ws_trace = trace_of("test-ws-1");
    assert!(log.iter().any(|l| l["trace_id"] == ws_trace.as_str() && l["message"] == "stored"));
    for line in &log {
        assert!(line["level"].is_string() && line["timestamp"].is_string(), "{line}");
    }
}
