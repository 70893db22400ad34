//! The WebSocket protocol (`GET /api/v1/ws`) as the contract gives it: authentication, sends and
//! their answers, errors that keep the connection open, limits and close codes, typing, read
//! markers, sync, heartbeats, slow consumers, session ends, and the events REST changes cause.

mod common;

use common::{Got, TestApp, WAIT, WsClient};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long a test watches for a frame that must not come.
const QUIET: Duration = Duration::from_millis(300);

/// A WebSocket whose upgrade request carries this `Authorization` header; no `ready` awaited.
async fn ws_with_header(app: &TestApp, authorization: &str) -> WsClient {
    let mut req = format!("ws://{}/api/v1/ws", app.addr).into_client_request().expect("request");
    req.headers_mut().insert("authorization", authorization.parse().expect("header"));
    let (stream, _) = tokio_tungstenite::connect_async(req).await.expect("the upgrade succeeds");
    WsClient { stream, ready: Value::Null }
}

/// The next frame is `error` with code `unauthorized`, then the socket closes with 4001.
async fn expect_unauthorized_close(ws: &mut WsClient) {
    let frame = ws.next_json().await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], "unauthorized", "{frame}");
    assert!(frame["message"].is_string(), "{frame}");
    assert_eq!(ws.closed().await, Some(4001));
}

/// The socket gets an `error` frame saying `unauthorized`, then closes with 4001 (the end of a
/// session); other frames may come before.
async fn expect_session_end_close(ws: &mut WsClient) {
    let mut told = false;
    loop {
        match ws.next().await {
            Got::Frame(frame) if frame["type"] == "error" => {
                assert_eq!(frame["code"], "unauthorized", "{frame}");
                told = true;
            }
            Got::Frame(_) => {}
            Got::Closed(code) => {
                assert_eq!(code, Some(4001));
                assert!(told, "an error frame says why before the close");
                return;
            }
        }
    }
}

/// A `send` frame.
fn send_frame(room: &str, body: &str, nonce: &str) -> Value {
    json!({"type": "send", "room_id": room, "body": body, "nonce": nonce})
}

/// The `ack` or `error` answering the send with `nonce`, skipping every other frame.
async fn answer_to(ws: &mut WsClient, nonce: &str) -> Value {
    loop {
        let frame = ws.next_json().await;
        if (frame["type"] == "ack" || frame["type"] == "error") && frame["nonce"] == nonce {
            return frame;
        }
    }
}

/// Asserts a frame is an `error` with this code.
#[track_caller]
fn assert_error_frame(frame: &Value, code: &str) {
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], code, "{frame}");
}

/// The next `error` frame, skipping others.
async fn next_error(ws: &mut WsClient) -> Value {
    ws.next_of_type("error").await
}

/// The next frame that is not about presence or typing.
async fn next_significant(ws: &mut WsClient) -> Value {
    loop {
        let frame = ws.next_json().await;
        if frame["type"] != "presence" && frame["type"] != "typing" {
            return frame;
        }
    }
}

/// The connection is open and served: a `ping` gets a `pong`.
async fn assert_alive(ws: &mut WsClient) {
    ws.send(json!({"type": "ping"})).await;
    let pong = ws.next_of_type("pong").await;
    assert_eq!(pong, json!({"type": "pong"}));
}

/// The next `message.created` seqs of a room, `n` of them, skipping other frames.
async fn created_seqs(ws: &mut WsClient, room: &str, n: usize) -> Vec<i64> {
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        let frame = ws.next_of_type("message.created").await;
        if frame["message"]["room_id"] == room {
            seqs.push(frame["message"]["seq"].as_i64().expect("seq"));
        }
    }
    seqs
}

/// Reads (and so answers pings) until `count` pings have come; fails on a close, or if they do
/// not come within WAIT.
async fn read_pings(ws: &mut WsClient, count: usize) {
    let deadline = Instant::now() + WAIT;
    let mut pings = 0;
    while pings < count {
        match tokio::time::timeout_at(deadline, ws.stream.next()).await {
            Err(_) => panic!("{pings} pings of {count} came in {WAIT:?}"),
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Close(frame)))) => panic!("the server closed a live connection: {frame:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("the connection failed: {e}"),
            Ok(None) => panic!("the connection ended"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_auth_first_frame_gets_ready_with_the_session_the_user_the_rooms_and_the_heartbeat() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&bob, "general", "public").await;
    app.join(&alice, &room).await;
    app.say_numbered(&bob, &room, "bob says", 1..=3).await;
    let (status, _) = app.post(&format!("/api/v1/rooms/{room}/read"), &alice.token, json!({"seq": 1})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.say(&alice, &room, "alice says hi").await;

    let mut ws = app.ws_raw().await;
    ws.send(json!({"type": "auth", "token": alice.token})).await;
    let ready = ws.next_json().await;
    assert_eq!(ready["type"], "ready", "the first frame after auth is ready: {ready}");
    assert_eq!(ready["user"]["id"], alice.id.as_str());
    assert_eq!(ready["user"]["username"], "alice");
    assert!(ready["heartbeat_ms"].as_u64().expect("heartbeat_ms") > 0);

    let (status, sessions) = app.get("/api/v1/auth/sessions", &alice.token).await;
    assert_eq!(status, StatusCode::OK);
    let current = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["current"] == true)
        .expect("a current session")
        .clone();
    assert_eq!(ready["session_id"], current["id"], "ready names the token's session");

    let rooms = ready["rooms"].as_array().expect("rooms");
    assert_eq!(rooms.len(), 1, "{ready}");
    let r = &rooms[0];
    assert_eq!(r["id"], room.as_str());
    assert_eq!(r["last_seq"], 4);
    assert_eq!(r["last_read_seq"], 1);
    assert_eq!(r["unread_count"], 2, "unread counts others' messages above the marker: {r}");

    assert_alive(&mut ws).await;
}

