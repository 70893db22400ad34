//! The distributed mode end to end: gateways and workers as separate processes on loopback over
//! PostgreSQL and Redis (and RabbitMQ), each test in a fresh database and key prefix. The servers
//! are the ones on this machine (`PARLOR_TEST_POSTGRES_URL`, `PARLOR_TEST_REDIS_URL`,
//! `PARLOR_TEST_AMQP_URL`); these tests fail, loudly, when one is missing.

mod common;

use common::cluster::*;
use common::free_port;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

async fn clients_on_two_gateways_chat_in_one_order(amqp: bool) {
    let cluster = Cluster::start(2, 2, &redis_url(), amqp).await;
    let alice = cluster.register(0, "alice").await;
    let bob = cluster.register(1, "bob").await;
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.ws(0, &alice).await;
    let mut b = cluster.ws(1, &bob).await;
    let mut a_watch = cluster.ws(1, &alice).await;

    let (sent_a, sent_b) = tokio::join!(
        send_all_acked(&mut a, &room, "a", 30, |_| {}),
        send_all_acked(&mut b, &room, "b", 30, |_| {})
    );
    assert_eq!(sent_a.len() + sent_b.len(), 60);

    // A third socket, on the other gateway, sees all sixty in seq order without a gap.
    let mut seen = Vec::new();
    while seen.len() < 60 {
        let frame = a_watch.next_of_type("message.created").await;
        seen.push(frame["message"]["seq"].as_i64().expect("seq"));
    }
    assert_eq!(seen, (1..=60).collect::<Vec<_>>());
    let history = cluster.history(1, &room, &bob.token).await;
    assert_gapless_once(&history);
    assert_eq!(history.len(), 60);
}

#[tokio::test]
async fn clients_on_different_gateways_chat_and_see_the_same_order_over_redis() {
    clients_on_two_gateways_chat_in_one_order(false).await;
}

#[tokio::test]
async fn clients_on_different_gateways_chat_and_see_the_same_order_over_rabbitmq() {
    clients_on_two_gateways_chat_in_one_order(true).await;
}

#[tokio::test]
async fn presence_crosses_gateways() {
    let cluster = Cluster::start(2, 1, &redis_url(), false).await;
    let alice = cluster.register(0, "alice").await;
    let bob = cluster.register(1, "bob").await;
    cluster.room(&alice, &[&bob]).await;
    let mut b = cluster.ws(1, &bob).await;
    let a = cluster.ws(0, &alice).await;
    let online = b.next_of_type("presence").await;
    assert_eq!(
        (online["user_id"].as_str(), online["status"].as_str()),
        (Some(alice.id.as_str()), Some("online"))
    );
    let (_, profile) =
        cluster.call(1, Method::GET, &format!("/api/v1/users/{}", alice.id), Some(&bob.token), None).await;
    assert_eq!(profile["presence"]["status"], "online");
    a.close().await;
    let offline = b.next_of_type("presence").await;
    assert_eq!(offline["status"], "offline");
}

async fn a_killed_worker_loses_and_duplicates_nothing(amqp: bool) {
    // One worker holds every partition; a second stands by; the first dies mid-stream.
    let mut cluster = Cluster::start(1, 1, &redis_url(), amqp).await;
    let alice = cluster.register(0, "alice").await;
    let room = cluster.room(&alice, &[]).await;
    let mut a = cluster.ws(0, &alice).await;
    let first = send_all_acked(&mut a, &room, "k", 40, |_| {}).await;
    cluster.add_worker();
    let mut victim = cluster.workers.remove(0);
    let mut acked = send_pipelined(&mut a, &room, "k2", 150, |n| {
        if n == 20 {
            victim.kill9();
        }
    })
    .await;
    acked.extend(first);
    drop(victim);
    let history = cluster.history(0, &room, &alice.token).await;
    assert_gapless_once(&history);
    let stored: HashMap<&str, &str> =
        history.iter().filter_map(|m| Some((m["nonce"].as_str()?, m["id"].as_str()?))).collect();
    assert_eq!(history.len(), 190, "one message per nonce");
    for (nonce, id) in &acked {
        assert_eq!(
            stored.get(nonce.as_str()),
            Some(&id.as_str()),
            "acknowledged {nonce} is stored as acknowledged"
        );
    }
}

