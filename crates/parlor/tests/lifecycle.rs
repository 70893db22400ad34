//! The process's lifecycle: a server stopped with SIGTERM while clients send as fast as they can
//! stops every task in the documented order (the edge, the worker, the jobs, the store), exits 0,
//! leaves no task running, and loses nothing it acknowledged.

mod common;

use common::{TestApp, WAIT};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// What the clients were told was stored: nonce -> message id.
type Acked = Arc<Mutex<HashMap<String, String>>>;

/// Sends over one WebSocket with `window` sends in flight until the socket closes; returns the
/// close code.
async fn ws_sender(mut ws: common::WsClient, room: String, who: usize, acked: Acked) -> Option<u16> {
    let window = 8;
    let mut next = 0usize;
    let nonce = |n: usize| format!("ws{who}-{n}");
    for _ in 0..window {
        let frame = json!({"type": "send", "room_id": room, "body": format!("ws {who} {next}"), "nonce": nonce(next)});
        if ws.stream.send(Message::text(frame.to_string())).await.is_err() {
            return None;
        }
        next += 1;
    }
    loop {
        let msg = match tokio::time::timeout(WAIT, ws.stream.next()).await {
            Ok(msg) => msg,
            Err(_) => panic!("sender {who}: nothing for {WAIT:?}"),
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).expect("JSON frames");
                if v["type"] == "ack" {
                    let id = v["message"]["id"].as_str().expect("an id").to_owned();
                    acked.lock().expect("lock").insert(v["nonce"].as_str().expect("nonce").to_owned(), id);
                    let frame = json!({"type": "send", "room_id": room, "body": format!("ws {who} {next}"), "nonce": nonce(next)});
                    // The server may be closing: a failed send is simply not acknowledged.
                    let _ = ws.stream.send(Message::text(frame.to_string())).await;
                    next += 1;
                }
            }
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

/// Posts one message after another until the server stops answering.
async fn rest_sender(base: String, token: String, room: String, who: usize, acked: Acked) {
    let http = reqwest::Client::builder().timeout(WAIT).build().expect("client");
    for n in 0.. {
        let nonce = format!("rest{who}-{n}");
        let sent = http
            .post(format!("{base}/api/v1/rooms/{room}/messages"))
            .bearer_auth(&token)
            .json(&json!({"body": format!("rest {who} {n}"), "nonce": nonce}))
            .send()
            .await;
        let Ok(response) = sent else { return };
        if response.status() != StatusCode::OK && response.status() != StatusCode::CREATED {
            return;
        }
        let Ok(body) = response.json::<Value>().await else { return };
        let id = body["id"].as_str().expect("an id").to_owned();
        acked.lock().expect("lock").insert(nonce, id);
    }
}

/// The index of the first log line holding every one of `parts`, at or after `from`.
fn line_of(logs: &[String], from: usize, parts: &[&str]) -> usize {
    logs.iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| parts.iter().all(|p| l.contains(p)))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no line with {parts:?} after line {from}:\n{}", logs.join("\n")))
}

#[tokio::test]
async fn sigterm_under_load_stops_every_task_in_order_and_loses_nothing_acknowledged() {
    let mut app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "load", "public").await;
    let acked: Acked = Arc::default();

    let mut senders = Vec::new();
    for who in 0..4 {
        let ws = app.ws(&alice.token).await;
        senders.push(tokio::spawn(ws_sender(ws, room.clone(), who, acked.clone())));
    }
    let mut posters = Vec::new();
    for who in 0..2 {
        posters.push(tokio::spawn(rest_sender(
            app.base.clone(),
            alice.token.clone(),
            room.clone(),
            who,
            acked.clone(),
        )));
    }
    // Under load: wait until a good number of sends have been acknowledged.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").len() < 300 {
        assert!(tokio::time::Instant::now() < deadline, "the senders never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (mut app, (code, _took)) = tokio::task::spawn_blocking(move || {
        let r = app.terminate();
        (app, r)
    })
    .await
    .expect("join");
    assert_eq!(code, Some(0), "exits 0 after SIGTERM");
    for sender in senders {
        assert_eq!(sender.await.expect("sender"), Some(1001), "WebSockets are closed with 1001");
    }
    for poster in posters {
        poster.await.expect("poster");
    }

    // Every step of the stop, in order, with no task left behind.
    let logs = app.logs();
    let start = line_of(&logs, 0, &["shutting down"]);
    let sessions = line_of(&logs, start, &["stopped", "node=parlor/gateway/sessions"]);
    let background = line_of(&logs, sessions, &["stopped", "node=parlor/gateway/background"]);
    let gateway = line_of(&logs, background, &["role stopped", "role=\"gateway\""]);
    let worker = line_of(&logs, gateway, &["role stopped", "role=\"worker\""]);
    let jobs = line_of(&logs, worker, &["role stopped", "role=\"notifier\""]);
    let services = line_of(&logs, jobs, &["stopped", "node=parlor/services"]);
    let store = line_of(&logs, services, &["store closed"]);
    line_of(&logs, store, &["stopped: no task left"]);
    for line in &logs[start..] {
        assert!(
            !line.contains("still running") && !line.contains("stopping anyway") && !line.contains("ERROR"),
            "a clean stop: {line}"
        );
    }

    // Nothing acknowledged was lost: every acknowledged send is stored, under the id its
    // acknowledgement named, once, with no gap in the seqs.
    app.start_again().await;
    let acked = acked.lock().expect("lock").clone();
    let mut stored: Vec<Value> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(seq) => format!("/api/v1/rooms/{room}/messages?limit=100&before={seq}"),
            None => format!("/api/v1/rooms/{room}/messages?limit=100"),
        };
        let (status, page) = app.get(&path, &alice.token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let messages = page["messages"].as_array().expect("messages").clone();
        if messages.is_empty() {
            break;
        }
        before = messages.iter().filter_map(|m| m["seq"].as_i64()).min();
        stored.extend(messages);
    }
    let ids: HashSet<&str> = stored.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "no message stored twice");
    for (nonce, id) in &acked {
        assert!(ids.contains(id.as_str()), "acknowledged {nonce} ({id}) is stored");
    }
    let mut seqs: Vec<i64> = stored.iter().filter_map(|m| m["seq"].as_i64()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gapless seqs");
}
