//! The WebSocket session, over a pair of channels in place of a socket (as axum's
//! `testing-websockets` example does): authentication, a send and its `ack`, a bad frame, and the
//! heartbeat.

use super::{TestGateway, TestUser, WAIT, next_command};
use crate::hub::close;
use crate::state::GatewaySettings;
use crate::ws::session;
use axum::extract::ws::Message;
use futures_util::{Sink, Stream};
use parlor_domain::model::Message as ChatMessage;
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{MessageId, Timestamp};
use serde_json::{Value, json};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// The server's end: what the client sent comes in, what the session writes goes out.
struct ServerEnd {
    incoming: mpsc::UnboundedReceiver<Result<Message, axum::Error>>,
    outgoing: mpsc::UnboundedSender<Message>,
}

impl Stream for ServerEnd {
    type Item = Result<Message, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx)
    }
}

impl Sink<Message> for ServerEnd {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.outgoing.send(item).map_err(axum::Error::new)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// The client's end of a session running in its own task.
struct Client {
    to_server: mpsc::UnboundedSender<Result<Message, axum::Error>>,
    from_server: mpsc::UnboundedReceiver<Message>,
}

impl Client {
    /// Starts a session; `header_token` as if given on the upgrade.
    fn connect(gw: &TestGateway, header_token: Option<&str>) -> Self {
        let (to_server, incoming) = mpsc::unbounded_channel();
        let (outgoing, from_server) = mpsc::unbounded_channel();
        let state = gw.state.clone();
        tokio::spawn(session(ServerEnd { incoming, outgoing }, state, header_token.map(str::to_owned)));
        Self { to_server, from_server }
    }

    fn send(&self, frame: Value) {
        self.send_text(&frame.to_string());
    }

    fn send_text(&self, text: &str) {
        self.to_server.send(Ok(Message::Text(text.into()))).expect("the session is reading");
    }

    /// The next text frame, skipping pings.
    async fn next(&mut self) -> Value {
        loop {
            match self.next_message().await {
                Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON frames"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("a text frame, not {other:?}"),
            }
        }
    }

    async fn next_message(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.from_server.recv())
            .await
            .expect("a frame in time")
            .expect("the session is still writing")
    }

    /// The close code the session ends with, skipping what comes before it.
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            if let Message::Close(frame) = self.next_message().await {
                return frame.map(|f| f.code);
            }
        }
    }
}

/// A member of a room, signed in on a session, past `ready`.
async fn ready_in_a_room(gw: &TestGateway) -> (TestUser, parlor_domain::RoomId, Client) {
    let alice = gw.user("alice").await;
    let room = gw.room(&alice, "lobby").await;
    let mut client = Client::connect(gw, None);
    client.send(json!({"type": "auth", "token": alice.token}));
    let ready = client.next().await;
    assert_eq!(ready["type"], "ready", "{ready}");
    (alice, room, client)
}

#[tokio::test]
async fn an_auth_frame_gets_ready_with_the_user_and_their_rooms() {
    let gw = TestGateway::start().await;
    let alice = gw.user("alice").await;
    let room = gw.room(&alice, "lobby").await;
    let mut client = Client::connect(&gw, None);

    client.send(json!({"type": "auth", "token": alice.token}));
    let ready = client.next().await;

    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["user"]["id"], alice.id.as_str());
    assert_eq!(ready["rooms"][0]["id"], room.as_str());
    assert_eq!(gw.state.hub.connection_count(), 1);
}

#[tokio::test]
async fn a_first_frame_that_is_not_auth_is_refused_with_4001() {
    let gw = TestGateway::start().await;
    let mut client = Client::connect(&gw, None);

    client.send(json!({"type": "ping"}));
    let error = client.next().await;

    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some("unauthorized")));
    assert_eq!(client.close_code().await, Some(close::UNAUTHORIZED));
}

#[tokio::test]
async fn a_send_is_queued_and_its_outcome_comes_back_as_an_ack_with_its_nonce() {
    let gw = TestGateway::start().await;
    let (alice, room, mut client) = ready_in_a_room(&gw).await;
    let mut worker = gw.worker().await;

    client.send(json!({"type": "send", "room_id": room, "body": "hello", "nonce": "n-1"}));
    let delivery = next_command(&mut worker).await;
    let Command::Create { author_id, body, nonce, .. } = &delivery.item.command else {
        panic!("a create, not {:?}", delivery.item.command);
    };
    assert_eq!((author_id, body.as_str(), nonce.as_deref()), (&alice.id, "hello", Some("n-1")));
    let author = gw.state.store.user_by_id(&alice.id).await.expect("read").expect("alice").user;
    let stored = ChatMessage {
        id: MessageId::generate(),
        room_id: room.clone(),
        seq: 1,
        author,
        body: "hello".into(),
        html: "<p>hello</p>\n".into(),
        mentions: Vec::new(),
        reply_to: None,
        nonce: Some("n-1".into()),
        created_at: Timestamp::now(),
        edited_at: None,
        deleted: false,
    };
    gw.reply(&delivery.item.request_id, Outcome::Created { message: stored.clone(), created: true }).await;
    let ack = client.next().await;

    assert_eq!((ack["type"].as_str(), ack["nonce"].as_str()), (Some("ack"), Some("n-1")), "{ack}");
    assert_eq!(ack["message"]["id"], stored.id.as_str());
}

#[tokio::test]
async fn a_bad_frame_gets_an_error_and_the_connection_stays() {
    let gw = TestGateway::start().await;
    let (_alice, room, mut client) = ready_in_a_room(&gw).await;

    client.send_text("{not json");
    let malformed = client.next().await;
    client.send(json!({"type": "send", "room_id": room, "body": 42, "nonce": "n-1"}));
    let wrong_type = client.next().await;
    client.send(json!({"type": "send", "room_id": room, "body": "   ", "nonce": "n-2"}));
    let empty = client.next().await;
    client.send(json!({"type": "ping"}));
    let pong = client.next().await;

    assert_eq!(
        (malformed["type"].as_str(), malformed["code"].as_str()),
        (Some("error"), Some("invalid_request"))
    );
    assert_eq!(wrong_type["code"], "invalid_request");
    assert_eq!(wrong_type["nonce"], "n-1", "the nonce is echoed when it can be read");
    assert_eq!((empty["code"].as_str(), empty["field"].as_str()), (Some("validation_failed"), Some("body")));
    assert_eq!(empty["nonce"], "n-2");
    assert_eq!(pong["type"], "pong");
}

#[tokio::test]
async fn a_client_silent_for_two_heartbeats_is_closed_with_4002() {
    let settings = GatewaySettings { heartbeat: Duration::from_millis(100), ..GatewaySettings::default() };
    let gw = TestGateway::with(settings).await;
    let (_alice, _room, mut client) = ready_in_a_room(&gw).await;

    // Pings come and are not answered.
    let code = client.close_code().await;

    assert_eq!(code, Some(close::HEARTBEAT_TIMEOUT));
}

#[tokio::test]
async fn a_shutdown_closes_the_session_with_1001() {
    let gw = TestGateway::start().await;
    let (_alice, _room, mut client) = ready_in_a_room(&gw).await;

    gw.state.shutdown.cancel();

    assert_eq!(client.close_code().await, Some(close::GOING_AWAY));
}
