//! Publishing the events that REST calls and WebSocket frames cause (membership, room changes,
//! read markers, typing, presence). Message events are the worker's to publish.

use crate::state::AppState;
use parlor_domain::bus::{BusEvent, Envelope, Frame, Topic};
use parlor_domain::model::{PresenceStatus, Room, User};
use parlor_domain::protocol::{PresenceEvent, ServerEvent};
use parlor_domain::{RoomId, Timestamp, UserId};
use std::sync::Arc;

async fn publish(state: &AppState, topic: Topic, event: BusEvent) {
    if let Err(e) = state.bus.publish(Arc::new(Envelope { topic, event })).await {
        // The change is stored; clients that miss the event see it on their next sync or list.
        tracing::warn!(error = %e, "could not publish an event");
    }
}

/// `member.joined`, to the room's members and to the new member's connections.
pub async fn member_joined(state: &AppState, room_id: &RoomId, user: &User) {
    let frame = Frame(ServerEvent::MemberJoined { room_id: room_id.clone(), user: user.clone() }.to_bytes());
    for topic in [Topic::Room(room_id.clone()), Topic::User(user.id.clone())] {
        let event = BusEvent::MemberJoined {
            room_id: room_id.clone(),
            user_id: user.id.clone(),
            frame: frame.clone(),
        };
        publish(state, topic, event).await;
    }
}

/// `member.left`, to the room's members and to the leaving member's connections.
pub async fn member_left(state: &AppState, room_id: &RoomId, user_id: &UserId) {
    let frame =
        Frame(ServerEvent::MemberLeft { room_id: room_id.clone(), user_id: user_id.clone() }.to_bytes());
    for topic in [Topic::Room(room_id.clone()), Topic::User(user_id.clone())] {
        let event =
            BusEvent::MemberLeft { room_id: room_id.clone(), user_id: user_id.clone(), frame: frame.clone() };
        publish(state, topic, event).await;
    }
}

/// `room.updated`, to the room's members.
pub async fn room_updated(state: &AppState, room: &Room) {
    let frame = Frame(ServerEvent::RoomUpdated { room: room.clone() }.to_bytes());
    let event = BusEvent::RoomEvent { room_id: room.id.clone(), except_user: None, frame };
    publish(state, Topic::Room(room.id.clone()), event).await;
}

/// `typing`, to the room's other members.
pub async fn typing(state: &AppState, room_id: &RoomId, user_id: &UserId) {
    let frame = Frame(ServerEvent::Typing { room_id: room_id.clone(), user_id: user_id.clone() }.to_bytes());
    let event = BusEvent::RoomEvent { room_id: room_id.clone(), except_user: Some(user_id.clone()), frame };
    publish(state, Topic::Room(room_id.clone()), event).await;
}

/// `read`, to the user's connections but `except_connection`.
pub async fn read_moved(
    state: &AppState,
    user_id: &UserId,
    room_id: &RoomId,
    seq: i64,
    except_connection: Option<String>,
) {
    let frame = Frame(ServerEvent::Read { room_id: room_id.clone(), seq }.to_bytes());
    let event = BusEvent::UserEvent { user_id: user_id.clone(), except_connection, frame };
    publish(state, Topic::User(user_id.clone()), event).await;
}

/// `presence`, to the users who share a room with `user_id`.
pub async fn presence(
    state: &AppState,
    user_id: &UserId,
    status: PresenceStatus,
    last_seen_at: Option<Timestamp>,
    rooms: Vec<RoomId>,
) {
    if rooms.is_empty() {
        return;
    }
    let frame = Frame(
        ServerEvent::Presence(PresenceEvent { user_id: user_id.clone(), status, last_seen_at }).to_bytes(),
    );
    publish(state, Topic::Presence, BusEvent::Presence { user_id: user_id.clone(), rooms, frame }).await;
}
