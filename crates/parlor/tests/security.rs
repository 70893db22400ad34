//! The protections of docs/security.md that no other file shows: security headers on every
//! answer, CORS denied by default, the `Origin` check of the WebSocket upgrade, brute-force
//! protection per account on login and recovery, and login timing that does not tell whether an
//! account exists.

mod common;

use common::{TestApp, WAIT, retry_after_secs};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().expect("an HTTP client")
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[track_caller]
fn assert_base_headers(resp: &reqwest::Response, what: &str) {
    assert_eq!(header(resp, "x-content-type-options"), Some("nosniff"), "{what}");
    assert_eq!(header(resp, "referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(header(resp, "x-frame-options"), Some("DENY"), "{what}");
    let csp = header(resp, "content-security-policy").unwrap_or_else(|| panic!("{what}: a CSP"));
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(header(resp, "strict-transport-security"), None, "{what}: no HSTS unless configured");
}

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_api_answers_are_never_stored() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let http = client();
    let login = json!({"username": "alice", "password": alice.password});
    let requests = [
        ("login", http.post(app.url("/api/v1/auth/login")).json(&login)),
        ("an API answer", http.get(app.url("/api/v1/users/me")).bearer_auth(&alice.token)),
        ("a 401", http.get(app.url("/api/v1/users/me"))),
        (
            "a 400",
            http.post(app.url("/api/v1/auth/login")).body("{").header("content-type", "application/json"),
        ),
        ("a 404 of an API route", http.get(app.url("/api/v1/no-such-route"))),
        ("the OpenAPI document", http.get(app.url("/api/v1/openapi.json"))),
        ("a plain upgrade-less GET of the WebSocket", http.get(app.url("/api/v1/ws"))),
    ];
    for (what, req) in requests {
        let resp = req.send().await.expect("answered");

        assert_base_headers(&resp, what);
        assert_eq!(
            header(&resp, "content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'"),
            "{what}"
        );
        assert_eq!(header(&resp, "cache-control"), Some("no-store"), "{what}");
    }
    for (what, path) in
        [("health", "/healthz"), ("an unknown path", "/nothing-here"), ("metrics", "/metrics")]
    {
        let resp = http.get(app.url(path)).send().await.expect("answered");

        assert_base_headers(&resp, what);
        assert_eq!(
            header(&resp, "content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
    }
}

#[tokio::test]
async fn the_web_client_and_the_docs_page_keep_policies_that_let_them_run() {
    let app = TestApp::spawn().await;
    let http = client();

    let page = http.get(app.url("/")).send().await.expect("answered");
    assert_base_headers(&page, "the web client");
    let csp = header(&page, "content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "the client's own: {csp}"
    );
    assert_eq!(header(&page, "cache-control"), Some("no-cache"), "the client's files revalidate");

    for path in ["/api/docs/", "/api/docs/swagger-ui-bundle.js"] {
        let docs = http.get(app.url(path)).send().await.expect("answered");
        assert_eq!(docs.status(), StatusCode::OK, "{path}");
        assert_base_headers(&docs, path);
        let csp = header(&docs, "content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"), "{path}: {csp}");
    }
}

#[tokio::test]
async fn hsts_is_sent_only_when_configured() {
    let app = TestApp::spawn_with(&[("--hsts-max-age", "365d")]).await;

    let resp = client().get(app.url("/healthz")).send().await.expect("answered");

    assert_eq!(header(&resp, "strict-transport-security"), Some("max-age=31536000"));
}

// ---------------------------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------------------------

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    client()
        .request(Method::OPTIONS, app.url("/api/v1/auth/login"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,authorization")
        .send()
        .await
        .expect("answered")
}

#[tokio::test]
async fn cors_is_denied_by_default() {
    let app = TestApp::spawn().await;

    let pre = preflight(&app, "https://evil.example").await;
    let simple = client()
        .get(app.url("/healthz"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("answered");

    assert_eq!(header(&pre, "access-control-allow-origin"), None, "no preflight grant");
    assert_eq!(header(&simple, "access-control-allow-origin"), None, "no grant on a plain request");
}

#[tokio::test]
async fn cors_allows_exactly_the_configured_origins() {
    let app = TestApp::spawn_with(&[("--cors-origins", "https://app.example,https://admin.example")]).await;

    let listed = preflight(&app, "https://app.example").await;
    let other = preflight(&app, "https://evil.example").await;

    assert_eq!(header(&listed, "access-control-allow-origin"), Some("https://app.example"));
    let methods = header(&listed, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    assert_eq!(header(&other, "access-control-allow-origin"), None);
}

// ---------------------------------------------------------------------------------------------
// WebSocket origin
// ---------------------------------------------------------------------------------------------

/// Opens a WebSocket with an `Origin` header: Ok once `ready` comes, or the `error` frame and the
/// close code the socket got instead.
async fn ws_from(app: &TestApp, origin: &str, token: &str) -> Result<(), (Value, Option<u16>)> {
    let mut req = format!("ws://{}/api/v1/ws", app.addr).into_client_request().expect("request");
    req.headers_mut().insert("origin", origin.parse().expect("header"));
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    let (stream, _) = tokio_tungstenite::connect_async(req).await.expect("the upgrade always succeeds");
    let mut ws = common::WsClient { stream, ready: Value::Null };
    let first = ws.next_json().await;
    if first["type"] == "ready" {
        return Ok(());
    }
    Err((first, ws.closed().await))
}

#[tokio::test]
async fn a_browser_socket_from_a_foreign_origin_gets_forbidden_and_a_1008_close() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let (frame, code) = ws_from(&app, origin, &alice.token).await.expect_err("refused");

        assert_eq!(
            (frame["type"].as_str(), frame["code"].as_str()),
            (Some("error"), Some("forbidden")),
            "{origin}: {frame}"
        );
        assert_eq!(code, Some(1008), "{origin}");
    }
}

#[tokio::test]
async fn a_websocket_upgrade_from_the_same_origin_a_listed_one_or_without_origin_is_allowed() {
    let app = TestApp::spawn_with(&[("--cors-origins", "https://app.example")]).await;
    let alice = app.register("alice").await;

    let same = ws_from(&app, &format!("http://{}", app.addr), &alice.token).await;
    let listed = ws_from(&app, "https://app.example", &alice.token).await;
    let native = app.ws(&alice.token).await;

    assert_eq!(same, Ok(()), "the web client's own origin");
    assert_eq!(listed, Ok(()), "an origin of --cors-origins");
    assert_eq!(native.ready["type"], "ready", "a client that sends no Origin");
}

// ---------------------------------------------------------------------------------------------
// Brute force per account
// ---------------------------------------------------------------------------------------------

/// Logs in; returns the status, the body and the `Retry-After` header if any.
async fn login(app: &TestApp, username: &str, password: &str) -> (StatusCode, Value, Option<u64>) {
    let resp = client()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("answered");
    let status = resp.status();
    let retry = (status == StatusCode::TOO_MANY_REQUESTS).then(|| retry_after_secs(&resp));
    (status, resp.json().await.unwrap_or(Value::Null), retry)
}

#[tokio::test]
async fn wrong_passwords_past_the_limit_lock_that_account_for_a_bounded_time_known_or_not() {
    let app = TestApp::spawn_with(&[("--auth-failures", "3"), ("--auth-failure-window", "6s")]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    let mut answers = Vec::new();
    for name in ["alice", "nobody"] {
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(login(&app, name, "wrong-password").await.0);
        }
        let (status, body, retry) = login(&app, name, &alice.password).await;
        seen.push(status);
        assert_eq!(body["error"]["code"], "rate_limited", "{name}: {body}");
        let ms =
            body["error"]["retry_after_ms"].as_u64().unwrap_or_else(|| panic!("retry_after_ms in {body}"));
        assert!(ms <= 2000, "at most window / failures: {ms} ms");
        assert!(matches!(retry, Some(1 | 2)), "Retry-After {retry:?}");
        answers.push((seen, ms));
    }
    let want = vec![
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
        StatusCode::TOO_MANY_REQUESTS,
    ];
    assert_eq!(answers[0].0, want, "a known account");
    assert_eq!(answers[1].0, want, "an unknown name answers alike");
    assert_eq!(login(&app, "ALICE", &alice.password).await.0, StatusCode::TOO_MANY_REQUESTS, "any case");
    assert_eq!(login(&app, "bob", &bob.password).await.0, StatusCode::OK, "other accounts are not locked");

    tokio::time::sleep(Duration::from_millis(answers[0].1 + 50)).await;
    assert_eq!(login(&app, "alice", &alice.password).await.0, StatusCode::OK, "after the wait");
    for _ in 0..2 {
        assert_eq!(
            login(&app, "alice", "wrong-password").await.0,
            StatusCode::UNAUTHORIZED,
            "a success reset the count"
        );
    }
    assert_eq!(login(&app, "alice", &alice.password).await.0, StatusCode::OK);
}

#[tokio::test]
async fn wrong_recovery_phrases_past_the_limit_are_429_for_that_account() {
    let app = TestApp::spawn_with(&[("--auth-failures", "2"), ("--auth-failure-window", "1h")]).await;
    let alice = app.register("alice").await;
    let other = app.register("carol").await;
    let recover = |phrase: String| {
        app.call(
            Method::POST,
            "/api/v1/auth/recover",
            None,
            Some(json!({"username": "alice", "recovery_phrase": phrase, "new_password": "a-new-password"})),
        )
    };

    let first = recover(other.phrase.clone()).await;
    let second = recover("not a phrase".into()).await;
    let right = recover(alice.phrase.clone()).await;

    assert_eq!(first.0, StatusCode::UNAUTHORIZED, "{}", first.1);
    assert_eq!(second.0, StatusCode::UNAUTHORIZED, "{}", second.1);
    common::assert_error(right, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(login(&app, "alice", &alice.password).await.0, StatusCode::OK, "login is counted apart");
}

// ---------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------

async fn timed_login(app: &TestApp, username: &str) -> Duration {
    let started = Instant::now();
    let (status, _, _) = login(app, username, "wrong-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    started.elapsed()
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

#[tokio::test]
async fn refusing_an_unknown_user_takes_as_long_as_refusing_a_wrong_password() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());

    for _ in 0..9 {
        known.push(timed_login(&app, "alice").await);
        unknown.push(timed_login(&app, "nobody-at-all").await);
    }

    // Both run one Argon2 verification (the unknown name against a decoy hash): without it the
    // unknown name would be refused in a small fraction of the time.
    let (k, u) = (median(known), median(unknown));
    assert!(u * 2 >= k, "unknown {u:?} vs wrong password {k:?}");
    assert!(k * 2 >= u, "unknown {u:?} vs wrong password {k:?}");
}

// ---------------------------------------------------------------------------------------------
// Data at rest
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_password_phrase_or_refresh_token_is_stored_in_the_clear_and_the_key_file_is_private() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    app.login_ok("alice", &alice.password).await;

    let mut stored = Vec::new();
    for entry in std::fs::read_dir(app.data_dir()).expect("the data dir") {
        let path = entry.expect("an entry").path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("parlor.db")) {
            stored.extend(std::fs::read(&path).expect("a database file"));
        }
    }
    let stored = String::from_utf8_lossy(&stored);

    assert!(stored.contains("$argon2id$"), "passwords and phrases are Argon2id hashes");
    for (what, secret) in
        [("password", &alice.password), ("recovery phrase", &alice.phrase), ("refresh token", &alice.refresh)]
    {
        assert!(!stored.contains(secret.as_str()), "the {what} is not in the database");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(app.data_dir().join("jwt-secret")).expect("the key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the generated signing key is readable by its owner only");
    }
}

#[tokio::test]
async fn wrong_current_passwords_count_as_failed_logins_of_the_account() {
    let app = TestApp::spawn_with(&[("--auth-failures", "3"), ("--auth-failure-window", "1h")]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let change = |token: String, current: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/api/v1/users/me/password",
                Some(&token),
                Some(json!({"current_password": current, "new_password": "a-brand-new-password"})),
            )
            .await
        }
    };

    for _ in 0..3 {
        let (status, body) = change(alice.token.clone(), "wrong-password".into()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // Past the limit even the right password is refused, and so is a login of the account.
    let right = change(alice.token.clone(), alice.password.clone()).await;
    common::assert_error(right, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(
        login(&app, "alice", &alice.password).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "shared with login"
    );
    // Other accounts are not locked.
    let (status, _) = change(bob.token.clone(), bob.password.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "bob changes his");
}
