//! Workers share a distributed queue's partitions: three `parlor_worker::run` tasks over one
//! queue (Redis at `PARLOR_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`, or RabbitMQ at
//! `PARLOR_TEST_AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`, under a fresh prefix),
//! one SQLite store and the real moderation, while commands keep coming. Each holds its share;
//! the share moves when one is stopped abruptly and when one joins; every command is stored once,
//! in order. The tests fail, loudly, when the servers are not there.

use parlor_broker::LocalBus;
use parlor_broker::rabbitmq::RabbitQueue;
use parlor_broker::redis::{RedisQueue, RedisServer};
use parlor_domain::model::Visibility;
use parlor_domain::ports::{Bus, NewRoom, Page, Queue, Reviewer, Store};
use parlor_domain::queue::{Command, Inbound};
use parlor_domain::{Error, RoomId, Timestamp, UserId};
use parlor_moderation::{ModerationSettings, Moderator};
use parlor_store::SqliteStore;
use parlor_worker::{Holdings, WorkerContext};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const PARTITIONS: usize = 6;
/// Short, so a dead worker's partitions move soon.
const LEASE: Duration = Duration::from_secs(1);
const WAIT: Duration = Duration::from_secs(30);
const ROOMS: usize = 12;

#[derive(Clone, Copy)]
enum Backend {
    Redis,
    Rabbit,
}

