//! The observability kit is kept true to the binary (Docker does not run here): every metric the
//! Grafana dashboard (`deploy/grafana/dashboards/parlor.json`) queries is one a real server
//! exports after real traffic; every observability service of `docker-compose.yml` is in the
//! `observability` profile; every file the compose file mounts from `./deploy` exists; and
//! Prometheus scrapes compose services that serve `/metrics` on the port it names.

mod common;

use common::{SmtpSink, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> serde_yaml::Value {
    let mut value: serde_yaml::Value =
        serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is YAML: {e}"));
    value.apply_merge().unwrap_or_else(|e| panic!("{path}: merge keys: {e}"));
    value
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/dashboards/parlor.json")).expect("the dashboard is JSON")
}

/// Every panel, those inside collapsed rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// The `parlor_*` names in a query.
fn metric_names(expr: &str) -> impl Iterator<Item = String> + '_ {
    expr.match_indices("parlor_").map(|(at, _)| {
        expr[at..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>()
    })
}

/// Every `parlor_*` name the dashboard's panels and variables query.
fn dashboard_metrics(dashboard: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            names.extend(metric_names(target["expr"].as_str().unwrap_or_default()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        names.extend(metric_names(variable["definition"].as_str().unwrap_or_default()));
    }
    names
}

/// The metric names `/metrics` has: those of its samples and of its `# TYPE` lines.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        };
        names.extend(name.filter(|n| !n.is_empty()).map(str::to_owned));
    }
    names
}

/// A name the dashboard queries is there as it is, or as a histogram's `_bucket`, `_sum` or
/// `_count` series.
fn missing(wanted: &BTreeSet<String>, exported: &BTreeSet<String>) -> Vec<String> {
    wanted
        .iter()
        .filter(|name| {
            !exported.contains(*name)
                && !["_bucket", "_sum", "_count"].iter().any(|s| exported.contains(&format!("{name}{s}")))
        })
        .cloned()
        .collect()
}

async fn scrape(app: &TestApp) -> String {
    let resp = reqwest::get(app.url("/metrics")).await.expect("metrics answer");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.expect("a body")
}

