//! Admission: what every edge's send, edit and delete goes through.

use super::TestGateway;
use crate::admission::{SendRequest, Sender, admit_edit, admit_send};
use crate::state::GatewaySettings;
use parlor_domain::queue::Command;
use parlor_domain::{Error, MessageId, RoomId};

fn hello(room: &RoomId, nonce: &str) -> SendRequest {
    SendRequest { room_id: room.clone(), body: "hello".into(), nonce: Some(nonce.into()), reply_to: None }
}

#[tokio::test]
async fn a_members_send_becomes_a_create_command_written_as_them() {
    let gw = TestGateway::start().await;
    let alice = gw.user("alice").await;
    let room = gw.room(&alice, "lobby").await;

    let command = admit_send(&gw.state, &Sender::User(&alice.id), hello(&room, "n-1")).await;

    match command.expect("admitted") {
        Command::Create { room_id, author_id, body, nonce, reply_to } => {
            assert_eq!((room_id, author_id), (room, alice.id));
            assert_eq!((body.as_str(), nonce.as_deref(), reply_to), ("hello", Some("n-1"), None));
        }
        other => panic!("a create, not {other:?}"),
    }
}

#[tokio::test]
async fn a_send_is_validated_before_membership_and_a_non_member_is_refused() {
    let gw = TestGateway::start().await;
    let alice = gw.user("alice").await;
    let mallory = gw.user("mallory").await;
    let room = gw.room(&alice, "lobby").await;
    let empty = SendRequest { body: "  ".into(), ..hello(&room, "n-1") };

    let invalid = admit_send(&gw.state, &Sender::User(&mallory.id), empty).await;
    let outsider = admit_send(&gw.state, &Sender::User(&mallory.id), hello(&room, "n-2")).await;
    let nowhere = admit_send(&gw.state, &Sender::User(&alice.id), hello(&RoomId::generate(), "n-3")).await;

    assert!(
        matches!(invalid, Err(Error::Validation { ref field, .. }) if field.as_deref() == Some("body")),
        "{invalid:?}"
    );
    assert!(matches!(outsider, Err(Error::Forbidden(_))), "a public room's non-member: {outsider:?}");
    assert!(matches!(nowhere, Err(Error::NotFound(_))), "{nowhere:?}");
}

#[tokio::test]
async fn integrations_have_a_bucket_per_author_apart_from_the_authors_own() {
    let settings = GatewaySettings {
        send_burst: 1,
        service_send_rate: 1,
        service_send_burst: 2,
        ..GatewaySettings::default()
    };
    let gw = TestGateway::with(settings).await;
    let alice = gw.user("alice").await;
    let bob = gw.user("bob").await;
    let room = gw.room(&alice, "bridged").await;
    gw.join(&bob, &room).await;
    let as_alice = Sender::Service { author: &alice.id };

    let first = admit_send(&gw.state, &as_alice, hello(&room, "b-1")).await;
    let second = admit_send(&gw.state, &as_alice, hello(&room, "b-2")).await;
    let third = admit_send(&gw.state, &as_alice, hello(&room, "b-3")).await;
    let for_bob = admit_send(&gw.state, &Sender::Service { author: &bob.id }, hello(&room, "b-4")).await;
    let alices_own = admit_send(&gw.state, &Sender::User(&alice.id), hello(&room, "own")).await;

    assert!(first.is_ok() && second.is_ok(), "the burst: {first:?} {second:?}");
    assert!(matches!(third, Err(Error::RateLimited { retry_after_ms }) if retry_after_ms > 0), "{third:?}");
    assert!(for_bob.is_ok(), "another author's bucket: {for_bob:?}");
    assert!(alices_own.is_ok(), "her own bucket is untouched: {alices_own:?}");
}

#[tokio::test]
async fn an_edit_of_a_message_that_is_not_there_is_not_found_and_spends_no_token() {
    let settings = GatewaySettings { send_rate: 1, send_burst: 1, ..GatewaySettings::default() };
    let gw = TestGateway::with(settings).await;
    let alice = gw.user("alice").await;
    let room = gw.room(&alice, "lobby").await;
    let who = Sender::User(&alice.id);

    for _ in 0..3 {
        let edit = admit_edit(&gw.state, &who, room.clone(), MessageId::generate(), "again".into()).await;
        assert!(matches!(edit, Err(Error::NotFound(ref m)) if m == "message not found"), "{edit:?}");
    }
    let send = admit_send(&gw.state, &who, hello(&room, "n-1")).await;

    assert!(send.is_ok(), "the one token is still there: {send:?}");
}