#[tokio::test]
async fn a_header_authenticated_socket_gets_ready_without_any_frame() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let ws = app.ws(&alice.token).await;
    assert_eq!(ws.ready["type"], "ready");
    assert_eq!(ws.ready["user"]["id"], alice.id.as_str());
    assert_eq!(ws.ready["rooms"], json!([]));
}

#[tokio::test]
async fn a_bad_header_token_gets_unauthorized_then_close_4001() {
    let app = TestApp::spawn().await;
    let mut ws = ws_with_header(&app, "Bearer not-a-token").await;
    expect_unauthorized_close(&mut ws).await;
}

#[tokio::test]
async fn a_bad_token_in_the_auth_frame_gets_unauthorized_then_close_4001() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mut ws = app.ws_raw().await;
    // A real token with its signature broken.
    let mut forged = alice.token.clone();
    let last = forged.pop().expect("a non-empty token");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    ws.send(json!({"type": "auth", "token": forged})).await;
    expect_unauthorized_close(&mut ws).await;

    let mut ws = app.ws_raw().await;
    ws.send(json!({"type": "auth", "token": "garbage"})).await;
    expect_unauthorized_close(&mut ws).await;
}

#[tokio::test]
async fn a_first_frame_of_another_type_gets_unauthorized_then_close_4001() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    let mut ws = app.ws_raw().await;
    ws.send(json!({"type": "ping"})).await;
    expect_unauthorized_close(&mut ws).await;

    let mut ws = app.ws_raw().await;
    ws.send(send_frame(&room, "sneaking in", "n-1")).await;
    expect_unauthorized_close(&mut ws).await;

    let mut ws = app.ws_raw().await;
    ws.send_text("not even json".to_owned()).await;
    expect_unauthorized_close(&mut ws).await;

    assert!(app.history(&alice, &room).await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn silence_past_the_auth_timeout_gets_unauthorized_then_close_4001() {
    let app = TestApp::spawn_with(&[("--ws-auth-timeout", "300ms")]).await;
    let started = Instant::now();
    let mut ws = app.ws_raw().await;
    expect_unauthorized_close(&mut ws).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "closed after {took:?}, before the timeout");
    assert!(took < WAIT, "closed after {took:?}, long past the timeout");
}

#[tokio::test]
async fn an_auth_frame_with_a_token_of_an_ended_session_gets_close_4001() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (status, _) = app.call(Method::POST, "/api/v1/auth/logout", Some(&alice.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut ws = app.ws_raw().await;
    ws.send(json!({"type": "auth", "token": alice.token})).await;
    expect_unauthorized_close(&mut ws).await;

    let mut ws = ws_with_header(&app, &format!("Bearer {}", alice.token)).await;
    expect_unauthorized_close(&mut ws).await;
}

// ---------------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_send_is_acked_with_its_nonce_and_reaches_every_connection_of_every_member() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;

    let mut a1 = app.ws(&alice.token).await;
    let mut a2 = app.ws(&alice.token).await;
    let mut b = app.ws(&bob.token).await;

    a1.send(send_frame(&room, "hello *everyone*", "nonce-1")).await;
    // The sender gets both the ack and the event, in either order.
    let (mut ack, mut own_created) = (Value::Null, Value::Null);
    while ack.is_null() || own_created.is_null() {
        let frame = next_significant(&mut a1).await;
        match frame["type"].as_str() {
            Some("ack") => ack = frame,
            Some("message.created") => own_created = frame,
            _ => panic!("unexpected frame {frame}"),
        }
    }
    assert_eq!(ack["type"], "ack", "{ack}");
    let message = &ack["message"];
    assert_eq!(message["room_id"], room.as_str());
    assert_eq!(message["seq"], 1);
    assert_eq!(message["body"], "hello *everyone*");
    assert_eq!(message["nonce"], "nonce-1");
    assert_eq!(message["author"]["id"], alice.id.as_str());
    assert_eq!(message["deleted"], false);
    let id = message["id"].as_str().expect("id").to_owned();

    assert_eq!(own_created["message"]["id"], id.as_str(), "{own_created}");
    for ws in [&mut a2, &mut b] {
        let created = ws.next_of_type("message.created").await;
        assert_eq!(created["message"]["id"], id.as_str(), "{created}");
        assert_eq!(created["message"]["body"], "hello *everyone*");
        assert_eq!(created["message"]["html"], "<p>hello <em>everyone</em></p>\n");
    }

    let stored = app.history(&bob, &room).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], id.as_str(), "the acked message is in the history");
}

