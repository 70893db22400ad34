//! One suite for the `Queue`, `Bus` and `Presence` ports, run against every adapter: in process,
//! and Redis at `PARLOR_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) under a fresh key
//! prefix per test. The Redis tests fail, loudly, when the server is not there.

use parlor_broker::rabbitmq::RabbitQueue;
use parlor_broker::redis::{RedisBus, RedisPresence, RedisQueue, RedisServer};
use parlor_broker::{LocalBus, LocalPresence, LocalQueue};
use parlor_domain::bus::{BusEvent, Envelope, Frame, Topic};
use parlor_domain::ports::{Bus, Presence, Queue};
use parlor_domain::queue::{Command, Inbound};
use parlor_domain::{RoomId, Timestamp, UserId};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn redis() -> (RedisServer, String) {
    let url = std::env::var("PARLOR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("parlor-test-{}", uuid::Uuid::now_v7());
    let server = tokio::time::timeout(Duration::from_secs(5), RedisServer::connect(&url, &prefix))
        .await
        .unwrap_or_else(|_| {
            panic!("Redis did not answer at {url} in 5 s. Start it or set PARLOR_TEST_REDIS_URL.")
        })
        .unwrap_or_else(|e| {
            panic!("Redis is not reachable at {url} ({e}). Start it or set PARLOR_TEST_REDIS_URL.")
        });
    server.ping().await.unwrap_or_else(|e| panic!("Redis at {url} does not answer PING: {e}"));
    (server, url)
}

/// Deletes every key under a test prefix.
async fn cleanup(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else { return };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return };
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap_or_default();
    if !keys.is_empty() {
        let _ = redis::cmd("DEL").arg(keys).query_async::<i64>(&mut conn).await;
    }
}

fn item(room: &str, n: usize) -> Inbound {
    Inbound {
        request_id: format!("r{n}"),
        origin: "gw".into(),
        command: Command::Create {
            room_id: RoomId::from(room),
            author_id: UserId::from("u"),
            body: format!("{n}"),
            nonce: Some(format!("{n}")),
            reply_to: None,
        },
        enqueued_at: Some(Timestamp::now()),
    }
}

fn body_of(i: &Inbound) -> String {
    match &i.command {
        Command::Create { body, .. } => body.clone(),
        other => panic!("{other:?}"),
    }
}

/// Reads from every partition until `n` deliveries came or time runs out; acknowledges them.
/// A partition still leased to another worker is taken once the lease runs out.
async fn drain(queue: &dyn Queue, n: usize) -> Vec<Inbound> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut consumers = Vec::new();
    for p in 0..queue.partitions() {
        loop {
            if let Some(c) = queue.try_consumer(p, "test-worker").await.expect("the queue answers") {
                consumers.push(c);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "partition {p} never came free");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut got = Vec::new();
    while got.len() < n {
        assert!(tokio::time::Instant::now() < deadline, "only {} of {n} deliveries came", got.len());
        for c in consumers.iter_mut() {
            if let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(200), c.next_batch(64)).await
            {
                let tags: Vec<String> = batch.iter().map(|d| d.tag.clone()).collect();
                c.ack(&tags).await.expect("ack");
                got.extend(batch.into_iter().map(|d| d.item));
            }
        }
    }
    got
}

async fn one_rooms_commands_arrive_once_and_in_order(queue: Arc<dyn Queue>) {
    for n in 0..50 {
        queue.push(item("room-a", n)).await.expect("push");
        queue.push(item(&format!("room-{n}"), 1000 + n)).await.expect("push");
    }
    let depths = queue.depths().await.expect("the queue answers").expect("every adapter tells its depth");
    assert_eq!(depths.len(), queue.partitions(), "one depth a partition");
    assert_eq!(depths.iter().sum::<u64>(), 100, "everything pushed waits: {depths:?}");
    let got = drain(queue.as_ref(), 100).await;
    assert!(got.iter().all(|i| i.enqueued_at.is_some()), "the enqueue time travels with the command");
    let depths = queue.depths().await.expect("the queue answers").expect("a depth");
    assert_eq!(depths.iter().sum::<u64>(), 0, "nothing waits once acknowledged: {depths:?}");
    let a: Vec<String> =
        got.iter().filter(|i| i.command.room_id().as_str() == "room-a").map(body_of).collect();
    assert_eq!(a, (0..50).map(|n| n.to_string()).collect::<Vec<_>>(), "room-a in push order");
    let unique: HashSet<String> = got.iter().map(body_of).collect();
    assert_eq!(unique.len(), 100, "each command once");
}

