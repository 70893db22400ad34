//! The distributed mode end to end: gateways and workers as separate processes on loopback over
//! PostgreSQL and Redis (and RabbitMQ), each test in a fresh database and key prefix. The servers
//! are the ones on this machine (`PARLOR_TEST_POSTGRES_URL`, `PARLOR_TEST_REDIS_URL`,
//! `PARLOR_TEST_AMQP_URL`); these tests fail, loudly, when one is missing.

mod common;

use common::{TestUser, WsClient, free_port, spawn_parlor};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "cluster-test-secret-0123456789";

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

/// A fresh PostgreSQL database, dropped at the end.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Self {
        let admin = env_or("PARLOR_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres");
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at {admin} ({e}). Start it or set PARLOR_TEST_POSTGRES_URL.")
        });
        let name = format!("parlor_cluster_{}", uuid_hex());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin.clone());
        Self { url: format!("{base}/{name}"), admin, name }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

fn uuid_hex() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    ) + &format!("{:x}", std::process::id())
}

/// Fails loudly when Redis is not there.
fn check_redis(url: &str) {
    let addr = url.trim_start_matches("redis://").split('/').next().unwrap_or("127.0.0.1:6379");
    std::net::TcpStream::connect(addr).unwrap_or_else(|e| {
        panic!("Redis is not reachable at {url} ({e}). Start it or set PARLOR_TEST_REDIS_URL.")
    });
}

/// One process of the cluster.
struct Proc {
    child: Child,
    /// The address a gateway listens on.
    addr: String,
}

impl Proc {
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Gateways and workers over one database, one Redis prefix, and maybe RabbitMQ.
struct Cluster {
    _db: Database,
    gateways: Vec<Proc>,
    workers: Vec<Proc>,
    /// Moderation and users, when they run alone.
    services: Vec<Proc>,
    gateway_extra: Vec<String>,
    worker_extra: Vec<String>,
    common: Vec<String>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(gateways: usize, workers: usize, redis_url: &str, amqp: bool) -> Self {
        Self::start_with(gateways, workers, redis_url, amqp, false).await
    }

    /// With `services`, moderation and users run as processes of their own, and the gateways and
    /// workers reach them over gRPC.
    async fn start_with(
        gateways: usize,
        workers: usize,
        redis_url: &str,
        amqp: bool,
        services: bool,
    ) -> Self {
        check_redis(redis_url);
        let db = Database::create().await;
        let prefix = format!("parlor-cluster-{}", uuid_hex());
        let mut common: Vec<String> = [
            "--database-url",
            &db.url,
            "--redis-url",
            redis_url,
            "--key-prefix",
            &prefix,
            "--partition-lease",
            "1s",
            "--presence-ttl",
            "2s",
            "--worker-partitions",
            "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if amqp {
            common.push("--amqp-url".into());
            common.push(env_or("PARLOR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"));
        }
        let mut cluster = Self {
            _db: db,
            gateways: Vec::new(),
            workers: Vec::new(),
            services: Vec::new(),
            gateway_extra: Vec::new(),
            worker_extra: Vec::new(),
            common,
            http: reqwest::Client::new(),
        };
        if services {
            let moderation = cluster.add_service("moderation", &[]);
            let users = cluster.add_service("users", &["--jwt-secret", SECRET]);
            cluster.worker_extra = vec!["--moderation-url".into(), moderation];
            cluster.gateway_extra = vec!["--users-url".into(), users];
        }
        for _ in 0..gateways {
            cluster.add_gateway();
        }
        for _ in 0..workers {
            cluster.add_worker();
        }
        cluster
    }