fn redis_url() -> String {
    std::env::var("PARLOR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn amqp_url() -> String {
    std::env::var("PARLOR_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A queue under `prefix`, as a process of its own would connect to it.
async fn queue(backend: Backend, prefix: &str) -> Arc<dyn Queue> {
    match backend {
        Backend::Redis => {
            let url = redis_url();
            let server = RedisServer::connect(&url, prefix).await.unwrap_or_else(|e| {
                panic!("Redis is not reachable at {url} ({e}). Start it or set PARLOR_TEST_REDIS_URL.")
            });
            Arc::new(RedisQueue::new(server, PARTITIONS, LEASE))
        }
        Backend::Rabbit => {
            let url = amqp_url();
            let queue = RabbitQueue::connect(&url, prefix, PARTITIONS).await.unwrap_or_else(|e| {
                panic!("RabbitMQ is not reachable at {url} ({e}). Start it or set PARLOR_TEST_AMQP_URL.")
            });
            Arc::new(queue.with_member_ttl(LEASE))
        }
    }
}

/// Deletes what a test left on the servers.
async fn cleanup(backend: Backend, prefix: &str) {
    match backend {
        Backend::Redis => {
            let Ok(client) = redis::Client::open(redis_url()) else { return };
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _ = redis::cmd("DEL").arg(keys).query_async::<i64>(&mut conn).await;
            }
        }
        Backend::Rabbit => {
            let Ok(conn) =
                lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await
            else {
                return;
            };
            let Ok(channel) = conn.create_channel().await else { return };
            for p in 0..PARTITIONS {
                let name = format!("{prefix}.inbound.{p}");
                let _ = channel
                    .queue_delete(name.as_str().into(), lapin::options::QueueDeleteOptions::default())
                    .await;
            }
            let _ = conn.close(200, "done".into()).await;
        }
    }
}

/// One running worker.
struct Worker {
    holdings: Holdings,
    stop: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
}

/// What every worker shares but its queue connection.
struct Shared {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    reviewer: Arc<dyn Reviewer>,
}

impl Shared {
    async fn worker(&self, backend: Backend, prefix: &str) -> Worker {
        let holdings = Holdings::default();
        let stop = CancellationToken::new();
        let ctx = WorkerContext {
            store: self.store.clone(),
            queue: queue(backend, prefix).await,
            bus: self.bus.clone(),
            reviewer: self.reviewer.clone(),
            batch_max: 16,
            notify_after: None,
            holdings: holdings.clone(),
        };
        let task = tokio::spawn(parlor_worker::run(ctx, stop.clone()));
        Worker { holdings, stop, task }
    }
}

/// Waits until these workers hold `each` partitions apiece and, together, every partition once.
async fn wait_for_shares(workers: &[&Worker], each: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let shares: Vec<Vec<usize>> = workers.iter().map(|w| w.holdings.get()).collect();
        let all: BTreeSet<usize> = shares.iter().flatten().copied().collect();
        if shares.iter().all(|s| s.len() == each) && all.len() == PARTITIONS {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: the shares are still {shares:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

use parlor_store::testing::user;

async fn workers_share_the_partitions_and_hand_them_over(backend: Backend) {
    let prefix = format!("parlor-test-{}", uuid::Uuid::now_v7());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("share.db")).await.expect("SQLite opens"));
    // Moderation as shipped but for the classifier: the bodies are short and made up.
    let settings = ModerationSettings { spam_threshold: 2.0, ..ModerationSettings::default() };
    let shared = Shared {
        store: store.clone(),
        bus: Arc::new(LocalBus::new()),
        reviewer: Arc::new(Moderator::new(settings, store.clone())),
    };
    // A room per author, so the rooms spread over the partitions and no author floods.
    let mut rooms: Vec<(RoomId, UserId)> = Vec::new();
    for i in 0..ROOMS {
        let author = user(&store, &format!("author{i}")).await;
        let room = RoomId::generate();
        let new = NewRoom {
            id: room.clone(),
            name: format!("room {i}"),
            topic: None,
            visibility: Visibility::Public,
            owner_id: author.clone(),
            created_at: Timestamp::now(),
        };
        store.create_room(new).await.expect("create a room");
        rooms.push((room, author));
    }

    // A gateway pushing all along, round the rooms.
    let pushing = Arc::new(AtomicBool::new(true));
    let pusher = {
        let (queue, rooms, pushing) = (queue(backend, &prefix).await, rooms.clone(), pushing.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            while pushing.load(Ordering::SeqCst) {
                let (room_id, author_id) = rooms[n % ROOMS].clone();
                let item = Inbound {
                    request_id: format!("r{n}"),
                    origin: "gw".into(),
                    command: Command::Create {
                        room_id,
                        author_id,
                        body: format!("note {n}"),
                        nonce: Some(format!("n{n}")),
                        reply_to: None,
                    },
                    enqueued_at: Some(Timestamp::now()),
                };
                queue.push(item).await.expect("queued");
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };

    let one = shared.worker(backend, &prefix).await;
    let two = shared.worker(backend, &prefix).await;
    let three = shared.worker(backend, &prefix).await;
    wait_for_shares(&[&one, &two, &three], 2, "three workers").await;

    // The third dies without a word: its membership and leases run out.
    three.task.abort();
    assert!(three.task.await.expect_err("aborted").is_cancelled());
    wait_for_shares(&[&one, &two], 3, "after one of three died").await;

    let four = shared.worker(backend, &prefix).await;
    wait_for_shares(&[&one, &two, &four], 2, "after a fourth joined").await;

    pushing.store(false, Ordering::SeqCst);
    let pushed = pusher.await.expect("the pusher ends");
    assert!(pushed >= 2 * ROOMS, "commands flowed all along: {pushed}");
    let per_room = |i: usize| (0..pushed).filter(|n| n % ROOMS == i).count();
    let deadline = tokio::time::Instant::now() + WAIT;
    let inspector = queue(backend, &prefix).await;
    for (i, (room, _)) in rooms.iter().enumerate() {
        let history = loop {
            let (history, _) = store.history(room, Page::Latest, 10_000).await.expect("history");
            if history.len() >= per_room(i) {
                break history;
            }
            if tokio::time::Instant::now() >= deadline {
                let depths = inspector.depths().await;
                let shares = [&one, &two, &four].map(|w| w.holdings.get());
                panic!(
                    "room {i} (partition {}) has {} of {} messages; queue depths {depths:?}, shares {shares:?}",
                    parlor_domain::partition::partition_of(room, PARTITIONS),
                    history.len(),
                    per_room(i)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let seqs: Vec<i64> = history.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=per_room(i) as i64).collect::<Vec<_>>(), "room {i}: gapless, once each");
        let nonces: HashSet<&str> = history.iter().filter_map(|m| m.nonce.as_deref()).collect();
        assert_eq!(nonces.len(), history.len(), "room {i}: each command stored once");
        // One room's commands are applied in the order they were queued.
        let order: Vec<usize> =
            history.iter().filter_map(|m| m.nonce.as_deref()?.strip_prefix('n')?.parse().ok()).collect();
        assert!(order.is_sorted(), "room {i} in push order: {order:?}");
    }

    for w in [one, two, four] {
        w.stop.cancel();
        tokio::time::timeout(WAIT, w.task)
            .await
            .expect("a worker stops in time")
            .expect("the worker task ends")
            .expect("the worker ends well");
        assert!(w.holdings.get().is_empty(), "a stopped worker holds nothing");
    }
    cleanup(backend, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_redis_partitions_and_hand_them_over_when_one_dies_or_joins() {
    workers_share_the_partitions_and_hand_them_over(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_rabbitmq_partitions_and_hand_them_over_when_one_dies_or_joins() {
    workers_share_the_partitions_and_hand_them_over(Backend::Rabbit).await;
}
