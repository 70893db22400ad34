//! The wire formats: WebSocket frames and REST request bodies.

use parlor_domain::protocol::ClientFrame;
use parlor_domain::requests::{
    AddMemberBody, CreateBody, DirectBody, EditBody, LoginBody, PasswordBody, PatchMe, ReadBody, RecoverBody,
    RefreshBody, RegisterBody, SendBody, UpdateBody,
};
use parlor_domain::validate::{self, MAX_PAYLOAD_BYTES};
use serde::de::DeserializeOwned;

/// A WebSocket text frame, parsed as the gateway parses it (straight into a `ClientFrame` for the
/// first, `auth` frame; through a `serde_json::Value` afterwards) and checked as it checks it. Both
/// paths must agree, and a frame that parses must survive a round trip through JSON unchanged.
pub fn ws_frame(data: &[u8]) {
    // The gateway takes text frames only (UTF-8) of at most 64 KiB.
    if data.len() > MAX_PAYLOAD_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let direct = serde_json::from_str::<ClientFrame>(text);
    let via_value =
        serde_json::from_str::<serde_json::Value>(text).ok().map(serde_json::from_value::<ClientFrame>);
    // A frame the direct path takes must read the same through a Value. (The reverse need not
    // hold: a Value keeps the last of repeated keys where the direct path refuses them.)
    if let Ok(a) = &direct {
        match &via_value {
            Some(Ok(b)) => assert_eq!(a, b, "the two parsing paths disagree on {text:?}"),
            other => panic!("{text:?} parses directly as {a:?} but through a Value as {other:?}"),
        }
    }
    let Ok(frame) = direct else { return };
    let again = serde_json::to_string(&frame).expect("a frame serialises");
    let back: ClientFrame = serde_json::from_str(&again).expect("a serialised frame parses");
    assert_eq!(frame, back, "round trip through {again:?}");
    // What the gateway checks next; the checks must not panic.
    match frame {
        ClientFrame::Send { body, nonce, .. } => {
            let _ = validate::nonce(&nonce);
            let _ = validate::body(&body);
        }
        ClientFrame::Read { seq, .. } => {
            let _ = validate::seq("seq", seq);
        }
        ClientFrame::Sync { rooms } => {
            for seq in rooms.values() {
                let _ = validate::seq("rooms", *seq);
            }
        }
        ClientFrame::Auth { .. } | ClientFrame::Typing { .. } | ClientFrame::Ping => {}
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// A REST request body, parsed into every body type of the API as the gateway's `ApiJson`
/// extractor does once it has found a JSON object (the extractor refuses an empty body and
/// anything but an object with 400; an empty input stands for `{}` here, so the fuzzer still
/// reaches the handlers' checks of every default), then checked as the handlers check it.
/// Nothing may panic.
pub fn rest_bodies(data: &[u8]) {
    if data.len() > MAX_PAYLOAD_BYTES {
        return;
    }
    let bytes: &[u8] = if data.is_empty() { b"{}" } else { data };
    if let Some(b) = parse::<RegisterBody>(bytes) {
        let _ = validate::username(&b.username);
        let _ = validate::password("password", &b.password);
        b.display_name.as_deref().map(validate::display_name);
        b.email.as_deref().map(validate::email);
    }
    if let Some(b) = parse::<LoginBody>(bytes) {
        let _ = validate::username(&b.username);
        let _ = validate::password("password", &b.password);
    }
    let _ = parse::<RefreshBody>(bytes);
    if let Some(b) = parse::<RecoverBody>(bytes) {
        let _ = validate::username(&b.username);
        let _ = validate::password("new_password", &b.new_password);
        let _ = b.recovery_phrase.split_whitespace().count();
    }
    if let Some(b) = parse::<CreateBody>(bytes) {
        let _ = validate::room_name(&b.name);
        b.topic.as_deref().map(validate::topic);
    }
    if let Some(b) = parse::<UpdateBody>(bytes) {
        b.name.as_deref().map(validate::room_name);
        b.topic.as_deref().map(validate::topic);
    }
    let _ = parse::<AddMemberBody>(bytes);
    let _ = parse::<DirectBody>(bytes);
    if let Some(b) = parse::<SendBody>(bytes) {
        let _ = validate::body(&b.body);
        b.nonce.as_deref().map(validate::nonce);
    }
    if let Some(b) = parse::<EditBody>(bytes) {
        let _ = validate::body(&b.body);
    }
    if let Some(b) = parse::<ReadBody>(bytes) {
        let _ = validate::seq("seq", b.seq);
    }
    if let Some(b) = parse::<PatchMe>(bytes) {
        b.display_name.as_deref().map(validate::display_name);
        if let Some(Some(e)) = &b.email {
            let _ = validate::email(e);
        }
    }
    if let Some(b) = parse::<PasswordBody>(bytes) {
        let _ = validate::password("new_password", &b.new_password);
    }
}