#[tokio::test]
async fn a_send_from_a_non_member_of_a_public_room_is_forbidden_with_its_nonce_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let room = app.room(&alice, "general", "public").await;
    let mut ws = app.ws(&mallory.token).await;

    ws.send(send_frame(&room, "let me in", "m-1")).await;
    let err = answer_to(&mut ws, "m-1").await;
    assert_error_frame(&err, "forbidden");
    assert!(err["message"].is_string());

    ws.send(json!({"type": "typing", "room_id": room})).await;
    assert_eq!(next_error(&mut ws).await["code"], "forbidden");

    assert_alive(&mut ws).await;
    assert!(app.history(&alice, &room).await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn a_send_from_a_non_member_of_a_private_room_is_not_found_with_its_nonce_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let room = app.room(&alice, "secret", "private").await;
    let mut ws = app.ws(&mallory.token).await;

    ws.send(send_frame(&room, "let me in", "m-1")).await;
    let err = answer_to(&mut ws, "m-1").await;
    assert_error_frame(&err, "not_found");

    ws.send(send_frame("no-such-room", "anyone?", "m-2")).await;
    let err = answer_to(&mut ws, "m-2").await;
    assert_eq!(err["code"], "not_found", "{err}");

    assert_alive(&mut ws).await;
    assert!(app.history(&alice, &room).await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn the_same_nonce_sent_twice_stores_one_message_and_both_acks_carry_its_id() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let mut ws = app.ws(&alice.token).await;

    ws.send(send_frame(&room, "only once", "same")).await;
    let first = answer_to(&mut ws, "same").await;
    assert_eq!(first["type"], "ack", "{first}");
    ws.send(send_frame(&room, "only once", "same")).await;
    let second = answer_to(&mut ws, "same").await;
    assert_eq!(second["type"], "ack", "{second}");
    assert_eq!(second["message"]["id"], first["message"]["id"]);
    assert_eq!(second["message"]["seq"], 1);

    // Sent back to back, before the first is durable, it is still one message.
    ws.send(send_frame(&room, "racing", "race")).await;
    ws.send(send_frame(&room, "racing", "race")).await;
    let a = answer_to(&mut ws, "race").await;
    let b = answer_to(&mut ws, "race").await;
    assert_eq!(a["type"], "ack", "{a}");
    assert_eq!(b["type"], "ack", "{b}");
    assert_eq!(a["message"]["id"], b["message"]["id"]);

    let stored = app.history(&alice, &room).await;
    let seqs: Vec<&Value> = stored.iter().map(|m| &m["seq"]).collect();
    assert_eq!(seqs, vec![&json!(1), &json!(2)], "two nonces, two messages: {stored:?}");
}

#[tokio::test]
async fn malformed_frames_get_invalid_request_and_the_connection_stays_open() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let mut ws = app.ws(&alice.token).await;

    let bad: Vec<String> = vec![
        "{not json".to_owned(),
        "[1, 2, 3]".to_owned(),
        "\"send\"".to_owned(),
        json!({"no_type": true}).to_string(),
        json!({"type": "dance"}).to_string(),
        json!({"type": 7}).to_string(),
        json!({"type": "send", "room_id": room, "body": 42, "nonce": "n-1"}).to_string(),
        json!({"type": "send", "room_id": room, "nonce": "n-2"}).to_string(),
        json!({"type": "send", "room_id": ["r"], "body": "hi", "nonce": "n-3"}).to_string(),
        json!({"type": "read", "room_id": room, "seq": "three"}).to_string(),
        json!({"type": "typing"}).to_string(),
        json!({"type": "sync", "rooms": [room]}).to_string(),
        json!({"type": "sync", "rooms": {room.as_str(): "zero"}}).to_string(),
    ];
    for text in bad {
        ws.send_text(text.clone()).await;
        let err = next_error(&mut ws).await;
        assert_eq!(err["code"], "invalid_request", "{text} got {err}");
        assert!(err["message"].is_string(), "{err}");
    }
    ws.stream.send(Message::binary(b"{\"type\":\"ping\"}".to_vec())).await.expect("send binary");
    assert_eq!(next_error(&mut ws).await["code"], "invalid_request", "a binary frame");

    assert_alive(&mut ws).await;
    assert!(app.history(&alice, &room).await.is_empty(), "nothing was stored");

    // And it still sends.
    ws.send(send_frame(&room, "still here", "n-ok")).await;
    assert_eq!(answer_to(&mut ws, "n-ok").await["type"], "ack");
}

