//! The hub: local delivery, slow consumers, and the bus topics it holds.

use super::{TestGateway, WAIT};
use crate::hub::{Conn, Hub, close};
use parlor_broker::LocalBus;
use parlor_domain::bus::{BusEvent, Envelope, Frame, Topic};
use parlor_domain::ports::Bus;
use parlor_domain::{RoomId, SessionId, UserId};
use std::sync::Arc;

fn message_in(room: &RoomId, seq: i64) -> Envelope {
    Envelope {
        topic: Topic::Room(room.clone()),
        event: BusEvent::Message {
            room_id: room.clone(),
            seq,
            frame: Frame(format!(r#"{{"type":"message.created","seq":{seq}}}"#).into()),
        },
    }
}

async fn connect(hub: &Hub, user: &str, rooms: &[RoomId], capacity: usize) -> Conn {
    hub.register(UserId::from(user), SessionId::from(format!("session-of-{user}")), rooms, capacity).await
}

/// Waits for the next frame queued on a connection.
async fn next_frame(conn: &Conn) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            conn.outbox.ready().await;
            if let Some(frame) = conn.outbox.pop() {
                return frame.as_str().to_owned();
            }
        }
    })
    .await
    .expect("a frame in time")
}

#[tokio::test]
async fn an_event_published_to_a_room_reaches_its_local_members_and_nobody_else() {
    let gw = TestGateway::start().await;
    let room = RoomId::from("room-1");
    let alice = connect(&gw.state.hub, "alice", std::slice::from_ref(&room), 64).await;
    let bob = connect(&gw.state.hub, "bob", std::slice::from_ref(&room), 64).await;
    let carol = connect(&gw.state.hub, "carol", &[RoomId::from("room-2")], 64).await;

    gw.bus.publish(Arc::new(message_in(&room, 7))).await.expect("published");

    assert!(next_frame(&alice).await.contains(r#""seq":7"#));
    assert!(next_frame(&bob).await.contains(r#""seq":7"#));
    // The bus delivers in order per subscriber: once carol's room has its event, any of room-1
    // for her would have come first.
    gw.bus.publish(Arc::new(message_in(&RoomId::from("room-2"), 8))).await.expect("published");
    assert!(next_frame(&carol).await.contains(r#""seq":8"#), "carol hears only her room");
}

#[tokio::test]
async fn a_connection_that_falls_a_whole_queue_behind_is_closed_as_a_slow_consumer() {
    let bus = LocalBus::new();
    let (subs, _events) = bus.subscriber().await.expect("a subscriber");
    let hub = Hub::new(subs, "gw".into());
    let room = RoomId::from("busy");
    let slow = connect(&hub, "slow", std::slice::from_ref(&room), 16).await;
    let quick = connect(&hub, "quick", std::slice::from_ref(&room), 64).await;

    for seq in 1..=17 {
        hub.dispatch(&message_in(&room, seq)).await;
    }

    assert_eq!(slow.close_code(), Some(close::TRY_AGAIN_LATER));
    tokio::time::timeout(WAIT, slow.killed()).await.expect("the session is told to close");
    assert_eq!(quick.close_code(), None, "a connection that keeps up stays");
    let mut queued = 0;
    while quick.outbox.pop().is_some() {
        queued += 1;
    }
    assert_eq!(queued, 17);
}

#[tokio::test]
async fn the_hub_holds_a_rooms_topic_while_a_local_connection_is_in_it_and_no_longer() {
    let bus = LocalBus::new();
    let (subs, _events) = bus.subscriber().await.expect("a subscriber");
    let hub = Hub::new(subs, "gw".into());
    let room = RoomId::from("room-1");

    let alice = connect(&hub, "alice", std::slice::from_ref(&room), 16).await;
    let after_alice = bus.topic_count();
    let bob = connect(&hub, "bob", std::slice::from_ref(&room), 16).await;
    let after_bob = bus.topic_count();
    hub.unregister(&alice).await;
    let after_alice_left = bus.topic_count();
    hub.unregister(&bob).await;

    assert_eq!(after_alice, 2, "alice's user topic and the room's");
    assert_eq!(after_bob, 3, "bob's user topic; the room's is shared");
    assert_eq!(after_alice_left, 2, "bob still holds the room");
    assert_eq!(bus.topic_count(), 0, "nothing left once the last connection left");
    assert_eq!(hub.connection_count(), 0);
}