    /// Starts `parlor <role>` on a free gRPC port; returns its URL.
    fn add_service(&mut self, role: &str, extra: &[&str]) -> String {
        let mut args: Vec<String> = vec![role.into(), "--grpc-listen".into(), "127.0.0.1:0".into()];
        // Moderation needs only the database; users also reads presence from Redis.
        let keep: &[&str] = if role == "users" {
            &["--database-url", "--redis-url", "--key-prefix"]
        } else {
            &["--database-url"]
        };
        for pair in self.common.chunks(2) {
            if keep.contains(&pair[0].as_str()) {
                args.extend(pair.iter().cloned());
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let (child, addr) = spawn_parlor(&args, "gRPC listening on ");
        let addr = addr.trim().to_owned();
        self.services.push(Proc { child, addr: addr.clone() });
        format!("http://{addr}")
    }

    fn add_gateway(&mut self) {
        let mut args: Vec<String> = vec!["gateway".into(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(self.common.iter().cloned());
        args.extend(self.gateway_extra.iter().cloned());
        for (k, v) in [
            ("--jwt-secret", SECRET),
            ("--auth-rate", "1000"),
            ("--auth-burst", "10000"),
            ("--send-rate", "1000"),
            ("--send-burst", "10000"),
            ("--send-timeout", "3s"),
        ] {
            args.push(k.into());
            args.push(v.into());
        }
        let (child, line) = spawn_parlor(&args, "listening on ");
        let addr = line.split_whitespace().next().unwrap_or_default().to_owned();
        self.gateways.push(Proc { child, addr });
    }

    fn add_worker(&mut self) {
        let mut args: Vec<String> = vec!["worker".into()];
        args.extend(self.common.iter().cloned());
        args.extend(self.worker_extra.iter().cloned());
        let (child, _) = spawn_parlor(&args, "worker started");
        self.workers.push(Proc { child, addr: String::new() });
    }

    fn base(&self, g: usize) -> String {
        format!("http://{}", self.gateways[g].addr)
    }

    async fn call(
        &self,
        g: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base(g))).timeout(WAIT);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("an answer");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn register(&self, g: usize, name: &str) -> TestUser {
        let password = format!("password-{name}");
        let (status, body) = self
            .call(
                g,
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({"username": name, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        TestUser {
            id: body["user"]["id"].as_str().expect("id").to_owned(),
            username: name.to_owned(),
            password,
            token: body["access_token"].as_str().expect("token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
            phrase: body["recovery_phrase"].as_str().expect("phrase").to_owned(),
        }
    }

    /// A public room owned by `owner`, joined by the others.
    async fn room(&self, owner: &TestUser, others: &[&TestUser]) -> String {
        let (status, room) = self
            .call(0, Method::POST, "/api/v1/rooms", Some(&owner.token), Some(json!({"name": "cluster"})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{room}");
        let id = room["id"].as_str().expect("id").to_owned();
        for user in others {
            let (status, body) = self
                .call(0, Method::POST, &format!("/api/v1/rooms/{id}/join"), Some(&user.token), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        id
    }

    async fn ws(&self, g: usize, user: &TestUser) -> WsClient {
        common::TestApp::ws_at(&self.gateways[g].addr, &user.token).await
    }

    /// The whole history of a room, through gateway `g`.
    async fn history(&self, g: usize, room: &str, token: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let (status, page) = self
                .call(
                    g,
                    Method::GET,
                    &format!("/api/v1/rooms/{room}/messages?after={after}&limit=200"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let messages = page["messages"].as_array().cloned().unwrap_or_default();
            after = messages.last().and_then(|m| m["seq"].as_i64()).unwrap_or(after);
            all.extend(messages);
            if page["has_more"] != true {
                return all;
            }
        }
    }
}

/// Asserts seqs 1..n with no gap and no message twice.
fn assert_gapless_once(history: &[Value]) {
    let seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().unwrap_or(0)).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gapless from 1");
    let ids: HashSet<&str> = history.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids.len(), history.len(), "no message twice");
}

/// Sends `count` messages over a socket, each retried with its nonce until it is acknowledged;
/// returns nonce → acknowledged message id. Events of other kinds are skipped.
async fn send_all_acked(
    ws: &mut WsClient,
    room: &str,
    tag: &str,
    count: usize,
    mut between: impl FnMut(usize),
) -> HashMap<String, String> {
    let mut acked = HashMap::new();
    for i in 0..count {
        between(i);
        let nonce = format!("{tag}-{i}");
        let deadline = tokio::time::Instant::now() + WAIT * 2;
        loop {
            assert!(tokio::time::Instant::now() < deadline, "send {nonce} was never acknowledged");
            ws.send(json!({"type": "send", "room_id": room, "body": format!("{tag} {i}"), "nonce": nonce}))
                .await;
            let answer = loop {
                let frame = ws.next_json().await;
                if (frame["type"] == "ack" || frame["type"] == "error") && frame["nonce"] == nonce.as_str() {
                    break frame;
                }
            };
            if answer["type"] == "ack" {
                acked.insert(nonce.clone(), answer["message"]["id"].as_str().expect("id").to_owned());
                break;
            }
            assert_eq!(answer["code"], "unavailable", "only unavailability is retried: {answer}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    acked
}

/// Sends `count` messages without waiting, calls `at_ack` after each acknowledgement (with how
/// many have come), resends what is refused as unavailable with its nonce, and returns nonce →
/// acknowledged id once all are acknowledged.
async fn send_pipelined(
    ws: &mut WsClient,
    room: &str,
    tag: &str,
    count: usize,
    mut at_ack: impl FnMut(usize),
) -> HashMap<String, String> {
    let frame = |i: usize| json!({"type": "send", "room_id": room, "body": format!("{tag} {i}"), "nonce": format!("{tag}-{i}")});
    for i in 0..count {
        ws.send(frame(i)).await;
    }
    let mut acked = HashMap::new();
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while acked.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} sends were acknowledged",
            acked.len()
        );
        let answer = ws.next_json().await;
        let Some(nonce) = answer["nonce"].as_str().map(str::to_owned) else { continue };
        match answer["type"].as_str() {
            Some("ack") => {
                let id = answer["message"]["id"].as_str().expect("id").to_owned();
                if let Some(earlier) = acked.insert(nonce.clone(), id.clone()) {
                    assert_eq!(earlier, id, "a nonce acknowledged twice names one message");
                } else {
                    at_ack(acked.len());
                }
            }
            Some("error") => {
                assert_eq!(answer["code"], "unavailable", "only unavailability is retried: {answer}");
                let i: usize = nonce.rsplit('-').next().and_then(|n| n.parse().ok()).expect("our nonce");
                ws.send(frame(i)).await;
            }
            _ => {}
        }
    }
    acked
}

fn redis_url() -> String {
    env_or("PARLOR_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

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

/// A private Redis server on a free port, for the restart test.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = free_port();
        let mut redis = Self { port, child: None };
        redis.up();
        redis
    }

    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.down();
    }
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
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
        let mut args: Vec<String> = vec!["notifier".into(), "--jwt-secret".into(), SECRET.into()];
        for pair in cluster.common.chunks(2) {
            if ["--database-url", "--redis-url", "--key-prefix"].contains(&pair[0].as_str()) {
                args.extend(pair.iter().cloned());
            }
        }
        args.extend(["--smtp-url".into(), sink.url(), "--notify-lease".into(), "2s".into()]);
        let (child, _) = spawn_parlor(&args, "notifier started");
        cluster.services.push(Proc { child, addr: String::new() });
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
