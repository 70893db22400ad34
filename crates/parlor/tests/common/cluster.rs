//! A cluster of parlor processes on loopback for the distributed tests: a fresh PostgreSQL
//! database and Redis key prefix per test, gateways, workers and services as separate processes,
//! and private Redis, PostgreSQL and RabbitMQ servers for the tests that restart them.

#![allow(dead_code)]

use super::{TestUser, WsClient, free_port, spawn_parlor};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(20);
pub const SECRET: &str = "cluster-test-secret-0123456789";

pub fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

/// A fresh PostgreSQL database, dropped at the end.
pub struct Database {
    pub admin: String,
    pub name: String,
    pub url: String,
}

impl Database {
    pub async fn create() -> Self {
        Self::create_at(&postgres_admin_url()).await
    }

    /// A fresh database on the server of `admin` (a URL with the rights to create databases).
    pub async fn create_at(admin: &str) -> Self {
        let admin = admin.to_owned();
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

pub fn uuid_hex() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    ) + &format!("{:x}", std::process::id())
}

/// Fails loudly when Redis is not there.
pub fn check_redis(url: &str) {
    let addr = url.trim_start_matches("redis://").split('/').next().unwrap_or("127.0.0.1:6379");
    std::net::TcpStream::connect(addr).unwrap_or_else(|e| {
        panic!("Redis is not reachable at {url} ({e}). Start it or set PARLOR_TEST_REDIS_URL.")
    });
}

/// One process of the cluster.
pub struct Proc {
    pub child: Child,
    /// The address a gateway listens on.
    pub addr: String,
    /// How it was started, to start it again.
    pub args: Vec<String>,
    pub ready: String,
}

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) the process: a network cut, as its peers see it.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }

    /// Starts the process again with the same arguments, on the address it had.
    pub fn restart(&mut self) {
        self.kill9();
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| if a == "127.0.0.1:0" && !self.addr.is_empty() { self.addr.clone() } else { a.clone() })
            .collect();
        let (child, _) = spawn_parlor(&args, &self.ready);
        self.child = child;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Gateways and workers over one database, one Redis prefix, and maybe RabbitMQ.
pub struct Cluster {
    pub _db: Database,
    pub gateways: Vec<Proc>,
    pub workers: Vec<Proc>,
    /// Moderation and users, when they run alone.
    pub services: Vec<Proc>,
    pub gateway_extra: Vec<String>,
    pub worker_extra: Vec<String>,
    pub common: Vec<String>,
    pub http: reqwest::Client,
}

impl Cluster {
    pub async fn start(gateways: usize, workers: usize, redis_url: &str, amqp: bool) -> Self {
        Self::start_with(gateways, workers, redis_url, amqp, false).await
    }

    /// With `services`, moderation and users run as processes of their own, and the gateways and
    /// workers reach them over gRPC.
    pub async fn start_with(
        gateways: usize,
        workers: usize,
        redis_url: &str,
        amqp: bool,
        services: bool,
    ) -> Self {
        let backends = Backends {
            postgres_admin: postgres_admin_url(),
            redis_url: redis_url.to_owned(),
            amqp_url: amqp.then(amqp_url),
        };
        Self::launch(gateways, workers, &backends, services).await
    }