#[tokio::test]
async fn a_frame_of_64_kib_is_read_and_one_over_closes_the_connection_with_1009() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mut ws = app.ws(&alice.token).await;

    let padded = |size: usize| {
        let head = r#"{"type":"ping","pad":""#;
        let tail = r#""}"#;
        let text = format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()));
        assert_eq!(text.len(), size);
        text
    };
    ws.send_text(padded(64 * 1024)).await;
    // A frame at the limit is served (a pong, or an error for the unknown field), not closed.
    let answer = next_significant(&mut ws).await;
    assert!(answer["type"] == "pong" || answer["type"] == "error", "{answer}");
    assert_alive(&mut ws).await;

    ws.send_text(padded(64 * 1024 + 1)).await;
    assert_eq!(ws.closed().await, Some(1009));
}

#[tokio::test]
async fn a_much_larger_frame_also_closes_the_connection_with_1009() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mut ws = app.ws(&alice.token).await;
    ws.send_text(format!(r#"{{"type":"ping","pad":"{}"}}"#, "y".repeat(300 * 1024))).await;
    assert_eq!(ws.closed().await, Some(1009));
}

#[tokio::test]
async fn a_body_over_4000_characters_gets_validation_failed_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let mut ws = app.ws(&alice.token).await;

    ws.send(send_frame(&room, &"é".repeat(4001), "too-long")).await;
    let err = answer_to(&mut ws, "too-long").await;
    assert_error_frame(&err, "validation_failed");
    if let Some(field) = err.get("field") {
        assert_eq!(field, "body", "{err}");
    }

    ws.send(send_frame(&room, "   ", "blank")).await;
    let err = answer_to(&mut ws, "blank").await;
    assert_eq!(err["code"], "validation_failed", "a blank body: {err}");

    assert_alive(&mut ws).await;
    assert!(app.history(&alice, &room).await.is_empty(), "nothing was stored");

    // Exactly 4000 characters is fine.
    ws.send(send_frame(&room, &"é".repeat(4000), "just-right")).await;
    let ack = answer_to(&mut ws, "just-right").await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

#[tokio::test]
async fn a_blocked_phrase_is_rejected_with_reason_blocked_word_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;
    let mut a = app.ws(&alice.token).await;
    let mut b = app.ws(&bob.token).await;

    a.send(send_frame(&room, "Cheap! Buy   FOLLOWERS today", "spam-1")).await;
    let err = answer_to(&mut a, "spam-1").await;
    assert_error_frame(&err, "rejected");
    assert_eq!(err["reason"], "blocked_word", "{err}");

    b.assert_no("message.created", QUIET).await;
    assert!(app.history(&alice, &room).await.is_empty(), "nothing was stored");
    assert_alive(&mut a).await;
}

#[tokio::test]
async fn sends_over_the_rate_limit_get_rate_limited_with_retry_after_ms_and_are_not_stored() {
    let app = TestApp::spawn_with(&[("--send-rate", "1"), ("--send-burst", "2")]).await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let mut ws = app.ws(&alice.token).await;

    for i in 0..5 {
        ws.send(send_frame(&room, &format!("message number {i}"), &format!("n{i}"))).await;
    }
    let mut answers = HashMap::new();
    while answers.len() < 5 {
        let frame = next_significant(&mut ws).await;
        if frame["type"] == "ack" || frame["type"] == "error" {
            let nonce = frame["nonce"].as_str().expect("answers carry the nonce").to_owned();
            answers.insert(nonce, frame);
        }
    }
    let mut acked = Vec::new();
    for i in 0..5 {
        let answer = &answers[&format!("n{i}")];
        if answer["type"] == "ack" {
            acked.push(answer["message"]["id"].clone());
        } else {
            assert_eq!(answer["code"], "rate_limited", "{answer}");
            let retry = answer["retry_after_ms"].as_u64().expect("retry_after_ms");
            assert!((1..=1000).contains(&retry), "retry_after_ms {retry}");
        }
    }
    assert_eq!(answers["n0"]["type"], "ack");
    assert_eq!(answers["n1"]["type"], "ack");
    assert_eq!(answers["n4"]["code"], "rate_limited", "the burst is 2: {:?}", answers["n4"]);
    assert!(acked.len() <= 3, "at most the burst plus one refill went through: {acked:?}");

    let stored = app.history(&alice, &room).await;
    let ids: Vec<Value> = stored.iter().map(|m| m["id"].clone()).collect();
    assert_eq!(ids, acked, "exactly the acked messages are stored");
}

// ---------------------------------------------------------------------------------------------
// Typing, read markers, sync, ping
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn typing_reaches_the_other_members_but_not_the_sender() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.room(&alice, "general", "public").await;
    app.join(&bob, &room).await;
    app.join(&carol, &room).await;
    let mut a = app.ws(&alice.token).await;
    let mut b = app.ws(&bob.token).await;
    let mut c = app.ws(&carol.token).await;

    a.send(json!({"type": "typing", "room_id": room})).await;
    for ws in [&mut b, &mut c] {
        let typing = ws.next_of_type("typing").await;
        assert_eq!(typing, json!({"type": "typing", "room_id": room, "user_id": alice.id}));
    }
    a.assert_no("typing", QUIET).await;
    assert!(app.history(&alice, &room).await.is_empty(), "typing is not stored");
}

