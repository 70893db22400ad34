//! Unread-message e-mails end to end: the real server, a real SMTP sink (aiosmtpd from PyPI,
//! storing what it receives in a Maildir), and `--notify-after 1s`.

mod common;

use common::{SmtpSink, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

async fn server(sink: &SmtpSink) -> TestApp {
    TestApp::spawn_with(&[
        ("--notify-after", "1s"),
        ("--smtp-url", sink.url().as_str()),
        ("--notify-retry", "300ms"),
        ("--notify-lease", "2s"),
        ("--public-url", "http://chat.example"),
    ])
    .await
}

async fn with_email(app: &TestApp, user: &TestUser) {
    let (status, me) = app
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&user.token),
            Some(json!({"email": format!("{}@example.com", user.username)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
}

/// Long enough for a job due after 1 s to have been handled (claimed every 500 ms).
const SETTLE: Duration = Duration::from_millis(3000);

#[tokio::test]
async fn an_offline_recipient_of_a_dm_gets_exactly_one_email_with_the_message_and_an_unsubscribe_link() {
    let sink = SmtpSink::start();
    let app = server(&sink).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    with_email(&app, &bob).await;
    let room = app.dm(&alice, &bob).await;
    app.say(&alice, &room, "are we still on for lunch at noon").await;

    let mail = sink.wait_for(1).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(sink.messages().len(), 1, "exactly one e-mail");
    let mail = &mail[0];
    assert!(mail.contains("To: bob@example.com"), "{mail}");
    assert!(mail.contains("alice sent you a message"), "{mail}");
    assert!(mail.contains("are we still on for lunch at noon"), "the text is quoted: {mail}");
    assert!(mail.contains(&format!("http://chat.example/#/rooms/{room}")), "a link to the room: {mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"), "plain and HTML parts: {mail}");
    assert!(mail.contains("List-Unsubscribe"), "{mail}");

    // The unsubscribe link works without logging in.
    let token = mail
        .split("unsubscribe?token=")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
                .collect::<String>()
        })
        .expect("an unsubscribe link");
    let (status, body) =
        app.call(Method::GET, &format!("/api/v1/unsubscribe?token={token}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = app.get("/api/v1/users/me", &bob.token).await;
    assert_eq!(me["email_notifications"], false);
    let (status, _) = app.call(Method::GET, "/api/v1/unsubscribe?token=forged.token", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Unsubscribed: the next DM is not mailed.
    app.say(&alice, &room, "one more thing").await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn a_recipient_who_read_in_time_or_is_online_gets_no_email_and_a_deleted_message_is_not_mailed() {
    let sink = SmtpSink::start();
    let app = server(&sink).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    for u in [&bob, &carol, &dave] {
        with_email(&app, u).await;
    }
    // Bob reads it before it is due.
    let to_bob = app.dm(&alice, &bob).await;
    let sent = app.say(&alice, &to_bob, "read me quickly").await;
    let (status, _) =
        app.post(&format!("/api/v1/rooms/{to_bob}/read"), &bob.token, json!({"seq": sent["seq"]})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Carol is online.
    let _carol_online = app.ws(&carol.token).await;
    let to_carol = app.dm(&alice, &carol).await;
    app.say(&alice, &to_carol, "you are here anyway").await;
    // Dave's message is deleted.
    let to_dave = app.dm(&alice, &dave).await;
    let gone = app.say(&alice, &to_dave, "never mind").await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/rooms/{to_dave}/messages/{}", gone["id"].as_str().unwrap_or_default()),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    tokio::time::sleep(SETTLE).await;
    assert!(sink.messages().is_empty(), "no e-mail: {:?}", sink.messages());
}

#[tokio::test]
async fn three_dms_from_two_senders_become_one_digest_and_mentions_are_mailed_too() {
    let sink = SmtpSink::start();
    let app = server(&sink).await;
    let alice = app.register("alice").await;
    let carol = app.register("carol").await;
    let bob = app.register("bob").await;
    with_email(&app, &bob).await;
    let from_alice = app.dm(&alice, &bob).await;
    let from_carol = app.dm(&carol, &bob).await;
    app.say(&alice, &from_alice, "first from alice").await;
    app.say(&carol, &from_carol, "only one from carol").await;
    app.say(&alice, &from_alice, "second from alice").await;

    let mail = sink.wait_for(1).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(sink.messages().len(), 1, "one digest");
    for text in ["first from alice", "only one from carol", "second from alice", "3 unread messages"] {
        assert!(mail[0].contains(text), "{text:?} in {}", mail[0]);
    }

    // A mention in a group room is mailed as well.
    let room = app.room(&alice, "general", "public").await;
    app.join(&bob, &room).await;
    app.say(&alice, &room, "hey @bob, have a look").await;
    let mail = sink.wait_for(2).await;
    assert!(mail.iter().any(|m| m.contains("hey @bob, have a look") && m.contains("#general")), "{mail:?}");
}

#[tokio::test]
async fn an_smtp_outage_and_a_sigkill_mean_a_late_email_not_a_lost_or_doubled_one() {
    let mut sink = SmtpSink::reserved();
    let mut app = server(&sink).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    with_email(&app, &bob).await;
    let room = app.dm(&alice, &bob).await;
    app.say(&alice, &room, "this one must arrive").await;
    // The SMTP server is down when the e-mail falls due: the send fails and is retried.
    tokio::time::sleep(SETTLE).await;
    app.kill_and_restart().await;
    sink.up();
    let mail = sink.wait_for(1).await;
    assert!(mail[0].contains("this one must arrive"), "{}", mail[0]);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(sink.messages().len(), 1, "exactly once");
}
