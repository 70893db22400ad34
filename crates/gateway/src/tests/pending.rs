//! The table of sends waiting for their outcome.

use super::{TestGateway, TestUser, WAIT, next_command};
use crate::hub::Conn;
use crate::pending::{Waiter, submit, submit_and_wait};
use crate::state::GatewaySettings;
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{Error, RoomId};
use std::time::Duration;
use tokio::sync::oneshot;

fn create(room: &RoomId, author: &TestUser, nonce: &str) -> Command {
    Command::Create {
        room_id: room.clone(),
        author_id: author.id.clone(),
        body: "hello".into(),
        nonce: Some(nonce.into()),
        reply_to: None,
    }
}

#[tokio::test]
async fn an_outcome_published_for_a_request_reaches_the_one_waiting_for_it() {
    let gw = TestGateway::start().await;
    let alice = gw.user("alice").await;
    let room = gw.room(&alice, "lobby").await;
    let mut worker = gw.worker().await;
    let refused = Error::Forbidden("not today".into());

    let waiting = tokio::spawn({
        let state = gw.state.clone();
        let command = create(&room, &alice, "n-1");
        async move { submit_and_wait(&state, command).await }
    });
    let delivery = next_command(&mut worker).await;
    gw.reply("someone-else's-request", Outcome::Failed(Error::internal("not this one"))).await;
    gw.reply(&delivery.item.request_id, Outcome::Failed(refused)).await;
    let outcome = tokio::time::timeout(WAIT, waiting).await.expect("answered in time").expect("no panic");

    assert_eq!(delivery.item.origin, "gateway-under-test", "the worker knows where to answer");
    assert!(
        matches!(outcome, Ok(Outcome::Failed(Error::Forbidden(ref m))) if m == "not today"),
        "{outcome:?}"
    );
    assert!(gw.state.pending.is_empty());
}

#[tokio::test]
async fn a_send_with_no_outcome_in_time_is_answered_unavailable_and_forgotten() {
    let settings = GatewaySettings { send_timeout: Duration::from_millis(200), ..GatewaySettings::default() };
    let gw = TestGateway::with(settings).await;
    let alice = gw.user("alice").await;
    let room = gw.room(&alice, "lobby").await;
    let conn: Conn = gw.state.hub.register(alice.id.clone(), "s-1".into(), &[], 16).await;

    submit(&gw.state, create(&room, &alice, "ws-1"), Waiter::Ws { conn: conn.clone(), nonce: "ws-1".into() })
        .await
        .expect("queued");
    let rest = submit_and_wait(&gw.state, create(&room, &alice, "rest-1")).await;
    // The housekeeping task expires waiters once a second.
    let frame = tokio::time::timeout(WAIT, async {
        loop {
            conn.outbox.ready().await;
            if let Some(frame) = conn.outbox.pop() {
                return frame.as_str().to_owned();
            }
        }
    })
    .await
    .expect("the WebSocket waiter hears in time");

    assert!(matches!(rest, Err(Error::Unavailable(_))), "{rest:?}");
    let error: serde_json::Value = serde_json::from_str(&frame).expect("JSON");
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{error}"
    );
    assert_eq!(error["nonce"], "ws-1");
    let emptied = tokio::time::timeout(WAIT, async {
        while !gw.state.pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(emptied.await.is_ok(), "expired waiters are removed");
}

#[tokio::test]
async fn an_outcome_for_a_waiter_that_went_away_is_dropped_quietly() {
    let gw = TestGateway::start().await;
    let alice = gw.user("alice").await;
    let room = gw.room(&alice, "lobby").await;
    let mut worker = gw.worker().await;
    let (tx, rx) = oneshot::channel();
    submit(&gw.state, create(&room, &alice, "n-1"), Waiter::Http(tx)).await.expect("queued");
    drop(rx);
    let delivery = next_command(&mut worker).await;

    gw.state.pending.resolve(&delivery.item.request_id, Outcome::Failed(Error::Forbidden("late".into())));
    gw.state.pending.resolve(&delivery.item.request_id, Outcome::Failed(Error::Forbidden("twice".into())));

    assert!(gw.state.pending.is_empty(), "the waiter is gone from the table");
}