async fn subscribers_get_their_topics_in_order_until_they_unsubscribe(bus: Arc<dyn Bus>) {
    let (subs, mut rx) = bus.subscriber().await.expect("subscriber");
    let (other_subs, mut other_rx) = bus.subscriber().await.expect("subscriber");
    let topic = Topic::Room(RoomId::from("r1"));
    subs.subscribe(topic.clone()).await.expect("subscribe");
    other_subs.subscribe(topic.clone()).await.expect("subscribe");
    let envelope = |room: &str, seq: i64| {
        Arc::new(Envelope {
            topic: Topic::Room(RoomId::from(room)),
            event: BusEvent::Message {
                room_id: RoomId::from(room),
                seq,
                frame: Frame(format!("{{\"seq\":{seq}}}").into()),
            },
        })
    };
    for seq in 1..=20 {
        bus.publish(envelope("r2", seq)).await.expect("publish elsewhere");
        bus.publish(envelope("r1", seq)).await.expect("publish");
    }
    for rx in [&mut rx, &mut other_rx] {
        for seq in 1..=20 {
            let got = tokio::time::timeout(WAIT, rx.recv()).await.expect("in time").expect("open");
            assert_eq!(got.topic, topic);
            match &got.event {
                BusEvent::Message { seq: s, frame, .. } => {
                    assert_eq!(*s, seq);
                    assert_eq!(frame.0, format!("{{\"seq\":{seq}}}").as_bytes());
                }
                other => panic!("{other:?}"),
            }
        }
    }
    subs.unsubscribe(topic.clone()).await.expect("unsubscribe");
    bus.publish(envelope("r1", 21)).await.expect("publish");
    let other = tokio::time::timeout(WAIT, other_rx.recv()).await.expect("in time").expect("open");
    assert!(matches!(other.event, BusEvent::Message { seq: 21, .. }));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err(),
        "nothing after unsubscribe"
    );
}

async fn presence_counts_connections(presence: Arc<dyn Presence>) {
    let u = UserId::from("u1");
    assert_eq!(presence.online(std::slice::from_ref(&u)).await.expect("online"), vec![false]);
    assert!(presence.connected(&u).await.expect("connect"));
    assert!(!presence.connected(&u).await.expect("second connection"));
    assert_eq!(presence.online(std::slice::from_ref(&u)).await.expect("online"), vec![true]);
    assert!(!presence.disconnected(&u).await.expect("one left"));
    assert!(presence.disconnected(&u).await.expect("last left"));
    assert_eq!(presence.online(&[u]).await.expect("online"), vec![false]);
}

#[tokio::test]
async fn local_queue_keeps_order_and_delivers_once() {
    one_rooms_commands_arrive_once_and_in_order(Arc::new(LocalQueue::new(4, 1024))).await;
}