#[tokio::test]
async fn a_worker_killed_mid_stream_loses_no_acknowledged_message_and_duplicates_none() {
    a_killed_worker_loses_and_duplicates_nothing(false).await;
}

#[tokio::test]
async fn a_worker_killed_mid_stream_over_rabbitmq_loses_nothing_and_duplicates_nothing() {
    a_killed_worker_loses_and_duplicates_nothing(true).await;
}

#[tokio::test]
async fn a_killed_gateways_users_go_offline_and_resume_on_the_other_with_sync() {
    let mut cluster = Cluster::start(2, 1, &redis_url(), false).await;
    let alice = cluster.register(0, "alice").await;
    let bob = cluster.register(1, "bob").await;
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.ws(0, &alice).await;
    let mut b = cluster.ws(1, &bob).await;
    send_all_acked(&mut b, &room, "before", 5, |_| {}).await;
    let mut last_seen = 0;
    while last_seen < 5 {
        last_seen = a.next_of_type("message.created").await["message"]["seq"].as_i64().expect("seq");
    }

    cluster.gateways[0].kill9();
    // Alice's presence runs out on its own (presence TTL 2 s).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, profile) = cluster
            .call(1, Method::GET, &format!("/api/v1/users/{}", alice.id), Some(&bob.token), None)
            .await;
        if profile["presence"]["status"] == "offline" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "alice never went offline: {profile}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    send_all_acked(&mut b, &room, "after", 7, |_| {}).await;

    // Alice reconnects to the surviving gateway and catches up.
    let mut a2 = cluster.ws(1, &alice).await;
    a2.send(json!({"type": "sync", "rooms": {room.clone(): last_seen}})).await;
    let mut caught_up = Vec::new();
    loop {
        let frame = a2.next_json().await;
        match frame["type"].as_str() {
            Some("message.created") => caught_up.push(frame["message"]["seq"].as_i64().expect("seq")),
            Some("synced") => break,
            _ => {}
        }
    }
    assert_eq!(caught_up, (6..=12).collect::<Vec<_>>(), "nothing missing");
}
#[tokio::test]
async fn a_redis_restart_mid_stream_recovers_without_restarting_parlor_and_loses_nothing_acknowledged() {
    let mut redis = PrivateRedis::start();
    let cluster = Cluster::start(1, 1, &redis.url(), false).await;
    let alice = cluster.register(0, "alice").await;
    let room = cluster.room(&alice, &[]).await;
    let mut a = cluster.ws(0, &alice).await;
    let first = send_all_acked(&mut a, &room, "r", 20, |_| {}).await;

    redis.down();
    let (status, ready) = cluster.call(0, Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "readyz names what is down: {ready}");
    redis.up();

    // The gateway's subscriptions and the worker's consumer come back by themselves; the
    // socket may have missed events, never acknowledgements.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, _) = cluster.call(0, Method::GET, "/readyz", None, None).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "readyz never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut b = cluster.ws(0, &alice).await;
    let second = send_all_acked(&mut b, &room, "s", 20, |_| {}).await;
    let history = cluster.history(0, &room, &alice.token).await;
    assert_gapless_once(&history);
    let stored: HashSet<&str> = history.iter().filter_map(|m| m["id"].as_str()).collect();
    for id in first.values().chain(second.values()) {
        assert!(stored.contains(id.as_str()), "acknowledged {id} is stored");
    }
}

#[tokio::test]
async fn serve_runs_every_role_in_one_process_over_postgres_and_redis() {
    let redis = redis_url();
    check_redis(&redis);
    let db = Database::create().await;
    let prefix = format!("parlor-serve-{}", uuid_hex());
    let app = common::TestApp::spawn_with(&[
        ("--database-url", db.url.as_str()),
        ("--redis-url", redis.as_str()),
        ("--key-prefix", prefix.as_str()),
    ])
    .await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;
    let mut b = app.ws(&bob.token).await;
    let sent = app.say(&alice, &room, "over **PostgreSQL** and Redis").await;
    let got = b.next_of_type("message.created").await;
    assert_eq!(got["message"]["id"], sent["id"]);
    let (status, found) = app.get("/api/v1/search?q=postgresql", &bob.token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["messages"][0]["id"], sent["id"], "full-text search in PostgreSQL");
}

