//! The newcomer's path end to end, durability across SIGKILL, and graceful shutdown.

mod common;

use common::{TestApp, WsClient};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn two_users_register_and_chat_over_websockets() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;

    let mut a = app.ws(&alice.token).await;
    let mut b = app.ws(&bob.token).await;
    assert_eq!(b.ready["user"]["username"], "bob");
    assert!(b.ready["rooms"].as_array().expect("rooms").iter().any(|r| r["id"] == room.as_str()));
    assert!(b.ready["heartbeat_ms"].as_u64().expect("heartbeat") > 0);

    a.send(json!({"type": "send", "room_id": room, "body": "hi **bob**", "nonce": "n-1"})).await;
    let ack = a.next_of_type("ack").await;
    assert_eq!(ack["nonce"], "n-1");
    assert_eq!(ack["message"]["seq"], 1);
    let created = b.next_of_type("message.created").await;
    assert_eq!(created["message"]["body"], "hi **bob**");
    assert_eq!(created["message"]["html"], "<p>hi <strong>bob</strong></p>\n");
    assert_eq!(created["message"]["author"]["id"], alice.id.as_str());

    b.send(json!({"type": "send", "room_id": room, "body": "hello @alice", "nonce": "n-2"})).await;
    let got = a.next_of_type("message.created").await;
    // Alice's own message arrives first on her socket, then Bob's.
    let got = if got["message"]["seq"] == 1 { a.next_of_type("message.created").await } else { got };
    assert_eq!(got["message"]["seq"], 2);
    assert_eq!(got["message"]["mentions"], json!([alice.id]));

    let (status, history) = app.get(&format!("/api/v1/rooms/{room}/messages"), &bob.token).await;
    assert_eq!(status, StatusCode::OK);
    let seqs: Vec<i64> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(seqs, vec![1, 2]);
}

async fn send_acked(ws: &mut WsClient, room: &str, i: usize) -> Value {
    ws.send(
        json!({"type": "send", "room_id": room, "body": format!("message {i}"), "nonce": format!("n{i}")}),
    )
    .await;
    ws.next_of_type("ack").await
}

#[tokio::test]
async fn acknowledged_messages_survive_sigkill_exactly_once_and_gapless() {
    let mut app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "durable", "public").await;
    let mut ws = app.ws(&alice.token).await;
    let mut acked = Vec::new();
    for i in 0..60 {
        acked.push(send_acked(&mut ws, &room, i).await["message"]["id"].as_str().expect("id").to_owned());
    }
    // A burst without waiting: every ack that arrives is a promise.
    for i in 60..120 {
        ws.send(json!({"type": "send", "room_id": room, "body": format!("message {i}"), "nonce": format!("n{i}")})).await;
    }
    for _ in 60..120 {
        acked.push(ws.next_of_type("ack").await["message"]["id"].as_str().expect("id").to_owned());
    }

    app.kill_and_restart().await;

    let (status, page) = app.get(&format!("/api/v1/rooms/{room}/messages?limit=200"), &alice.token).await;
    assert_eq!(status, StatusCode::OK);
    let messages = page["messages"].as_array().expect("messages");
    let ids: Vec<&str> = messages.iter().map(|m| m["id"].as_str().unwrap_or_default()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no message twice");
    for id in &acked {
        assert!(unique.contains(id.as_str()), "acknowledged message {id} is in the history");
    }
    let seqs: Vec<i64> = messages.iter().map(|m| m["seq"].as_i64().unwrap_or(0)).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "seqs start at 1 with no gap");

    // Resending a nonce after the restart gives back the first message.
    let (status, again) = app
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            &alice.token,
            json!({"body": "message 5", "nonce": "n5"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], acked[5].as_str());
    // Tokens survive the restart too (the signing key is kept in the data dir).
    let (status, _) = app.get("/api/v1/users/me", &alice.token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_zero() {
    let mut app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mut ws = app.ws(&alice.token).await;
    let (code, took) = tokio::task::spawn_blocking(move || {
        let r = app.terminate();
        drop(app);
        r
    })
    .await
    .expect("join");
    assert_eq!(ws.closed().await, Some(1001));
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(10), "exited in {took:?}");
}