/// Scrapes until `check` passes, or fails after 20 s with its last complaint and the last scrape.
async fn scrape_until(app: &TestApp, check: impl Fn(&str) -> Result<(), String>) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(app).await;
        match check(&text) {
            Ok(()) => return text,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "{e}; /metrics:\n{text}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported_after_real_traffic() {
    let dashboard = dashboard();
    let wanted = dashboard_metrics(&dashboard);
    for name in [
        "parlor_connections_open",
        "parlor_messages_in_total",
        "parlor_messages_stored_total",
        "parlor_frames_out_total",
        "parlor_rejected_total",
        "parlor_fanout_size_bucket",
        "parlor_send_ack_seconds_bucket",
        "parlor_queue_depth",
        "parlor_queue_lag_seconds_bucket",
        "parlor_store_seconds_bucket",
        "parlor_batch_size_bucket",
        "parlor_store_apply_seconds_bucket",
        "parlor_rate_limited_total",
        "parlor_slow_consumers_total",
        "parlor_emails_sent_total",
        "parlor_emails_failed_total",
    ] {
        assert!(wanted.contains(name), "the dashboard has a panel on {name}: it queries {wanted:?}");
    }

    // The SMTP server is down when the first e-mail falls due, and comes up later: one failed try,
    // then a sent e-mail. Few auth calls are allowed, and socket queues are short.
    let mut sink = SmtpSink::reserved();
    let app = TestApp::spawn_with(&[
        ("--auth-rate", "1"),
        ("--auth-burst", "6"),
        ("--ws-outbound-buffer", "16"),
        ("--notify-after", "1s"),
        ("--notify-retry", "300ms"),
        ("--notify-lease", "2s"),
        ("--smtp-url", sink.url().as_str()),
    ])
    .await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;
    let carol = app.register("carol").await;
    let (status, me) = app
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&carol.token),
            Some(json!({"email": "carol@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");

    // Messages over the WebSocket: one stored and fanned out, one refused by review.
    let mut a = app.ws(&alice.token).await;
    let mut b = app.ws(&bob.token).await;
    a.send(json!({"type": "send", "room_id": room, "body": "hello everyone", "nonce": "o-1"})).await;
    a.next_of_type("ack").await;
    b.next_of_type("message.created").await;
    a.send(json!({"type": "send", "room_id": room, "body": "buy followers", "nonce": "o-2"})).await;
    a.next_of_type("error").await;

    // The reads the gateway serves from the store.
    assert_eq!(app.history(&bob, &room).await.len(), 1);
    let (status, found) = app.get("/api/v1/search?q=hello", &bob.token).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    app.my_rooms(&bob).await;

    // A direct message to Carol, who is offline and has an address: an e-mail falls due.
    let dm = app.dm(&alice, &carol).await;
    app.say(&alice, &dm, "are we still on for lunch").await;

    // A burst past the sockets' queues: Alice, who reads none of it, is closed as a slow consumer.
    let bodies: Vec<String> = (0..300).map(|i| format!("burst {i}")).collect();
    futures_util::future::join_all(bodies.iter().map(|body| app.say(&bob, &room, body))).await;
    let mut seen = 0;
    while let common::Got::Frame(_) = a.next().await {
        seen += 1;
        assert!(seen <= 400, "Alice was never closed as a slow consumer");
    }

    // Wrong passwords until the auth rate limit refuses one.
    let mut limited = false;
    for _ in 0..20 {
        let (status, _) = app.login("carol", "not her password").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "the auth rate limit refused a call");

    // The e-mail fails while the SMTP server is down, and is sent once it is up.
    scrape_until(&app, |t| match t.contains("parlor_emails_failed_total") {
        true => Ok(()),
        false => Err("no e-mail try failed".into()),
    })
    .await;
    sink.up();
    sink.wait_for(1).await;

    scrape_until(&app, |t| match missing(&wanted, &exported(t)) {
        gone if gone.is_empty() => Ok(()),
        gone => Err(format!("the dashboard queries metrics /metrics does not have: {gone:?}")),
    })
    .await;
}

#[test]
fn the_dashboards_panels_take_their_data_sources_from_its_variables() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "parlor");
    let variables: Vec<(&str, &str)> = dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter(|v| v["type"] == "datasource")
        .map(|v| (v["name"].as_str().unwrap_or_default(), v["query"].as_str().unwrap_or_default()))
        .collect();
    assert!(variables.contains(&("datasource", "prometheus")), "{variables:?}");
    assert!(variables.contains(&("loki", "loki")), "{variables:?}");
    let mut ids = BTreeSet::new();
    let mut logs = 0;
    for panel in panels(&dashboard) {
        assert!(ids.insert(panel["id"].as_i64().expect("a panel id")), "panel ids are unique");
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or_default();
        let source = panel["datasource"]["uid"].as_str().unwrap_or_default();
        assert!(source == "${datasource}" || source == "${loki}", "{title}: data source {source:?}");
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], source, "{title}: a target's data source");
            assert!(target["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}: an expression");
        }
        if panel["type"] == "logs" {
            assert_eq!(source, "${loki}", "{title}");
            logs += 1;
        }
        let quantile = panel["targets"].as_array().into_iter().flatten().any(|t| {
            t["expr"]
                .as_str()
                .is_some_and(|e| e.contains("histogram_quantile(0.99") && e.contains("send_ack"))
        });
        if title == "Send → ack latency" {
            assert!(quantile, "send to ack latency is shown as quantiles");
        }
    }
    assert_eq!(logs, 1, "one logs panel");

    let sources = yaml("deploy/grafana/provisioning/datasources/datasources.yml");
    let provisioned: Vec<(&str, &str)> = sources["datasources"]
        .as_sequence()
        .expect("datasources")
        .iter()
        .map(|d| (d["type"].as_str().unwrap_or_default(), d["url"].as_str().unwrap_or_default()))
        .collect();
    assert!(provisioned.contains(&("prometheus", "http://prometheus:9090")), "{provisioned:?}");
    assert!(provisioned.contains(&("loki", "http://loki:3100")), "{provisioned:?}");
    let providers = yaml("deploy/grafana/provisioning/dashboards/parlor.yml");
    assert_eq!(providers["providers"][0]["options"]["path"].as_str(), Some("/etc/grafana/dashboards"));
}