#[tokio::test]
async fn gateway_worker_moderation_and_users_as_separate_processes_allow_and_reject_over_the_websocket() {
    let mut cluster = Cluster::start_with(1, 0, &redis_url(), false, true).await;
    // The worker has no HTTP listener of its own: its metrics are served on --metrics-listen.
    let metrics = format!("127.0.0.1:{}", free_port());
    cluster.worker_extra.extend(["--metrics-listen".to_owned(), metrics.clone()]);
    cluster.add_worker();
    let alice = cluster.register(0, "alice").await;
    let bob = cluster.register(0, "bob").await;
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.ws(0, &alice).await;
    let mut b = cluster.ws(0, &bob).await;

    a.send(json!({"type": "send", "room_id": room, "body": "hello @bob, **welcome**", "nonce": "ok-1"}))
        .await;
    let ack = a.next_of_type("ack").await;
    assert_eq!(ack["message"]["mentions"], json!([bob.id]), "rendered by the moderation service");
    let got = b.next_of_type("message.created").await;
    assert!(
        got["message"]["html"].as_str().unwrap_or_default().contains("<strong>welcome</strong>"),
        "{got}"
    );

    a.send(json!({"type": "send", "room_id": room, "body": "cheap viagra here", "nonce": "bad-1"})).await;
    let refused = a.next_of_type("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["reason"].as_str()),
        (Some("rejected"), Some("blocked_word"))
    );
    assert_eq!(refused["nonce"], "bad-1");
    let history = cluster.history(0, &room, &bob.token).await;
    assert_eq!(history.len(), 1, "the rejected message is not stored");
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .expect("the worker answers /metrics")
        .text()
        .await
        .expect("a body");
    for line in ["parlor_messages_stored_total 1", "parlor_rejected_total{reason=\"blocked_word\"} 1"] {
        assert!(text.lines().any(|l| l == line), "{line:?} in the worker's metrics:\n{text}");
    }
    assert!(text.contains("parlor_batch_size_bucket"), "{text}");

    // Tokens are checked by the users service: a logout is honoured within a couple of seconds.
    let (status, _) = cluster.call(0, Method::POST, "/api/v1/auth/logout", Some(&bob.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, _) = cluster.call(0, Method::GET, "/api/v1/users/me", Some(&bob.token), None).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the logged-out token still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn notifiers_side_by_side_mail_each_digest_exactly_once() {
    let sink = common::SmtpSink::start();
    let mut cluster = Cluster::start(1, 0, &redis_url(), false).await;
    cluster.worker_extra = vec!["--notify-after".into(), "1s".into()];
    cluster.add_worker();
    for _ in 0..2 {
        cluster.add_notifier(&["--smtp-url", &sink.url(), "--notify-lease", "2s"]);
    }
    let alice = cluster.register(0, "alice").await;
    let mut recipients = Vec::new();
    for i in 0..6 {
        let user = cluster.register(0, &format!("user{i}")).await;
        let (status, _) = cluster
            .call(
                0,
                Method::PATCH,
                "/api/v1/users/me",
                Some(&user.token),
                Some(json!({"email": format!("user{i}@example.com")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        recipients.push(user);
    }
    for user in &recipients {
        let (status, room) = cluster
            .call(0, Method::POST, "/api/v1/dms", Some(&alice.token), Some(json!({"user_id": user.id})))
            .await;
        assert_eq!(status, StatusCode::OK, "{room}");
        let room = room["id"].as_str().expect("room").to_owned();
        let (status, _) = cluster
            .call(
                0,
                Method::POST,
                &format!("/api/v1/rooms/{room}/messages"),
                Some(&alice.token),
                Some(json!({"body": format!("note for {}", user.username)})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mail = sink.wait_for(6).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mail = if sink.messages().len() > mail.len() { sink.messages() } else { mail };
    assert_eq!(mail.len(), 6, "one e-mail per recipient, none twice");
    for user in &recipients {
        assert_eq!(mail.iter().filter(|m| m.contains(&format!("note for {}", user.username))).count(), 1);
    }
}
