//! What an operator reads: `/metrics` in Prometheus text format.

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn metrics_count_connections_messages_fan_out_latency_queue_and_store_reads() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;
    let mut a = app.ws(&alice.token).await;
    let mut b = app.ws(&bob.token).await;
    a.send(json!({"type": "send", "room_id": room, "body": "counted", "nonce": "m-1"})).await;
    a.next_of_type("ack").await;
    b.next_of_type("message.created").await;
    a.send(json!({"type": "send", "room_id": room, "body": "buy followers", "nonce": "m-2"})).await;
    a.next_of_type("error").await;
    assert_eq!(app.history(&bob, &room).await.len(), 1);
    let (status, found) = app.get("/api/v1/search?q=counted", &bob.token).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{found}");

    // The depth gauge is a sample (at start-up and every 5 s): one taken while a send waited
    // in the queue holds until the next, so read until a sample shows nothing waiting.
    let deadline = tokio::time::Instant::now() + common::WAIT * 2;
    let text = loop {
        let resp = reqwest::get(app.url("/metrics")).await.expect("metrics answer");
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = resp.text().await.expect("a body");
        let waiting = text.lines().any(|l| l.starts_with("parlor_queue_depth{") && !l.ends_with(" 0"));
        if !waiting || tokio::time::Instant::now() >= deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for line in [
        "parlor_connections_open 2",
        "parlor_messages_in_total{kind=\"send_ws\"} 2",
        "parlor_messages_stored_total 1",
        "parlor_rejected_total{reason=\"blocked_word\"} 1",
        // Both sockets got the message event; Alice also got her ack and her error.
        "parlor_frames_out_total{kind=\"message\"} 2",
        "parlor_frames_out_total{kind=\"direct\"} 2",
        // Both sends went through the queue, each with its enqueue time.
        "parlor_queue_lag_seconds_count 2",
        "parlor_store_seconds_count{op=\"history\"} 1",
        "parlor_store_seconds_count{op=\"search\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    for name in [
        "parlor_send_ack_seconds_bucket",
        "parlor_fanout_size_bucket",
        "parlor_store_apply_seconds_bucket",
        "parlor_queue_lag_seconds_bucket",
        "parlor_store_seconds_bucket{op=\"history\"",
        "parlor_store_seconds_bucket{op=\"search\"",
    ] {
        assert!(text.contains(name), "{name} in\n{text}");
    }
    // The in-process queue's depth, one gauge a partition (one with the embedded SQLite store,
    // which has a single writer), sampled at start-up and every 5 s: nothing waits once the sends
    // are answered.
    let depths: Vec<&str> = text.lines().filter(|l| l.starts_with("parlor_queue_depth{partition=")).collect();
    assert_eq!(depths, ["parlor_queue_depth{partition=\"0\"} 0"]);
    assert!(depths.iter().all(|l| l.ends_with(" 0")), "{depths:?}");
    assert!(
        text.lines().all(|l| l.is_empty() || l.starts_with('#') || l.starts_with("parlor_")),
        "every name is parlor_*"
    );
}