/// The bind-mount sources of a service (short and long syntax).
fn mount_sources(service: &serde_yaml::Value) -> Vec<String> {
    service["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| match v {
            serde_yaml::Value::String(short) => short.split(':').next().map(str::to_owned),
            long => long["source"].as_str().map(str::to_owned),
        })
        .collect()
}

#[test]
fn the_observability_profile_mounts_files_that_exist_and_scrapes_real_metrics_endpoints() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_mapping().expect("services");
    let name_of = |key: &serde_yaml::Value| key.as_str().unwrap_or_default().to_owned();
    let profiles = |service: &serde_yaml::Value| -> Vec<String> {
        service["profiles"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect()
    };

    // The observability services, and only they, are in the profile.
    for name in ["prometheus", "loki", "alloy", "grafana"] {
        let service = &compose["services"][name];
        assert!(service.is_mapping(), "the compose file has the {name} service");
        assert!(
            profiles(service).contains(&"observability".to_owned()),
            "{name} is in the observability profile"
        );
    }
    for (key, service) in services {
        let image = service["image"].as_str().unwrap_or_default();
        if image.starts_with("grafana/") || image.starts_with("prom/") {
            assert!(profiles(service).contains(&"observability".to_owned()), "{} ({image})", name_of(key));
        }
        if image.starts_with("parlor") {
            assert!(profiles(service).is_empty(), "{} runs without a profile", name_of(key));
        }
    }

    // Every file or directory mounted from ./deploy exists.
    let mut mounted = 0;
    for (key, service) in services {
        for source in mount_sources(service).into_iter().filter(|s| s.starts_with("./deploy")) {
            assert!(root().join(&source).exists(), "{} mounts {source}, which does not exist", name_of(key));
            mounted += 1;
        }
    }
    assert!(mounted >= 6, "nginx, Prometheus, Loki, Alloy and Grafana's files are mounted ({mounted})");

    // Prometheus scrapes compose services that run a role serving /metrics on the port it names;
    // every parlor role is scraped.
    let prometheus = yaml("deploy/prometheus.yml");
    let mut scraped = BTreeSet::new();
    for job in prometheus["scrape_configs"].as_sequence().expect("scrape_configs") {
        assert_eq!(job["metrics_path"].as_str().unwrap_or("/metrics"), "/metrics");
        for config in job["static_configs"].as_sequence().expect("static_configs") {
            for target in config["targets"].as_sequence().expect("targets") {
                let target = target.as_str().expect("host:port");
                let (host, port) = target.rsplit_once(':').expect("host:port");
                let service = &compose["services"][host];
                assert!(service.is_mapping(), "Prometheus scrapes {target}: {host} is a compose service");
                let command: Vec<&str> = service["command"]
                    .as_sequence()
                    .expect("a command")
                    .iter()
                    .filter_map(|w| w.as_str())
                    .collect();
                // The gateway and serve answer on --listen; the other roles on --metrics-listen.
                let flag = match command.first() {
                    Some(&"gateway" | &"serve") => "--listen",
                    Some(&"worker" | &"moderation" | &"users" | &"notifier") => "--metrics-listen",
                    other => panic!("{host} runs `parlor {other:?}`, which serves no /metrics"),
                };
                let listen = command.iter().position(|w| *w == flag).and_then(|i| command.get(i + 1));
                assert!(
                    listen.is_some_and(|l| l.ends_with(&format!(":{port}"))),
                    "{host} listens on {listen:?}, Prometheus scrapes port {port}"
                );
                scraped.insert(host.to_owned());
            }
        }
    }
    for (key, service) in services {
        let command = service["command"].as_sequence().and_then(|c| c.first()).and_then(|w| w.as_str());
        let role = matches!(command, Some("gateway" | "worker" | "moderation" | "users" | "notifier"));
        if service["image"].as_str().is_some_and(|i| i.starts_with("parlor")) && role {
            assert!(scraped.contains(&name_of(key)), "Prometheus scrapes {}", name_of(key));
        }
    }
}
