//! Fault injection: a cluster of two gateways and two workers (with moderation, users and a
//! notifier as their own processes) carries steady traffic from clients that reconnect and retry
//! with their nonces, while one fault strikes: a `kill -9` of each role in turn, PostgreSQL,
//! Redis or RabbitMQ restarted, or a process stopped (SIGSTOP) for longer than its lease or
//! heartbeat. Afterwards a checker reads every room's history and proves that every acknowledged
//! message is there exactly once, under the id it was acknowledged with, in gapless order, and
//! that every client caught up with `sync`.
//!
//! PostgreSQL, Redis and RabbitMQ are the machine's (see cluster.rs) except where a test restarts
//! one: then it gets a private server of its own, so that other tests are not disturbed.

mod common;

use common::TestUser;
use common::cluster::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Messages each user sends.
const MESSAGES: usize = 24;
/// How long one read may take before the client gives the connection up.
const READ: Duration = Duration::from_secs(4);
/// How long a whole scenario may take before the test fails.
const SCENARIO: Duration = Duration::from_secs(120);

/// A client that does not give up: it connects to whichever gateway answers, retries each send
/// with its nonce until it is acknowledged, and keeps every `message.created` it sees.
struct Client {
    user: TestUser,
    gateways: Vec<String>,
    next_gateway: usize,
    socket: Option<Socket>,
    /// Seqs seen per room, live or by `sync`.
    seen: HashMap<String, BTreeSet<i64>>,
    /// Nonce → the id of the acknowledged message.
    acked: HashMap<String, String>,
    reconnects: usize,
    /// Sends made again (refused as unavailable, or their connection lost).
    retries: usize,
    /// The longest a send waited for its acknowledgement.
    slowest: Duration,
    /// The gateway of the current connection.
    on: Option<String>,
    /// The gateway a written send of this client awaits its answer from, if one does: the fault
    /// strikes while one does, so that it is certain to catch a send in flight.
    in_flight: Arc<Mutex<Option<String>>>,
}

impl Client {
    fn new(user: TestUser, gateways: Vec<String>, rooms: &[String]) -> Self {
        Self {
            user,
            gateways,
            next_gateway: 0,
            socket: None,
            seen: rooms.iter().map(|r| (r.clone(), BTreeSet::new())).collect(),
            acked: HashMap::new(),
            reconnects: 0,
            retries: 0,
            slowest: Duration::ZERO,
            on: None,
            in_flight: Arc::default(),
        }
    }

    fn lost(&mut self) {
        self.socket = None;
        self.on = None;
        self.landed();
    }