#[tokio::test]
async fn redis_queue_keeps_order_and_delivers_once() {
    let (server, url) = redis().await;
    let prefix = server_prefix(&server);
    one_rooms_commands_arrive_once_and_in_order(Arc::new(RedisQueue::new(server, 4, Duration::from_secs(2))))
        .await;
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn local_bus_routes_by_topic() {
    subscribers_get_their_topics_in_order_until_they_unsubscribe(Arc::new(LocalBus::new())).await;
}

#[tokio::test]
async fn redis_bus_routes_by_topic() {
    let (server, url) = redis().await;
    let prefix = server_prefix(&server);
    subscribers_get_their_topics_in_order_until_they_unsubscribe(Arc::new(RedisBus::new(server))).await;
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn local_presence_counts_connections() {
    presence_counts_connections(Arc::new(LocalPresence::new())).await;
}

#[tokio::test]
async fn redis_presence_counts_connections() {
    let (server, url) = redis().await;
    let prefix = server_prefix(&server);
    presence_counts_connections(Arc::new(RedisPresence::new(server, "gw-1".into(), Duration::from_secs(3))))
        .await;
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn redis_presence_spans_gateways_and_a_dead_gateways_users_go_offline() {
    let (server, url) = redis().await;
    let prefix = server_prefix(&server);
    let ttl = Duration::from_millis(600);
    let one = RedisPresence::new(server.clone(), "gw-1".into(), ttl);
    let two = RedisPresence::new(server.clone(), "gw-2".into(), ttl);
    let u = UserId::from("u");
    assert!(one.connected(&u).await.expect("connect"));
    assert!(!two.connected(&u).await.expect("already online elsewhere"));
    assert!(!two.disconnected(&u).await.expect("still online on gw-1"));
    // gw-1 dies: nobody disconnects, its claim simply runs out.
    drop(one);
    let deadline = tokio::time::Instant::now() + WAIT;
    while two.online(std::slice::from_ref(&u)).await.expect("online") == vec![true] {
        assert!(tokio::time::Instant::now() < deadline, "the dead gateway's user never went offline");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn redis_queue_hands_a_dead_workers_unacknowledged_entries_to_the_next() {
    let (server, url) = redis().await;
    let prefix = server_prefix(&server);
    let lease = Duration::from_millis(800);
    let queue = RedisQueue::new(server.clone(), 1, lease);
    for n in 0..10 {
        queue.push(item("room", n)).await.expect("push");
    }
    let mut first = queue.try_consumer(0, "first").await.expect("consumer").expect("free");
    let mut taken = Vec::new();
    while taken.len() < 10 {
        taken.extend(first.next_batch(4).await.expect("open"));
    }
    // The first worker dies before acknowledging anything.
    drop(first);
    let survivor = RedisQueue::new(server, 1, lease);
    let got = drain(&survivor, 10).await;
    assert_eq!(
        got.iter().map(body_of).collect::<Vec<_>>(),
        (0..10).map(|n| n.to_string()).collect::<Vec<_>>()
    );
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn a_redis_partition_is_held_by_one_worker_and_free_again_once_released() {
    let (server, url) = redis().await;
    let prefix = server_prefix(&server);
    let queue = RedisQueue::new(server, 2, Duration::from_secs(30));
    let first = queue.try_consumer(0, "w1").await.expect("the queue answers").expect("free");
    assert!(queue.try_consumer(0, "w2").await.expect("the queue answers").is_none(), "held by w1");
    assert!(queue.try_consumer(1, "w2").await.expect("the queue answers").is_some(), "another is free");
    // Released, not left to run out (the lease is 30 s).
    first.release().await;
    assert!(queue.try_consumer(0, "w2").await.expect("the queue answers").is_some(), "free once released");
    let mut one = queue.join("w1").await.expect("join");
    let mut two = queue.join("w2").await.expect("join");
    one.beat().await.expect("beat");
    let mut members = two.beat().await.expect("beat");
    members.sort();
    assert_eq!(members, ["w1", "w2"]);
    one.leave().await;
    assert_eq!(two.beat().await.expect("beat"), ["w2"], "a worker that left is gone at once");
    cleanup(&url, &prefix).await;
}

fn server_prefix(server: &RedisServer) -> String {
    server.prefix().to_owned()
}

/// A RabbitMQ queue under a fresh prefix, and a way to delete its queues afterwards.
async fn rabbit(partitions: usize) -> (RabbitQueue, String, String) {
    let url = std::env::var("PARLOR_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let prefix = format!("parlor-test-{}", uuid::Uuid::now_v7());
    let queue = RabbitQueue::connect(&url, &prefix, partitions).await.unwrap_or_else(|e| {
        panic!("RabbitMQ is not reachable at {url} ({e}). Start it or set PARLOR_TEST_AMQP_URL.")
    });
    (queue, url, prefix)
}

async fn delete_queues(url: &str, names: &[String]) {
    let Ok(conn) = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await else {
        return;
    };
    let Ok(channel) = conn.create_channel().await else { return };
    for name in names {
        let _ =
            channel.queue_delete(name.as_str().into(), lapin::options::QueueDeleteOptions::default()).await;
    }
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn rabbitmq_queue_keeps_order_and_delivers_once() {
    let (queue, url, _) = rabbit(4).await;
    let names: Vec<String> = (0..4).map(|p| queue.name(p)).collect();
    one_rooms_commands_arrive_once_and_in_order(Arc::new(queue)).await;
    delete_queues(&url, &names).await;
}

#[tokio::test]
async fn rabbitmq_queue_redelivers_a_dead_consumers_unacknowledged_messages_in_order() {
    let (queue, url, _) = rabbit(1).await;
    let names = vec![queue.name(0)];
    for n in 0..10 {
        queue.push(item("room", n)).await.expect("push");
    }
    let mut first = queue.try_consumer(0, "first").await.expect("consumer").expect("free");
    let mut taken = Vec::new();
    while taken.len() < 10 {
        // (The first read sets the prefetch: all ten may be unacknowledged at once.)
        taken.extend(first.next_batch(10).await.expect("open"));
    }
    // A second consumer waits its turn (single active consumer) while the first is alive.
    let mut second = queue.try_consumer(0, "second").await.expect("consumer").expect("a standby");
    let waiting = second.next_batch(10).await.expect("open");
    assert!(waiting.is_empty(), "only one consumer is active: {waiting:?}");
    // The first worker dies before acknowledging anything.
    drop(first);
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < 10 {
        assert!(tokio::time::Instant::now() < deadline, "redelivered only {}", got.len());
        let batch = second.next_batch(10).await.expect("open");
        let tags: Vec<String> = batch.iter().map(|d| d.tag.clone()).collect();
        second.ack(&tags).await.expect("ack");
        got.extend(batch.into_iter().map(|d| d.item));
    }
    assert_eq!(
        got.iter().map(body_of).collect::<Vec<_>>(),
        (0..10).map(|n| n.to_string()).collect::<Vec<_>>()
    );
    delete_queues(&url, &names).await;
}