#[tokio::test]
async fn a_read_frame_moves_the_marker_and_only_the_users_other_connections_hear_of_it() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&bob, "general", "public").await;
    app.join(&alice, &room).await;
    app.say_numbered(&bob, &room, "news", 1..=3).await;
    let mut a1 = app.ws(&alice.token).await;
    let mut a2 = app.ws(&alice.token).await;
    let mut b = app.ws(&bob.token).await;

    a1.send(json!({"type": "read", "room_id": room, "seq": 2})).await;
    let read = a2.next_of_type("read").await;
    assert_eq!(read, json!({"type": "read", "room_id": room, "seq": 2}));
    a1.assert_no("read", QUIET).await;
    b.assert_no("read", Duration::from_millis(50)).await;

    let mine = app.my_room(&alice, &room).await;
    assert_eq!(mine["last_read_seq"], 2, "{mine}");
    assert_eq!(mine["unread_count"], 1, "{mine}");

    // The marker never moves back.
    a1.send(json!({"type": "read", "room_id": room, "seq": 1})).await;
    assert_alive(&mut a1).await;
    assert_eq!(app.my_room(&alice, &room).await["last_read_seq"], 2);

    // A read over REST reaches every connection of the user.
    let (status, _) = app.post(&format!("/api/v1/rooms/{room}/read"), &alice.token, json!({"seq": 3})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for ws in [&mut a1, &mut a2] {
        // a2 may first hear that the backward read left the marker at 2; never less.
        loop {
            let read = ws.next_of_type("read").await;
            assert_eq!(read["room_id"], room.as_str());
            let seq = read["seq"].as_i64().expect("seq");
            assert!(seq >= 2, "the marker went back: {read}");
            if seq == 3 {
                break;
            }
        }
    }
    assert_eq!(app.my_room(&alice, &room).await["unread_count"], 0);
}

#[tokio::test]
async fn sync_sends_the_missed_messages_in_order_then_synced() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&bob, "general", "public").await;
    let quiet = app.room(&bob, "quiet", "public").await;
    app.join(&alice, &room).await;
    app.join(&alice, &quiet).await;
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(app.say(&bob, &room, &format!("while you were away {i}")).await["id"].clone());
    }

    let mut ws = app.ws(&alice.token).await;
    ws.send(json!({"type": "sync", "rooms": {room.as_str(): 2, quiet.as_str(): 0}})).await;
    for (i, id) in ids.iter().enumerate().skip(2) {
        let frame = next_significant(&mut ws).await;
        assert_eq!(frame["type"], "message.created", "{frame}");
        assert_eq!(frame["message"]["seq"], i + 1, "{frame}");
        assert_eq!(&frame["message"]["id"], id);
        assert_eq!(frame["message"]["room_id"], room.as_str());
    }
    assert_eq!(next_significant(&mut ws).await, json!({"type": "synced"}));

    // Nothing missed: just `synced`.
    ws.send(json!({"type": "sync", "rooms": {room.as_str(): 5}})).await;
    assert_eq!(next_significant(&mut ws).await, json!({"type": "synced"}));
}

#[tokio::test]
async fn sync_past_500_messages_sends_500_then_sync_truncated_then_synced() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("busy").await;

    let mut a = app.ws(&alice.token).await;
    const TOTAL: usize = 510;
    for i in 0..TOTAL {
        a.send(send_frame(&room, &format!("busy message {i}"), &format!("busy-{i}"))).await;
    }
    for _ in 0..TOTAL {
        let ack = a.next_of_type("ack").await;
        assert!(ack["message"]["seq"].is_i64(), "{ack}");
    }

    let mut b = app.ws(&bob.token).await;
    b.send(json!({"type": "sync", "rooms": {room.as_str(): 0}})).await;
    for seq in 1..=500 {
        let frame = next_significant(&mut b).await;
        assert_eq!(frame["type"], "message.created", "{frame}");
        assert_eq!(frame["message"]["seq"], seq, "in order from the first");
    }
    assert_eq!(next_significant(&mut b).await, json!({"type": "sync.truncated", "room_id": room}));
    assert_eq!(next_significant(&mut b).await, json!({"type": "synced"}));

    // The rest, from where the first sync stopped.
    b.send(json!({"type": "sync", "rooms": {room.as_str(): 500}})).await;
    for seq in 501..=TOTAL {
        let frame = next_significant(&mut b).await;
        assert_eq!(frame["type"], "message.created", "{frame}");
        assert_eq!(frame["message"]["seq"], seq);
    }
    assert_eq!(next_significant(&mut b).await, json!({"type": "synced"}));
}

#[tokio::test]
async fn a_ping_frame_gets_a_pong() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mut ws = app.ws(&alice.token).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(next_significant(&mut ws).await, json!({"type": "pong"}));
}