    /// No send waits for an answer (any more).
    fn landed(&self) {
        *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The highest seq of a room below which nothing is missing.
    fn contiguous(&self, room: &str) -> i64 {
        let mut last = 0;
        for seq in self.seen.get(room).into_iter().flatten() {
            if *seq != last + 1 {
                break;
            }
            last = *seq;
        }
        last
    }

    fn record(&mut self, frame: &Value) {
        if frame["type"] == "message.created"
            && let (Some(room), Some(seq)) =
                (frame["message"]["room_id"].as_str(), frame["message"]["seq"].as_i64())
        {
            self.seen.entry(room.to_owned()).or_default().insert(seq);
        }
    }

    /// The next JSON frame, or None if the connection is gone or silent.
    async fn read(&mut self) -> Option<Value> {
        let socket = self.socket.as_mut()?;
        loop {
            match tokio::time::timeout(READ, socket.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let frame: Value = serde_json::from_str(&t).ok()?;
                    self.record(&frame);
                    return Some(frame);
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => {
                    self.lost();
                    return None;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    async fn write(&mut self, frame: Value) -> bool {
        let Some(socket) = self.socket.as_mut() else { return false };
        let sent = tokio::time::timeout(READ, socket.send(Message::text(frame.to_string()))).await;
        if !matches!(sent, Ok(Ok(()))) {
            self.lost();
            return false;
        }
        true
    }

    /// Connects to the next gateway that authenticates it, then catches up with `sync`.
    async fn connect(&mut self) {
        loop {
            let addr = self.gateways[self.next_gateway % self.gateways.len()].clone();
            self.next_gateway += 1;
            let Ok(mut req) = format!("ws://{addr}/api/v1/ws").into_client_request() else { continue };
            if let Ok(value) = format!("Bearer {}", self.user.token).parse() {
                req.headers_mut().insert("authorization", value);
            }
            if let Ok(Ok((socket, _))) =
                tokio::time::timeout(READ, tokio_tungstenite::connect_async(req)).await
            {
                self.socket = Some(socket);
                self.on = Some(addr);
                let mut ready = false;
                while let Some(frame) = self.read().await {
                    if frame["type"] == "ready" {
                        ready = true;
                        break;
                    }
                }
                if ready && self.sync().await {
                    return;
                }
            }
            self.lost();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Asks for everything after what it has seen; true once `synced` arrives.
    async fn sync(&mut self) -> bool {
        let rooms: serde_json::Map<String, Value> =
            self.seen.keys().map(|r| (r.clone(), json!(self.contiguous(r)))).collect();
        if !self.write(json!({"type": "sync", "rooms": rooms})).await {
            return false;
        }
        while let Some(frame) = self.read().await {
            if frame["type"] == "synced" {
                return true;
            }
        }
        false
    }

    /// Sends one message, retried with its nonce (over new connections if need be) until it is
    /// acknowledged.
    async fn send(&mut self, room: &str, nonce: &str) {
        let started = std::time::Instant::now();
        for attempt in 0.. {
            if attempt > 0 {
                self.retries += 1;
            }
            if self.socket.is_none() {
                self.reconnects += 1;
                self.connect().await;
            }
            let frame = json!({"type": "send", "room_id": room, "body": body(nonce), "nonce": nonce});
            if !self.write(frame).await {
                continue;
            }
            *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()) = self.on.clone();
            while let Some(answer) = self.read().await {
                if answer["nonce"] != nonce || !(answer["type"] == "ack" || answer["type"] == "error") {
                    continue;
                }
                if answer["type"] == "ack" {
                    let id = answer["message"]["id"].as_str().expect("an acknowledged id").to_owned();
                    if let Some(earlier) = self.acked.insert(nonce.to_owned(), id.clone()) {
                        assert_eq!(earlier, id, "a nonce acknowledged twice names one message");
                    }
                    self.slowest = self.slowest.max(started.elapsed());
                    self.landed();
                    return;
                }
                assert!(
                    ["unavailable", "rate_limited"].contains(&answer["code"].as_str().unwrap_or_default()),
                    "only unavailability is retried: {answer}"
                );
                self.landed();
                tokio::time::sleep(Duration::from_millis(200)).await;
                break;
            }
        }
    }
}

/// A sentence of its own for each nonce: the flood check refuses near-repeats.
fn body(nonce: &str) -> String {
    const WORDS: [&str; 24] = [
        "apple", "river", "quiet", "lantern", "orbit", "meadow", "copper", "violet", "harbor", "puzzle",
        "thunder", "saddle", "pepper", "glacier", "bramble", "falcon", "mosaic", "tundra", "velvet", "ember",
        "canyon", "willow", "nectar", "quartz",
    ];
    let mut x = nonce
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let words: Vec<&str> = (0..8)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            WORDS[(x % WORDS.len() as u64) as usize]
        })
        .collect();
    format!("{} ({nonce})", words.join(" "))
}

/// What strikes mid-stream.
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillGateway,
    KillWorker,
    KillModeration,
    KillUsers,
    KillNotifier,
    StopWorker,
    StopGateway,
    RestartPostgres,
    RestartRedis,
    RestartRabbit,
}

/// The private servers a fault needs.
#[derive(Default)]
struct Servers {
    postgres: Option<PrivatePostgres>,
    redis: Option<PrivateRedis>,
    rabbit: Option<PrivateRabbit>,
}

async fn survives(fault: Fault) {
    let mut servers = Servers::default();
    match fault {
        Fault::RestartPostgres => servers.postgres = Some(PrivatePostgres::start()),
        Fault::RestartRedis => servers.redis = Some(PrivateRedis::start()),
        Fault::RestartRabbit => servers.rabbit = Some(PrivateRabbit::start()),
        _ => {}
    }
    let backends = Backends {
        postgres_admin: servers.postgres.as_ref().map_or_else(postgres_admin_url, PrivatePostgres::admin_url),
        redis_url: servers.redis.as_ref().map_or_else(redis_url, PrivateRedis::url),
        amqp_url: servers.rabbit.as_ref().map(PrivateRabbit::url),
    };
    let mut cluster = Cluster::launch(0, 0, &backends, true).await;
    cluster.gateway_extra.extend(["--heartbeat".to_owned(), "1s".to_owned()]);
    cluster.add_gateway();
    cluster.add_gateway();
    cluster.add_worker();
    cluster.add_worker();
    cluster.add_notifier(&["--smtp-url", "smtp://127.0.0.1:9", "--notify-lease", "2s"]);

    let alice = cluster.register(0, "alice").await;
    let bob = cluster.register(1, "bob").await;
    let rooms = vec![cluster.room(&alice, &[&bob]).await, cluster.room(&bob, &[&alice]).await];
    let gateways: Vec<String> = cluster.gateways.iter().map(|g| g.addr.clone()).collect();
    // Alice starts on the first gateway, Bob on the second.
    let a = Client::new(alice, gateways.clone(), &rooms);
    let b = Client::new(bob, gateways.iter().rev().cloned().collect(), &rooms);
    let alice_waits_on = a.in_flight.clone();
    // The gateway struck is Alice's, whichever she is on by then.
    let mut struck = 0;

    let acks = AtomicUsize::new(0);
    let total = 2 * MESSAGES;
    // Each writes to one room and reads both.
    let traffic = async { tokio::join!(drive("a", a, &rooms[0], &acks), drive("b", b, &rooms[1], &acks)) };
    let strike = async {
        // A third of the traffic goes through before the fault, which strikes while a send of
        // Alice's waits for its answer (all of it runs on this one thread: she is waiting now).
        let gateway = loop {
            let waits_on = alice_waits_on.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(addr) = waits_on.filter(|_| acks.load(Ordering::SeqCst) >= total / 3) {
                break addr;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        struck = cluster.gateways.iter().position(|g| g.addr == gateway).expect("one of the gateways");
        inject(fault, &mut cluster, &mut servers, struck).await;
    };
    let ((a, b), ()) = tokio::time::timeout(SCENARIO, async { tokio::join!(traffic, strike) })
        .await
        .expect("the scenario ends in time");
    eprintln!(
        "{fault:?}: connections {} + {}, sends retried {} + {}, slowest acknowledgement {:?} / {:?}",
        a.reconnects, b.reconnects, a.retries, b.retries, a.slowest, b.slowest
    );
    // Her connection to a killed gateway is closed, so she reconnected for the answer. A stopped
    // one may as well answer her once it continues (what it read before the stop, or finds
    // waiting after it, counts as hearing from her), so there she may or may not have; what
    // holds either way is checked below, and that the stopped gateway serves again.
    if matches!(fault, Fault::KillGateway) {
        assert!(a.reconnects > 1, "alice's gateway was struck: she reconnected");
    }
    let also = matches!(fault, Fault::StopGateway).then_some(struck);
    check(&cluster, &rooms, vec![a, b], 1 - struck, also).await;
}

/// Sends MESSAGES messages to a room, one at a time, each until it is acknowledged. (One room
/// per sender: moderation refuses bursts spread over rooms.)
async fn drive(tag: &str, mut client: Client, room: &str, acks: &AtomicUsize) -> Client {
    for i in 0..MESSAGES {
        client.send(room, &format!("{tag}-{i}")).await;
        acks.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    client
}

/// Strikes; `gateway` is the one a gateway fault strikes.
async fn inject(fault: Fault, cluster: &mut Cluster, servers: &mut Servers, gateway: usize) {
    let pause = Duration::from_secs(3);
    match fault {
        Fault::KillGateway => cluster.gateways[gateway].kill9(),
        Fault::KillWorker => cluster.workers[0].kill9(),
        // Services come back on their addresses: the others were configured with them.
        Fault::KillModeration | Fault::KillUsers | Fault::KillNotifier => {
            let i = match fault {
                Fault::KillModeration => 0,
                Fault::KillUsers => 1,
                _ => 2,
            };
            cluster.services[i].kill9();
            tokio::time::sleep(pause).await;
            cluster.services[i].restart();
        }
        // Longer than the partition lease (1 s) and the heartbeat (1 s).
        Fault::StopWorker | Fault::StopGateway => {
            let victim = if matches!(fault, Fault::StopWorker) {
                &cluster.workers[0]
            } else {
                &cluster.gateways[gateway]
            };
            victim.signal("STOP");
            tokio::time::sleep(pause).await;
            victim.signal("CONT");
        }
        Fault::RestartPostgres => {
            let pg = servers.postgres.as_ref().expect("a private PostgreSQL");
            pg.crash();
            tokio::time::sleep(pause).await;
            pg.up();
        }
        Fault::RestartRedis => {
            let redis = servers.redis.as_mut().expect("a private Redis");
            redis.down();
            tokio::time::sleep(pause).await;
            redis.up();
        }
        Fault::RestartRabbit => {
            let rabbit = servers.rabbit.as_mut().expect("a private RabbitMQ");
            rabbit.down("TERM");
            tokio::time::sleep(pause).await;
            rabbit.up();
        }
    }
}

/// Every acknowledged message stored once under its id, gapless seqs, every client caught up:
/// read through gateway `g` (one not struck), and through `also` too (one that was stopped and
/// continued), which must tell the same.
async fn check(cluster: &Cluster, rooms: &[String], clients: Vec<Client>, g: usize, also: Option<usize>) {
    let token = clients[0].user.token.clone();
    let mut stored: HashMap<String, String> = HashMap::new();
    let mut last: HashMap<String, i64> = HashMap::new();
    for room in rooms {
        let history = cluster.history(g, room, &token).await;
        assert_gapless_once(&history);
        if let Some(other) = also {
            assert_eq!(cluster.history(other, room, &token).await, history, "the continued gateway serves");
        }
        last.insert(room.clone(), history.len() as i64);
        for m in &history {
            let (Some(nonce), Some(id)) = (m["nonce"].as_str(), m["id"].as_str()) else { continue };
            assert!(stored.insert(nonce.to_owned(), id.to_owned()).is_none(), "nonce {nonce} stored twice");
        }
    }
    let mut acked = 0;
    for mut client in clients {
        for (nonce, id) in &client.acked {
            assert_eq!(stored.get(nonce), Some(id), "acknowledged {nonce} is stored as acknowledged");
        }
        acked += client.acked.len();
        // Whatever it missed while connections came and went, `sync` brings (over a new
        // connection if the last one was closed meanwhile, e.g. for not answering pings).
        if client.socket.is_none() || !client.sync().await {
            client.connect().await;
        }
        for room in rooms {
            let want: BTreeSet<i64> = (1..=last[room]).collect();
            assert_eq!(client.seen[room], want, "{} has all of room {room}", client.user.username);
        }
    }
    assert_eq!(acked, 2 * MESSAGES, "every send was acknowledged");
    assert_eq!(stored.len(), acked, "nothing stored that was not acknowledged");
}

#[tokio::test]
async fn a_gateway_killed_mid_stream() {
    survives(Fault::KillGateway).await;
}

#[tokio::test]
async fn a_worker_killed_mid_stream() {
    survives(Fault::KillWorker).await;
}

#[tokio::test]
async fn the_moderation_service_killed_and_restarted() {
    survives(Fault::KillModeration).await;
}

#[tokio::test]
async fn the_users_service_killed_and_restarted() {
    survives(Fault::KillUsers).await;
}

#[tokio::test]
async fn the_notifier_killed_and_restarted() {
    survives(Fault::KillNotifier).await;
}

#[tokio::test]
async fn a_worker_stopped_past_its_lease() {
    survives(Fault::StopWorker).await;
}

#[tokio::test]
async fn a_gateway_stopped_past_the_heartbeat() {
    survives(Fault::StopGateway).await;
}

#[tokio::test]
async fn postgresql_crashed_and_restarted() {
    survives(Fault::RestartPostgres).await;
}

#[tokio::test]
async fn redis_restarted() {
    survives(Fault::RestartRedis).await;
}

#[tokio::test]
async fn rabbitmq_restarted() {
    survives(Fault::RestartRabbit).await;
}