    /// A cluster over the given servers.
    pub async fn launch(gateways: usize, workers: usize, backends: &Backends, services: bool) -> Self {
        let redis_url = backends.redis_url.as_str();
        check_redis(redis_url);
        let db = Database::create_at(&backends.postgres_admin).await;
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
        if let Some(url) = &backends.amqp_url {
            common.push("--amqp-url".into());
            common.push(url.clone());
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
    pub fn add_service(&mut self, role: &str, extra: &[&str]) -> String {
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
        let ready = "gRPC listening on ";
        let (child, addr) = spawn_parlor(&args, ready);
        let addr = addr.trim().to_owned();
        self.services.push(Proc { child, addr: addr.clone(), args, ready: ready.into() });
        format!("http://{addr}")
    }

    /// Starts a notifier over the cluster's database and Redis.
    pub fn add_notifier(&mut self, extra: &[&str]) {
        let mut args: Vec<String> = vec!["notifier".into(), "--jwt-secret".into(), SECRET.into()];
        for pair in self.common.chunks(2) {
            if ["--database-url", "--redis-url", "--key-prefix"].contains(&pair[0].as_str()) {
                args.extend(pair.iter().cloned());
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let ready = "notifier started";
        let (child, _) = spawn_parlor(&args, ready);
        self.services.push(Proc { child, addr: String::new(), args, ready: ready.into() });
    }

    pub fn add_gateway(&mut self) {
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
        let ready = "listening on ";
        let (child, line) = spawn_parlor(&args, ready);
        let addr = line.split_whitespace().next().unwrap_or_default().to_owned();
        self.gateways.push(Proc { child, addr, args, ready: ready.into() });
    }

    pub fn add_worker(&mut self) {
        let mut args: Vec<String> = vec!["worker".into()];
        args.extend(self.common.iter().cloned());
        args.extend(self.worker_extra.iter().cloned());
        let ready = "worker started";
        let (child, _) = spawn_parlor(&args, ready);
        self.workers.push(Proc { child, addr: String::new(), args, ready: ready.into() });
    }

    pub fn base(&self, g: usize) -> String {
        format!("http://{}", self.gateways[g].addr)
    }

    pub async fn call(
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

    pub async fn register(&self, g: usize, name: &str) -> TestUser {
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
    pub async fn room(&self, owner: &TestUser, others: &[&TestUser]) -> String {
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

    pub async fn ws(&self, g: usize, user: &TestUser) -> WsClient {
        super::TestApp::ws_at(&self.gateways[g].addr, &user.token).await
    }

    /// The whole history of a room, through gateway `g`.
    pub async fn history(&self, g: usize, room: &str, token: &str) -> Vec<Value> {
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
pub fn assert_gapless_once(history: &[Value]) {
    let seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().unwrap_or(0)).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gapless from 1");
    let ids: HashSet<&str> = history.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids.len(), history.len(), "no message twice");
}

/// Sends `count` messages over a socket, each retried with its nonce until it is acknowledged;
/// returns nonce → acknowledged message id. Events of other kinds are skipped.
pub async fn send_all_acked(
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
pub async fn send_pipelined(
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

/// The servers a cluster uses.
pub struct Backends {
    /// A PostgreSQL URL allowed to create databases.
    pub postgres_admin: String,
    pub redis_url: String,
    pub amqp_url: Option<String>,
}

pub fn postgres_admin_url() -> String {
    env_or("PARLOR_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
}

pub fn amqp_url() -> String {
    env_or("PARLOR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

pub fn redis_url() -> String {
    env_or("PARLOR_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

/// A private Redis server on a free port, for the restart test.
pub struct PrivateRedis {
    pub port: u16,
    pub child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = free_port();
        let mut redis = Self { port, child: None };
        redis.up();
        redis
    }

    pub fn up(&mut self) {
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

    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.down();
    }
}

/// Runs a command as `user` when this process is root (PostgreSQL and RabbitMQ refuse to run as
/// root), else as is.
fn command_as(user: &str, program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--", program]);
        cmd
    } else {
        Command::new(program)
    }
}

fn give_to(user: &str, path: &std::path::Path) {
    let _ = Command::new("chown").args(["-R", user, &path.display().to_string()]).status();
}

fn wait_for_port(port: u16, up: bool, what: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() != up {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not {}",
            if up { "listen" } else { "stop" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private PostgreSQL server (initdb in a temporary directory, a free port), for the tests that
/// crash and restart it. Needs Debian's postgresql package (its binaries under
/// /usr/lib/postgresql/<version>/bin).
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    pub port: u16,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|dirs| {
                dirs.filter_map(Result::ok)
                    .map(|d| d.path().join("bin"))
                    .filter(|b| b.join("initdb").exists())
                    .max()
            })
            .expect(
                "PostgreSQL's server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)",
            );
        let dir = tempfile::tempdir().expect("a directory");
        give_to("postgres", dir.path());
        let data = dir.path().join("data");
        let status = command_as("postgres", &bin.join("initdb").display().to_string())
            .args(["-D", &data.display().to_string(), "-A", "trust", "-U", "postgres", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb");
        let pg = Self { dir, bin, port: free_port() };
        pg.up();
        pg
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        let data = self.dir.path().join("data").display().to_string();
        let log = self.dir.path().join("log").display().to_string();
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        command_as("postgres", &self.bin.join("pg_ctl").display().to_string())
            .args(["-D", &data, "-l", &log, "-o", &options, "-w"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    pub fn up(&self) {
        assert!(self.pg_ctl(&["start"]), "pg_ctl start");
        wait_for_port(self.port, true, "PostgreSQL", WAIT);
    }

    /// Stops it the way a crash would (no shutdown checkpoint): recovery replays the WAL.
    pub fn crash(&self) {
        assert!(self.pg_ctl(&["-m", "immediate", "stop"]), "pg_ctl stop");
        wait_for_port(self.port, false, "PostgreSQL", WAIT);
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

/// A private RabbitMQ node (its own node name, ports and directories), for the restart test.
pub struct PrivateRabbit {
    dir: tempfile::TempDir,
    pub port: u16,
    dist_port: u16,
    child: Option<Child>,
}

impl PrivateRabbit {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a directory");
        let port = free_port();
        std::fs::write(dir.path().join("plugins"), "[].").expect("write");
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .expect("write");
        std::fs::write(dir.path().join("env"), "").expect("write");
        give_to("rabbitmq", dir.path());
        let mut rabbit = Self { dir, port, dist_port: free_port(), child: None };
        rabbit.up();
        rabbit
    }

    pub fn up(&mut self) {
        let d = self.dir.path();
        let child = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", format!("parlor-test-{}@localhost", self.port))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("env"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d.join("feature_flags"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server starts (apt-get install rabbitmq-server)");
        self.child = Some(child);
        wait_for_port(self.port, true, "RabbitMQ", Duration::from_secs(60));
    }

    /// Stops the node (SIGTERM to the Erlang VM: queues and persistent messages stay on disk).
    pub fn down(&mut self, signal: &str) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pid")) {
            let _ = Command::new("kill").args([&format!("-{signal}"), pid.trim()]).status();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        wait_for_port(self.port, false, "RabbitMQ", WAIT);
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.down("KILL");
        }
    }
}