// ---------------------------------------------------------------------------------------------
// Heartbeats, slow consumers, session ends
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_server_pings_on_the_heartbeat_and_a_client_that_answers_stays_connected() {
    let app = TestApp::spawn_with(&[("--heartbeat", "200ms")]).await;
    let alice = app.register("alice").await;
    let mut ws = app.ws(&alice.token).await;
    assert_eq!(ws.ready["heartbeat_ms"], 200);

    // Reading answers the server's pings (tungstenite pongs on its own). The third ping comes
    // three heartbeats on, past the two after which a silent client is closed.
    read_pings(&mut ws, 3).await;
    assert_alive(&mut ws).await;
}

/// What a raw read of the socket saw, bypassing tungstenite (which would answer pings).
struct RawClose {
    pings: usize,
    code: Option<u16>,
    after: Duration,
}

/// Reads server frames straight off the TCP stream, never writing a byte (so no pong), until the
/// close frame or the end of the stream, `after` counted from `started`. Server frames are
/// unmasked: a two-byte header, an optional extended length, the payload.
async fn read_raw_until_close(ws: &mut WsClient, started: Instant) -> RawClose {
    use tokio::io::AsyncReadExt;
    let tcp = ws.stream.get_mut();
    let mut buf: Vec<u8> = Vec::new();
    let mut pings = 0;
    loop {
        // Parse the complete frames in the buffer.
        loop {
            if buf.len() < 2 {
                break;
            }
            let opcode = buf[0] & 0x0f;
            let (len, head) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&buf[2..10]);
                    (u64::from_be_bytes(n) as usize, 10)
                }
                126 | 127 => break,
                n => (n as usize, 2),
            };
            assert_eq!(buf[1] & 0x80, 0, "server frames are not masked");
            if buf.len() < head + len {
                break;
            }
            let payload: Vec<u8> = buf[head..head + len].to_vec();
            buf.drain(..head + len);
            match opcode {
                0x9 => pings += 1,
                0x8 => {
                    let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return RawClose { pings, code, after: started.elapsed() };
                }
                _ => {}
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
            .await
            .expect("the server closes in time")
            .expect("a raw read");
        if n == 0 {
            return RawClose { pings, code: None, after: started.elapsed() };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_client_that_does_not_answer_pings_is_closed_with_4002_after_twice_the_heartbeat() {
    let app = TestApp::spawn_with(&[("--heartbeat", "200ms")]).await;
    let alice = app.register("alice").await;
    // Counted from before the connection, so from before the server's count starts.
    let started = Instant::now();
    let mut ws = app.ws(&alice.token).await;

    // From `ready` on, the client sends nothing at all, not even pongs. (Whether a ping came
    // first is not asserted: a server that wakes late past both deadlines closes at once.)
    let seen = read_raw_until_close(&mut ws, started).await;
    assert_eq!(seen.code, Some(4002), "closed after {:?} and {} pings", seen.after, seen.pings);
    assert!(
        seen.after >= Duration::from_millis(400),
        "closed after {:?}, before twice the heartbeat",
        seen.after
    );
    assert!(seen.after < WAIT, "closed after {:?}, long past twice the heartbeat", seen.after);
}

#[tokio::test]
async fn logout_closes_that_sessions_socket_with_4001_and_another_session_stays_open() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (other_token, _) = app.login_ok("alice", &alice.password).await;

    let mut first = app.ws(&alice.token).await;
    let mut first_again = app.ws(&alice.token).await;
    let mut other = app.ws(&other_token).await;
    assert_ne!(first.ready["session_id"], other.ready["session_id"]);

    let (status, _) = app.call(Method::POST, "/api/v1/auth/logout", Some(&alice.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    expect_session_end_close(&mut first).await;
    expect_session_end_close(&mut first_again).await;

    other.assert_no("error", QUIET).await;
    assert_alive(&mut other).await;
}

#[tokio::test]
async fn ending_a_session_from_another_closes_its_socket_with_4001() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (other_token, _) = app.login_ok("alice", &alice.password).await;
    let mut victim = app.ws(&alice.token).await;
    let mut keeper = app.ws(&other_token).await;
    let session = victim.ready["session_id"].as_str().expect("session id").to_owned();

    let (status, _) =
        app.call(Method::DELETE, &format!("/api/v1/auth/sessions/{session}"), Some(&other_token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    expect_session_end_close(&mut victim).await;
    assert_alive(&mut keeper).await;
}

#[tokio::test]
async fn a_client_that_never_reads_while_a_room_floods_is_closed_as_a_slow_consumer_and_catches_up_with_sync()
{
    let app = TestApp::spawn_with(&[("--ws-outbound-buffer", "16")]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&bob, "firehose", "public").await;
    app.join(&alice, &room).await;
    let mut slow = app.ws(&alice.token).await;

    // Bob floods with large messages while Alice never reads; the kernel's socket buffers absorb
    // a few megabytes, then her queue fills. Her presence turning offline shows the server closed
    // her (only) connection.
    let filler = "lorem ipsum dolor sit amet ".repeat(130);
    let mut posted = 0usize;
    let closed = loop {
        let bodies: Vec<String> = (posted..posted + 10).map(|i| format!("flood {i} {filler}")).collect();
        futures_util::future::join_all(bodies.iter().map(|body| app.say(&bob, &room, body))).await;
        posted += 10;
        let (status, user) = app.get(&format!("/api/v1/users/{}", alice.id), &bob.token).await;
        assert_eq!(status, StatusCode::OK, "{user}");
        if user["presence"]["status"] == "offline" {
            break true;
        }
        if posted >= 4000 {
            break false;
        }
    };
    assert!(closed, "the server still buffered for a client that read none of {posted} messages");

    // When she finally reads, she gets what was in flight and then the close.
    let mut last_seq = 0;
    let code = loop {
        match slow.next().await {
            Got::Frame(frame) if frame["type"] == "message.created" => {
                let seq = frame["message"]["seq"].as_i64().expect("seq");
                assert_eq!(seq, last_seq + 1, "in order, without gaps, until the close");
                last_seq = seq;
            }
            Got::Frame(_) => {}
            Got::Closed(code) => break code,
        }
    };
    assert!(code == Some(1013) || code.is_none(), "closed with {code:?}");
    assert!((last_seq as usize) < posted, "she was not buffered for without bound ({last_seq} of {posted})");

    // She comes back and catches up from the last seq she saw.
    let mut back = app.ws(&alice.token).await;
    back.send(json!({"type": "sync", "rooms": {room.as_str(): last_seq}})).await;
    let mut expect = last_seq + 1;
    loop {
        let frame = next_significant(&mut back).await;
        match frame["type"].as_str() {
            Some("message.created") => {
                assert_eq!(frame["message"]["seq"], expect);
                expect += 1;
            }
            Some("sync.truncated") => {
                assert_eq!(frame["room_id"], room.as_str());
                assert_eq!(expect - 1 - last_seq, 500, "truncated after 500");
            }
            Some("synced") => break,
            _ => panic!("unexpected frame {frame}"),
        }
    }
    assert!(expect > last_seq + 1, "sync sent what she missed");
}

#[tokio::test]
async fn a_burst_past_the_outbound_bound_closes_a_client_that_is_not_reading_with_1013() {
    let app = TestApp::spawn_with(&[("--ws-outbound-buffer", "16")]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&bob, "burst", "public").await;
    app.join(&alice, &room).await;
    let mut slow = app.ws(&alice.token).await;

    // 300 concurrent posts are committed and published in batches far larger than her queue.
    const TOTAL: i64 = 300;
    let bodies: Vec<String> = (0..TOTAL).map(|i| format!("burst {i}")).collect();
    futures_util::future::join_all(bodies.iter().map(|body| app.say(&bob, &room, body))).await;

    let mut last_seq = 0;
    let code = loop {
        match slow.next().await {
            Got::Frame(frame) if frame["type"] == "message.created" => {
                let seq = frame["message"]["seq"].as_i64().expect("seq");
                assert!(seq > last_seq, "in order until the close");
                last_seq = seq;
            }
            Got::Frame(_) => {}
            Got::Closed(code) => break code,
        }
    };
    assert_eq!(code, Some(1013), "closed as a slow consumer after {last_seq} of {TOTAL} messages");
    assert!(last_seq < TOTAL);

    let mut back = app.ws(&alice.token).await;
    back.send(json!({"type": "sync", "rooms": {room.as_str(): last_seq}})).await;
    for seq in last_seq + 1..=TOTAL {
        let frame = next_significant(&mut back).await;
        assert_eq!(frame["type"], "message.created", "{frame}");
        assert_eq!(frame["message"]["seq"], seq);
    }
    assert_eq!(next_significant(&mut back).await, json!({"type": "synced"}));
}

// ---------------------------------------------------------------------------------------------
// Events from REST changes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn joins_leaves_and_room_changes_reach_the_connected_members() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&alice, "general", "public").await;
    let mut a = app.ws(&alice.token).await;

    app.join(&bob, &room).await;
    let joined = a.next_of_type("member.joined").await;
    assert_eq!(joined["room_id"], room.as_str());
    assert_eq!(joined["user"]["id"], bob.id.as_str());
    assert_eq!(joined["user"]["username"], "bob");

    let mut b = app.ws(&bob.token).await;
    let (status, updated) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/rooms/{room}"),
            Some(&alice.token),
            Some(json!({"name": "town square", "topic": "all things"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    for ws in [&mut a, &mut b] {
        let event = ws.next_of_type("room.updated").await;
        assert_eq!(event["room"]["id"], room.as_str());
        assert_eq!(event["room"]["name"], "town square");
        assert_eq!(event["room"]["topic"], "all things");
    }

    let (status, _) =
        app.call(Method::POST, &format!("/api/v1/rooms/{room}/leave"), Some(&bob.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let left = a.next_of_type("member.left").await;
    assert_eq!(left, json!({"type": "member.left", "room_id": room, "user_id": bob.id}));

    // Bob, gone, no longer hears the room.
    let left_own = b.next_of_type("member.left").await;
    assert_eq!(left_own["room_id"], room.as_str());
    app.say(&alice, &room, "after bob left").await;
    a.next_of_type("message.created").await;
    b.assert_no("message.created", QUIET).await;
}

#[tokio::test]
async fn edits_and_deletes_over_rest_reach_the_connected_members() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;
    let mut b = app.ws(&bob.token).await;

    let message = app.say(&alice, &room, "first draft").await;
    let id = message["id"].as_str().expect("id").to_owned();
    b.next_of_type("message.created").await;

    let (status, edited) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/rooms/{room}/messages/{id}"),
            Some(&alice.token),
            Some(json!({"body": "final **draft**"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let updated = b.next_of_type("message.updated").await;
    assert_eq!(updated["message"]["id"], id.as_str());
    assert_eq!(updated["message"]["seq"], 1);
    assert_eq!(updated["message"]["body"], "final **draft**");
    assert_eq!(updated["message"]["html"], "<p>final <strong>draft</strong></p>\n");
    assert!(updated["message"]["edited_at"].is_string(), "{updated}");

    let (status, _) = app
        .call(Method::DELETE, &format!("/api/v1/rooms/{room}/messages/{id}"), Some(&alice.token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deleted = b.next_of_type("message.deleted").await;
    assert_eq!(deleted, json!({"type": "message.deleted", "room_id": room, "message_id": id, "seq": 1}));
}

#[tokio::test]
async fn a_user_added_to_a_room_while_connected_gets_its_messages_on_the_same_connection() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&alice, "inner circle", "private").await;
    let mut b = app.ws(&bob.token).await;
    assert_eq!(b.ready["rooms"], json!([]));

    let (status, body) =
        app.post(&format!("/api/v1/rooms/{room}/members"), &alice.token, json!({"user_id": bob.id})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let joined = b.next_of_type("member.joined").await;
    assert_eq!(joined["room_id"], room.as_str());
    assert_eq!(joined["user"]["id"], bob.id.as_str());

    let said = app.say(&alice, &room, "welcome bob").await;
    let created = b.next_of_type("message.created").await;
    assert_eq!(created["message"]["id"], said["id"]);
    assert_eq!(created["message"]["room_id"], room.as_str());

    // And the same connection may now send there.
    b.send(send_frame(&room, "thanks!", "bob-1")).await;
    let ack = answer_to(&mut b, "bob-1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["message"]["seq"], 2);
}

// ---------------------------------------------------------------------------------------------
// Order and presence
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn messages_from_two_senders_arrive_on_every_connection_in_seq_order_without_gaps() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.room(&alice, "race", "public").await;
    app.join(&bob, &room).await;
    app.join(&carol, &room).await;
    let mut a = app.ws(&alice.token).await;
    let mut b = app.ws(&bob.token).await;
    let mut c = app.ws(&carol.token).await;

    const EACH: usize = 100;
    for i in 0..EACH {
        a.send(send_frame(&room, &format!("alice {i}"), &format!("a{i}"))).await;
        b.send(send_frame(&room, &format!("bob {i}"), &format!("b{i}"))).await;
    }
    let expected: Vec<i64> = (1..=(2 * EACH) as i64).collect();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(created_seqs(ws, &room, 2 * EACH).await, expected);
    }
    let stored = app.history(&carol, &room).await;
    assert_eq!(stored.len(), 2 * EACH);
    let alice_bodies: Vec<&str> = stored
        .iter()
        .filter(|m| m["author"]["id"] == alice.id.as_str())
        .map(|m| m["body"].as_str().unwrap_or_default())
        .collect();
    let sent: Vec<String> = (0..EACH).map(|i| format!("alice {i}")).collect();
    assert_eq!(alice_bodies, sent, "one sender's messages keep the order they were sent in");
}

#[tokio::test]
async fn a_room_mate_sees_presence_online_on_the_first_connection_and_offline_after_the_last() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let stranger = app.register("stranger").await;
    let room = app.room(&alice, "general", "public").await;
    app.join(&bob, &room).await;
    let mut a = app.ws(&alice.token).await;
    let mut s = app.ws(&stranger.token).await;

    let b1 = app.ws(&bob.token).await;
    let online = a.next_of_type("presence").await;
    assert_eq!(online["user_id"], bob.id.as_str());
    assert_eq!(online["status"], "online");

    let b2 = app.ws(&bob.token).await;
    a.assert_no("presence", QUIET).await;
    b1.close().await;
    a.assert_no("presence", QUIET).await;

    b2.close().await;
    let offline = a.next_of_type("presence").await;
    assert_eq!(offline["user_id"], bob.id.as_str());
    assert_eq!(offline["status"], "offline");
    assert!(offline["last_seen_at"].is_string(), "{offline}");

    // Someone who shares no room with Bob hears nothing of him.
    s.assert_no("presence", Duration::from_millis(50)).await;
}
