//! Accounts, sessions and users: register, login, refresh, logout, recover, password change,
//! session management, access-token checks, profiles, presence, search and the auth rate limit.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestApp, WAIT, retry_after_secs};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The signing key the token tests give the server.
const SECRET: &str = "test-secret-0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The `error.code` of an error body.
fn code_of(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// Asserts an error answer: its status, its code, and that it has a human message.
fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str, what: &str) {
    assert_eq!(status, want, "{what}: {body}");
    assert_eq!(code_of(body), code, "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: the error has a message: {body}");
}

/// Asserts a 401 `unauthorized`.
fn assert_unauthorized(status: StatusCode, body: &Value, what: &str) {
    assert_error(status, body, StatusCode::UNAUTHORIZED, "unauthorized", what);
}

async fn register_body(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/auth/register", None, Some(body)).await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": refresh_token}))).await
}

async fn logout(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/auth/logout", Some(token), None).await
}

async fn me(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.get("/api/v1/users/me", token).await
}

/// Asserts that an access token is accepted.
async fn assert_token_works(app: &TestApp, token: &str, what: &str) {
    let (status, body) = me(app, token).await;
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
}

/// Asserts that an access token is refused with 401 `unauthorized`.
async fn assert_token_refused(app: &TestApp, token: &str, what: &str) {
    let (status, body) = me(app, token).await;
    assert_unauthorized(status, &body, what);
}

/// Asserts that a refresh token is refused with 401 `unauthorized`.
async fn assert_refresh_refused(app: &TestApp, refresh_token: &str, what: &str) {
    let (status, body) = refresh(app, refresh_token).await;
    assert_unauthorized(status, &body, what);
}

/// The claims of a JWT, read without checking it.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("the payload is base64url");
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}

/// The session id an access token names.
fn session_of(token: &str) -> String {
    claims(token)["sid"].as_str().expect("the token names its session (sid)").to_owned()
}

fn now_secs() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970");
    i64::try_from(since.as_secs()).expect("seconds fit in i64")
}

/// A HS256 token with the claims of `like` but the given expiry, signed with `secret`.
fn sign(like: &str, exp: i64, secret: &[u8]) -> String {
    let mut c = claims(like);
    c["iat"] = json!(exp.min(now_secs()) - 60);
    c["exp"] = json!(exp);
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &EncodingKey::from_secret(secret))
        .expect("a token is signed")
}

/// A token with the claims of `like`, a header of `alg: none` and no signature.
fn unsigned(like: &str) -> String {
    let mut c = claims(like);
    c["exp"] = json!(now_secs() + 3600);
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(c.to_string());
    format!("{header}.{payload}.")
}

/// Asserts a token pair: two non-empty strings and a positive `expires_in`.
fn assert_token_pair(body: &Value, what: &str) {
    let access = body["access_token"].as_str().unwrap_or_default();
    let refresh = body["refresh_token"].as_str().unwrap_or_default();
    assert!(!access.is_empty(), "{what}: an access token: {body}");
    assert_eq!(access.split('.').count(), 3, "{what}: the access token is a JWT: {body}");
    assert!(!refresh.is_empty(), "{what}: a refresh token: {body}");
    assert!(body["expires_in"].as_u64().unwrap_or(0) > 0, "{what}: a positive expires_in: {body}");
}

/// Asserts a 12-word recovery phrase of lower-case words.
fn assert_phrase(phrase: &str) {
    let words: Vec<&str> = phrase.split(' ').collect();
    assert_eq!(words.len(), 12, "a 12-word phrase: {phrase:?}");
    assert!(
        words.iter().all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase())),
        "BIP-39 English words: {phrase:?}"
    );
}

/// Asserts an RFC 3339 UTC timestamp as the contract writes it.
fn assert_timestamp(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_default();
    assert!(
        s.len() >= 20 && s.ends_with('Z') && s.as_bytes().get(10) == Some(&b'T'),
        "{what}: an RFC 3339 UTC timestamp, got {v}"
    );
}

/// The error frames and close of a socket whose session ended: it closes with 4001.
async fn assert_ws_closed_unauthorized(ws: &mut common::WsClient, what: &str) {
    assert_eq!(ws.closed().await, Some(4001), "{what}: the WebSocket closes with 4001");
}

/// Asserts a socket is still open and served: a ping gets a pong.
async fn assert_ws_alive(ws: &mut common::WsClient, what: &str) {
    ws.send(json!({"type": "ping"})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "{what}: no pong in time");
        match ws.next().await {
            common::Got::Frame(v) if v["type"] == "pong" => return,
            common::Got::Frame(_) => {}
            common::Got::Closed(code) => panic!("{what}: the socket closed with {code:?}"),
        }
    }
}

/// The usernames of a user search answer.
fn usernames(body: &Value) -> Vec<&str> {
    body["users"].as_array().expect("a users array").iter().filter_map(|u| u["username"].as_str()).collect()
}

/// Polls a user's presence until it has the wanted status; returns the presence.
async fn wait_presence(app: &TestApp, viewer: &str, user_id: &str, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = app.get(&format!("/api/v1/users/{user_id}"), viewer).await;
        assert_eq!(status, StatusCode::OK, "get user: {body}");
        if body["presence"]["status"] == want {
            return body["presence"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "presence never became {want}: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The next `presence` event about a user on a socket.
async fn next_presence(ws: &mut common::WsClient, user_id: &str) -> Value {
    loop {
        let event = ws.next_of_type("presence").await;
        if event["user_id"] == user_id {
            return event;
        }
    }
}

/// Asserts that no `offline` presence of a user arrives within `wait`.
async fn assert_no_offline(ws: &mut common::WsClient, user_id: &str, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(got) = tokio::time::timeout_at(deadline, ws.next()).await {
        match got {
            common::Got::Frame(v) => assert!(
                !(v["type"] == "presence" && v["user_id"] == user_id && v["status"] == "offline"),
                "still connected, yet announced offline: {v}"
            ),
            common::Got::Closed(code) => panic!("the watcher closed with {code:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Register
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn registering_answers_201_with_the_own_user_a_token_pair_and_a_12_word_phrase() {
    let app = TestApp::spawn().await;

    let (status, body) = register_body(
        &app,
        json!({"username": "Alice", "password": "correct horse", "display_name": "Alice A.",
               "email": "alice@example.com"}),
    )
    .await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = &body["user"];
    assert!(user["id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
    assert_eq!(user["username"], "Alice");
    assert_eq!(user["display_name"], "Alice A.");
    assert_eq!(user["email"], "alice@example.com", "the own view has the e-mail: {body}");
    assert_timestamp(&user["created_at"], "created_at");
    assert_token_pair(&body, "register");
    assert_eq!(body["expires_in"], 900, "access tokens last 15 minutes by default: {body}");
    assert_phrase(body["recovery_phrase"].as_str().expect("a recovery phrase"));
    let token = body["access_token"].as_str().expect("access token");
    let (status, own) = me(&app, token).await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["id"], user["id"]);
}

#[tokio::test]
async fn registering_without_a_display_name_or_email_uses_the_username_and_no_email() {
    let app = TestApp::spawn().await;

    let (status, body) = register_body(&app, json!({"username": "bob", "password": "12345678"})).await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["display_name"], "bob");
    assert!(body["user"].get("email").is_some(), "the own view has an email key: {body}");
    assert_eq!(body["user"]["email"], Value::Null);
}

#[tokio::test]
async fn registering_a_taken_username_in_any_case_is_409_conflict() {
    let app = TestApp::spawn().await;
    app.register("alice").await;

    for name in ["alice", "ALICE", "aLiCe"] {
        let (status, body) = register_body(&app, json!({"username": name, "password": "another-pass"})).await;

        assert_error(status, &body, StatusCode::CONFLICT, "conflict", &format!("register {name}"));
    }
}

#[tokio::test]
async fn registering_at_the_edges_of_the_limits_succeeds() {
    let app = TestApp::spawn().await;
    let cases = [
        json!({"username": "abc", "password": "12345678"}),
        json!({"username": "a".repeat(32), "password": "p".repeat(128)}),
        json!({"username": "A.b-c_9", "password": "12345678", "display_name": "d".repeat(64)}),
        json!({"username": "dee", "password": "12345678", "display_name": "x"}),
        // 128 characters, 256 bytes.
        json!({"username": "eve", "password": "é".repeat(128), "display_name": "é".repeat(64)}),
    ];

    for body in cases {
        let (status, answer) = register_body(&app, body.clone()).await;

        assert_eq!(status, StatusCode::CREATED, "{body}: {answer}");
    }
}

#[tokio::test]
async fn registering_with_a_broken_rule_is_422_validation_failed_naming_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        ("username", json!({"username": "ab", "password": "12345678"})),
        ("username", json!({"username": "a".repeat(33), "password": "12345678"})),
        ("username", json!({"username": "has space", "password": "12345678"})),
        ("username", json!({"username": "ålice", "password": "12345678"})),
        ("username", json!({"username": "slash/name", "password": "12345678"})),
        ("username", json!({"username": "", "password": "12345678"})),
        ("password", json!({"username": "carol", "password": "1234567"})),
        ("password", json!({"username": "carol", "password": "p".repeat(129)})),
        ("password", json!({"username": "carol", "password": ""})),
        // Seven characters, fourteen bytes: lengths count characters.
        ("password", json!({"username": "carol", "password": "é".repeat(7)})),
        ("display_name", json!({"username": "carol", "password": "12345678", "display_name": ""})),
        ("display_name", json!({"username": "carol", "password": "12345678", "display_name": "   "})),
        (
            "display_name",
            json!({"username": "carol", "password": "12345678", "display_name": "d".repeat(65)}),
        ),
        ("email", json!({"username": "carol", "password": "12345678", "email": "not-an-email"})),
        ("email", json!({"username": "carol", "password": "12345678", "email": "a@b"})),
    ];

    for (field, body) in cases {
        let (status, answer) = register_body(&app, body.clone()).await;

        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            &body.to_string(),
        );
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    // Nothing was created: the name is still free.
    let (status, answer) = register_body(&app, json!({"username": "carol", "password": "12345678"})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

#[tokio::test]
async fn registering_with_malformed_json_wrong_types_or_missing_fields_is_400_invalid_request() {
    let app = TestApp::spawn().await;
    let raw_bodies =
        ["{not json", "{\"username\": \"dave\", \"password\": ", "[1, 2, 3]", "\"a string\"", "null"];

    for raw in raw_bodies {
        let resp = app.raw(Method::POST, "/api/v1/auth/register", None, raw).await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("a JSON error body");

        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request", raw);
    }
    let bodies = [
        json!({"username": 123, "password": "12345678"}),
        json!({"username": "dave", "password": ["1234", "5678"]}),
        json!({"username": "dave", "password": "12345678", "display_name": 7}),
        json!({"username": "dave", "password": "12345678", "email": false}),
        json!({"username": "dave"}),
        json!({"password": "12345678"}),
        json!({}),
    ];
    for body in bodies {
        let (status, answer) = register_body(&app, body.clone()).await;

        assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_request", &body.to_string());
    }
}

#[tokio::test]
async fn a_body_that_is_empty_or_not_a_json_object_is_400_on_every_route_and_names_no_internal_type() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "bodies", "public").await;
    let routes = [
        (Method::PATCH, "/api/v1/users/me".to_owned()),
        (Method::POST, "/api/v1/users/me/password".to_owned()),
        (Method::POST, "/api/v1/rooms".to_owned()),
        (Method::PATCH, format!("/api/v1/rooms/{room}")),
        (Method::POST, format!("/api/v1/rooms/{room}/messages")),
        (Method::POST, "/api/v1/auth/login".to_owned()),
    ];
    let raw_bodies = ["", "  ", "[1, 2, 3]", "[\"a\", \"b\", \"c\"]", "null", "\"a string\"", "7"];

    for (method, path) in &routes {
        for raw in raw_bodies {
            let what = format!("{method} {path} with {raw:?}");
            let resp = app.raw(method.clone(), path, Some(&alice.token), raw).await;
            let status = resp.status();
            let body: Value = resp.json().await.expect("a JSON error body");

            assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request", &what);
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(!message.contains("struct") && !message.contains("Body"), "{what}: {message}");
            assert!(!message.contains("PatchMe"), "{what}: {message}");
        }
    }
    let (status, me) = app.get("/api/v1/users/me", &alice.token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["display_name"], "alice", "no empty PATCH changed the profile: {me}");
}

#[tokio::test]
async fn a_nested_value_of_the_wrong_shape_is_400_and_names_no_internal_type() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let resp = app
        .raw(Method::PATCH, "/api/v1/users/me", Some(&alice.token), r#"{"display_name": ["a", "b"]}"#)
        .await;
    let status = resp.status();
    let body: Value = resp.json().await.expect("a JSON error body");

    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request", "a list for a name");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("struct") && !message.contains("PatchMe"), "{message}");
}

#[tokio::test]
async fn registering_with_a_body_over_64_kib_is_413_payload_too_large() {
    let app = TestApp::spawn().await;
    let body = json!({"username": "erin", "password": "12345678", "display_name": "x".repeat(70 * 1024)});

    let resp = app.raw(Method::POST, "/api/v1/auth/register", None, body.to_string()).await;

    let status = resp.status();
    let answer: Value = resp.json().await.expect("a JSON error body");
    assert_error(status, &answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "70 KiB body");
    let (status, answer) = app.login("erin", "12345678").await;
    assert_unauthorized(status, &answer, "the oversized registration created nothing");
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_accepted_and_one_byte_more_is_413() {
    let app = TestApp::spawn().await;
    let padded = |username: &str, size: usize| {
        let json = json!({"username": username, "password": "12345678"}).to_string();
        // JSON allows whitespace between tokens: pad before the closing brace.
        let mut body = json[..json.len() - 1].to_owned();
        body.push_str(&" ".repeat(size - json.len()));
        body.push('}');
        assert_eq!(body.len(), size);
        body
    };

    let resp = app.raw(Method::POST, "/api/v1/auth/register", None, padded("fits", 64 * 1024)).await;
    let over = app.raw(Method::POST, "/api/v1/auth/register", None, padded("over", 64 * 1024 + 1)).await;

    assert_eq!(resp.status(), StatusCode::CREATED, "a 64 KiB body is within the limit");
    let status = over.status();
    let body: Value = over.json().await.expect("a JSON error body");
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "64 KiB + 1");
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_in_different_cases_give_one_201_and_the_rest_409() {
    let app = TestApp::spawn().await;
    let names = ["frank", "FRANK", "Frank", "fRANK", "franK", "FrAnK"];

    let answers = futures_util::future::join_all(
        names.iter().map(|n| register_body(&app, json!({"username": n, "password": "12345678"}))),
    )
    .await;

    let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_error(*status, body, StatusCode::CONFLICT, "conflict", "a concurrent duplicate");
    }
}

#[tokio::test]
async fn login_refresh_and_recover_with_missing_fields_are_400() {
    let app = TestApp::spawn().await;
    let cases = [
        ("/api/v1/auth/login", json!({"username": "alice"})),
        ("/api/v1/auth/login", json!({"username": "alice", "password": 12345678})),
        ("/api/v1/auth/refresh", json!({})),
        ("/api/v1/auth/refresh", json!({"refresh_token": null})),
        ("/api/v1/auth/recover", json!({"username": "alice", "new_password": "12345678"})),
    ];

    for (path, body) in cases {
        let (status, answer) = app.call(Method::POST, path, None, Some(body.clone())).await;

        assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_request", &format!("{path} {body}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn logging_in_with_the_right_password_answers_200_with_the_user_and_a_new_session() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let (status, body) = app.login("alice", &alice.password).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["id"], alice.id.as_str());
    assert_eq!(body["user"]["username"], "alice");
    assert_token_pair(&body, "login");
    let token = body["access_token"].as_str().expect("access token");
    assert_ne!(session_of(token), session_of(&alice.token), "login starts a new session");
    assert_token_works(&app, token, "the login's access token").await;
    assert_token_works(&app, &alice.token, "the registration's session goes on").await;
}

#[tokio::test]
async fn logging_in_as_an_unknown_user_or_with_a_wrong_password_is_the_same_401() {
    let app = TestApp::spawn().await;
    app.register("alice").await;

    let (unknown_status, unknown) = app.login("nobody", "password-alice").await;
    let (wrong_status, wrong) = app.login("alice", "not-the-password").await;

    assert_unauthorized(unknown_status, &unknown, "unknown user");
    assert_unauthorized(wrong_status, &wrong, "wrong password");
    assert_eq!(unknown, wrong, "the two refusals cannot be told apart");
}

// ---------------------------------------------------------------------------------------------
// Refresh
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refreshing_gives_a_new_working_pair_and_the_old_refresh_token_is_refused() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let (status, pair) = refresh(&app, &alice.refresh).await;

    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_token_pair(&pair, "refresh");
    let access = pair["access_token"].as_str().expect("access token");
    let new_refresh = pair["refresh_token"].as_str().expect("refresh token");
    assert_ne!(new_refresh, alice.refresh, "the refresh token rotates");
    assert_eq!(session_of(access), session_of(&alice.token), "the same session goes on");
    assert_token_works(&app, access, "the new access token").await;
    assert_refresh_refused(&app, &alice.refresh, "the rotated refresh token").await;
}

#[tokio::test]
async fn refreshing_with_an_unknown_token_is_401() {
    let app = TestApp::spawn().await;

    let (status, body) = refresh(&app, "not-a-refresh-token").await;

    assert_unauthorized(status, &body, "unknown refresh token");
}

#[tokio::test]
async fn presenting_a_rotated_refresh_token_again_revokes_the_whole_session() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (other_access, other_refresh) = app.login_ok("alice", &alice.password).await;
    let (status, first) = refresh(&app, &alice.refresh).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = refresh(&app, first["refresh_token"].as_str().expect("refresh token")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let newest_access = second["access_token"].as_str().expect("access token");
    let newest_refresh = second["refresh_token"].as_str().expect("refresh token");
    assert_token_works(&app, newest_access, "before the theft").await;
    let mut ws = app.ws(newest_access).await;

    // A thief replays the first, already rotated, refresh token.
    let (status, body) = refresh(&app, &alice.refresh).await;

    assert_unauthorized(status, &body, "a replayed refresh token");
    assert_ws_closed_unauthorized(&mut ws, "the revoked session's socket").await;
    assert_refresh_refused(&app, newest_refresh, "the newest refresh token of the session").await;
    assert_token_refused(&app, newest_access, "the newest access token of the session").await;
    assert_token_refused(&app, &alice.token, "the first access token of the session").await;
    // The user's other session is untouched.
    assert_token_works(&app, &other_access, "another session").await;
    let (status, body) = refresh(&app, &other_refresh).await;
    assert_eq!(status, StatusCode::OK, "another session refreshes: {body}");
}

#[tokio::test]
async fn an_expired_refresh_token_is_401() {
    let app = TestApp::spawn_with(&[("--refresh-token-ttl", "1s")]).await;
    let alice = app.register("alice").await;

    // The refresh token lives one second; wait that out once (a retry would rotate it).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = refresh(&app, &alice.refresh).await;

    assert_unauthorized(status, &body, "an expired refresh token");
}

#[tokio::test]
async fn tokens_survive_a_restart_of_the_server() {
    let mut app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    app.kill_and_restart().await;

    assert_token_works(&app, &alice.token, "an access token after a restart").await;
    let (status, pair) = refresh(&app, &alice.refresh).await;
    assert_eq!(status, StatusCode::OK, "a refresh token after a restart: {pair}");
    app.login_ok("alice", &alice.password).await;
}

// ---------------------------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn logging_out_ends_the_session_its_tokens_and_its_websockets() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (other_access, _) = app.login_ok("alice", &alice.password).await;
    let (status, pair) = refresh(&app, &alice.refresh).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let (access, refresh_token) = (
        pair["access_token"].as_str().expect("access token"),
        pair["refresh_token"].as_str().expect("refresh token"),
    );
    let mut ws = app.ws(&alice.token).await;
    let mut other_ws = app.ws(&other_access).await;

    let (status, body) = logout(&app, access).await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null, "204 has no body");
    assert_ws_closed_unauthorized(&mut ws, "the logged-out session's socket").await;
    assert_token_refused(&app, access, "the access token after logout").await;
    assert_token_refused(&app, &alice.token, "an earlier access token of the session").await;
    assert_refresh_refused(&app, refresh_token, "the refresh token after logout").await;
    let (status, body) = logout(&app, access).await;
    assert_unauthorized(status, &body, "logging out twice");
    assert_token_works(&app, &other_access, "another session").await;
    assert_ws_alive(&mut other_ws, "another session's socket").await;
}

#[tokio::test]
async fn logging_out_without_a_token_is_401() {
    let app = TestApp::spawn().await;

    let (status, body) = app.call(Method::POST, "/api/v1/auth/logout", None, None).await;

    assert_unauthorized(status, &body, "logout without a token");
}

#[tokio::test]
async fn a_websocket_authenticating_with_a_logged_out_token_gets_unauthorized_and_4001() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (status, body) = logout(&app, &alice.token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let mut ws = app.ws_raw().await;

    ws.send(json!({"type": "auth", "token": alice.token})).await;

    let error = ws.next_json().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "unauthorized", "{error}");
    assert_eq!(ws.closed().await, Some(4001));
}

// ---------------------------------------------------------------------------------------------
// Access tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_an_access_token_is_401() {
    let app = TestApp::spawn().await;

    for path in ["/api/v1/users/me", "/api/v1/auth/sessions", "/api/v1/users?q=a"] {
        let (status, body) = app.call(Method::GET, path, None, None).await;

        assert_unauthorized(status, &body, path);
    }
}

#[tokio::test]
async fn a_malformed_access_token_or_authorization_header_is_401() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let client = reqwest::Client::builder().timeout(WAIT).build().expect("an HTTP client");
    let headers = [
        "Bearer not-a-jwt".to_owned(),
        "Bearer a.b.c".to_owned(),
        "Bearer ".to_owned(),
        "Bearer".to_owned(),
        format!("Basic {}", alice.token),
        alice.token.clone(),
        format!("Bearer {}x", alice.token),
        format!("Bearer {}", &alice.token[..alice.token.len() - 4]),
    ];

    for header in headers {
        let resp = client
            .get(app.url("/api/v1/users/me"))
            .header("authorization", &header)
            .send()
            .await
            .expect("an answer");
        let status = resp.status();
        let body: Value = resp.json().await.expect("a JSON error body");

        assert_unauthorized(status, &body, &format!("Authorization: {header}"));
    }
}

#[tokio::test]
async fn a_token_signed_with_the_servers_secret_works_until_its_expiry() {
    let app = TestApp::spawn_with(&[("--jwt-secret", SECRET)]).await;
    let alice = app.register("alice").await;
    let fresh = sign(&alice.token, now_secs() + 600, SECRET.as_bytes());
    assert_token_works(&app, &fresh, "a self-signed token with the server's key (control)").await;

    let expired = sign(&alice.token, now_secs() - 30, SECRET.as_bytes());

    assert_token_refused(&app, &expired, "an expired access token").await;
}

#[tokio::test]
async fn an_access_token_expires_after_its_ttl_and_refresh_gives_a_working_one() {
    let app = TestApp::spawn_with(&[("--access-token-ttl", "1s")]).await;
    let (status, body) = register_body(&app, json!({"username": "alice", "password": "12345678"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["expires_in"], 1, "expires_in follows the TTL: {body}");
    let token = body["access_token"].as_str().expect("access token");

    let deadline = tokio::time::Instant::now() + WAIT;
    let (status, answer) = loop {
        let (status, answer) = me(&app, token).await;
        if status != StatusCode::OK || tokio::time::Instant::now() >= deadline {
            break (status, answer);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_unauthorized(status, &answer, "an expired access token");
    let (status, pair) = refresh(&app, body["refresh_token"].as_str().expect("refresh token")).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_token_works(&app, pair["access_token"].as_str().expect("access token"), "the refreshed token")
        .await;
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_401() {
    let app = TestApp::spawn_with(&[("--jwt-secret", SECRET)]).await;
    let alice = app.register("alice").await;

    let forged = sign(&alice.token, now_secs() + 600, b"another-secret-0123456789abcdef");

    assert_token_refused(&app, &forged, "a token signed with another key").await;
}

#[tokio::test]
async fn an_unsigned_token_with_alg_none_is_401() {
    let app = TestApp::spawn_with(&[("--jwt-secret", SECRET)]).await;
    let alice = app.register("alice").await;

    let token = unsigned(&alice.token);

    assert_token_refused(&app, &token, "alg none").await;
    let with_old_signature = format!("{token}{}", alice.token.rsplit('.').next().expect("a signature"));
    assert_token_refused(&app, &with_old_signature, "alg none with a borrowed signature").await;
}

#[tokio::test]
async fn a_token_whose_session_belongs_to_another_user_is_401() {
    let app = TestApp::spawn_with(&[("--jwt-secret", SECRET)]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut c = claims(&alice.token);
    c["sid"] = json!(session_of(&bob.token));

    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("a token is signed");

    assert_token_refused(&app, &token, "alice's id with bob's session").await;
}

#[tokio::test]
async fn a_correctly_signed_token_with_missing_or_unknown_claims_is_401() {
    let app = TestApp::spawn_with(&[("--jwt-secret", SECRET)]).await;
    let alice = app.register("alice").await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let exp = now_secs() + 600;
    let cases = [
        (json!({"sub": alice.id, "exp": exp}), "no session"),
        (json!({"sid": session_of(&alice.token), "exp": exp}), "no subject"),
        (json!({"sub": alice.id, "sid": session_of(&alice.token)}), "no expiry"),
        (
            json!({"sub": alice.id, "sid": "no-such-session", "exp": exp, "iat": exp - 900}),
            "an unknown session",
        ),
        (json!({"sub": alice.id, "sid": 42, "exp": exp, "iat": exp - 900}), "a session of the wrong type"),
    ];

    for (claims, what) in cases {
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("signed");

        assert_token_refused(&app, &token, what).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Recover
// ---------------------------------------------------------------------------------------------

async fn recover(app: &TestApp, username: &str, phrase: &str, new_password: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/auth/recover",
        None,
        Some(json!({"username": username, "recovery_phrase": phrase, "new_password": new_password})),
    )
    .await
}

#[tokio::test]
async fn recovering_with_the_phrase_gives_a_new_phrase_and_tokens_and_ends_every_other_session() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (other_access, other_refresh) = app.login_ok("alice", &alice.password).await;
    let mut ws = app.ws(&other_access).await;

    let (status, body) = recover(&app, "alice", &alice.phrase, "a brand new password").await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["id"], alice.id.as_str());
    assert_token_pair(&body, "recover");
    let new_phrase = body["recovery_phrase"].as_str().expect("a new phrase");
    assert_phrase(new_phrase);
    assert_ne!(new_phrase, alice.phrase, "the phrase is replaced");
    let access = body["access_token"].as_str().expect("access token");
    assert_token_works(&app, access, "the recovered session").await;
    assert_ws_closed_unauthorized(&mut ws, "an earlier session's socket").await;
    for (token, what) in [(&alice.token, "registration session"), (&other_access, "login session")] {
        assert_token_refused(&app, token, what).await;
    }
    assert_refresh_refused(&app, &alice.refresh, "registration refresh token").await;
    assert_refresh_refused(&app, &other_refresh, "login refresh token").await;

    let (status, answer) = recover(&app, "alice", &alice.phrase, "yet another password").await;
    assert_unauthorized(status, &answer, "the old phrase");
    let (status, answer) = app.login("alice", &alice.password).await;
    assert_unauthorized(status, &answer, "the old password");
    app.login_ok("alice", "a brand new password").await;
    let (status, answer) = recover(&app, "alice", new_phrase, "a third password!").await;
    assert_eq!(status, StatusCode::OK, "the new phrase works: {answer}");
}

#[tokio::test]
async fn recovering_with_a_wrong_phrase_or_unknown_user_is_401_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let twelve_words =
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    let cases = [
        ("alice", bob.phrase.as_str(), "someone else's phrase"),
        ("alice", twelve_words, "a valid but wrong mnemonic"),
        ("alice", "not a phrase at all", "not a mnemonic"),
        ("alice", "", "an empty phrase"),
        ("nobody", alice.phrase.as_str(), "an unknown user"),
    ];
    for (username, phrase, what) in cases {
        let (status, body) = recover(&app, username, phrase, "a brand new password").await;

        assert_unauthorized(status, &body, what);
    }
    assert_token_works(&app, &alice.token, "alice's session survives failed recoveries").await;
    app.login_ok("alice", &alice.password).await;
    let (status, body) = recover(&app, "alice", &alice.phrase, "a brand new password").await;
    assert_eq!(status, StatusCode::OK, "the right phrase still works: {body}");
}

#[tokio::test]
async fn recovering_with_a_short_new_password_is_422() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let (status, body) = recover(&app, "alice", &alice.phrase, "short").await;

    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "short new password");
    assert_eq!(body["error"]["field"], "new_password", "{body}");
    assert_token_works(&app, &alice.token, "nothing ended").await;
}

// ---------------------------------------------------------------------------------------------
// Password change
// ---------------------------------------------------------------------------------------------

async fn change_password(app: &TestApp, token: &str, current: &str, new: &str) -> (StatusCode, Value) {
    app.post("/api/v1/users/me/password", token, json!({"current_password": current, "new_password": new}))
        .await
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions_and_keeps_the_current_one() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (other_access, other_refresh) = app.login_ok("alice", &alice.password).await;
    let mut current_ws = app.ws(&alice.token).await;
    let mut other_ws = app.ws(&other_access).await;

    let (status, body) = change_password(&app, &alice.token, &alice.password, "new password 123").await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_ws_closed_unauthorized(&mut other_ws, "the other session's socket").await;
    assert_token_refused(&app, &other_access, "the other session's access token").await;
    assert_refresh_refused(&app, &other_refresh, "the other session's refresh token").await;
    assert_token_works(&app, &alice.token, "the current session").await;
    assert_ws_alive(&mut current_ws, "the current session's socket").await;
    let (status, pair) = refresh(&app, &alice.refresh).await;
    assert_eq!(status, StatusCode::OK, "the current session refreshes: {pair}");
    let (status, answer) = app.login("alice", &alice.password).await;
    assert_unauthorized(status, &answer, "the old password");
    app.login_ok("alice", "new password 123").await;
}

#[tokio::test]
async fn changing_the_password_with_a_wrong_current_password_is_401_and_ends_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (other_access, _) = app.login_ok("alice", &alice.password).await;

    let (status, body) = change_password(&app, &alice.token, "not my password", "new password 123").await;

    assert_unauthorized(status, &body, "a wrong current password");
    assert_token_works(&app, &alice.token, "the current session").await;
    assert_token_works(&app, &other_access, "the other session").await;
    app.login_ok("alice", &alice.password).await;
}

#[tokio::test]
async fn changing_to_a_short_password_is_422_validation_failed() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let (status, body) = change_password(&app, &alice.token, &alice.password, "1234567").await;

    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "short new password");
    assert_eq!(body["error"]["field"], "new_password", "{body}");
    app.login_ok("alice", &alice.password).await;
}

#[tokio::test]
async fn changing_the_password_with_missing_fields_is_400() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let (status, body) =
        app.post("/api/v1/users/me/password", &alice.token, json!({"new_password": "x"})).await;

    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request", "missing current_password");
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

async fn sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/auth/sessions", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["sessions"].as_array().expect("a sessions array").clone()
}

#[tokio::test]
async fn the_sessions_list_shows_every_live_session_and_marks_only_the_callers_as_current() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let client =
        reqwest::Client::builder().user_agent("parlor-test/1.0").timeout(WAIT).build().expect("client");
    let resp = client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "alice", "password": alice.password}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.status(), StatusCode::OK);
    let other: Value = resp.json().await.expect("JSON");
    let other_access = other["access_token"].as_str().expect("access token");
    let (mine, theirs) = (session_of(&alice.token), session_of(other_access));

    let list = sessions(&app, &alice.token).await;

    assert_eq!(list.len(), 2, "{list:?}");
    for s in &list {
        assert_timestamp(&s["created_at"], "created_at");
        assert_timestamp(&s["last_seen_at"], "last_seen_at");
        assert!(s.get("user_agent").is_some(), "user_agent is present: {s}");
        assert_eq!(s["current"], s["id"] == mine.as_str(), "current only for the caller's: {s}");
    }
    let ids: Vec<&str> = list.iter().filter_map(|s| s["id"].as_str()).collect();
    assert!(ids.contains(&mine.as_str()) && ids.contains(&theirs.as_str()), "{list:?}");
    let from_browser = list.iter().find(|s| s["id"] == theirs.as_str()).expect("the other session");
    assert_eq!(from_browser["user_agent"], "parlor-test/1.0");
    let seen_by_other = sessions(&app, other_access).await;
    let current: Vec<&Value> = seen_by_other.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{seen_by_other:?}");
    assert_eq!(current[0]["id"], theirs.as_str());
}

#[tokio::test]
async fn deleting_a_session_ends_it_and_only_it() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (other_access, other_refresh) = app.login_ok("alice", &alice.password).await;
    let mut other_ws = app.ws(&other_access).await;
    let other_id = session_of(&other_access);

    let (status, body) = app
        .call(Method::DELETE, &format!("/api/v1/auth/sessions/{other_id}"), Some(&alice.token), None)
        .await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_ws_closed_unauthorized(&mut other_ws, "the deleted session's socket").await;
    assert_token_refused(&app, &other_access, "the deleted session's access token").await;
    assert_refresh_refused(&app, &other_refresh, "the deleted session's refresh token").await;
    assert_token_works(&app, &alice.token, "the caller's session").await;
    let list = sessions(&app, &alice.token).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], session_of(&alice.token).as_str());
}

#[tokio::test]
async fn deleting_the_current_session_is_like_logging_out() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let id = session_of(&alice.token);

    let (status, body) =
        app.call(Method::DELETE, &format!("/api/v1/auth/sessions/{id}"), Some(&alice.token), None).await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_token_refused(&app, &alice.token, "the deleted current session").await;
    assert_refresh_refused(&app, &alice.refresh, "its refresh token").await;
}

#[tokio::test]
async fn deleting_an_unknown_or_someone_elses_session_is_404() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    for id in [
        "no-such-session".to_owned(),
        "01900000-0000-7000-8000-000000000000".to_owned(),
        session_of(&bob.token),
    ] {
        let (status, body) =
            app.call(Method::DELETE, &format!("/api/v1/auth/sessions/{id}"), Some(&alice.token), None).await;

        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found", &id);
    }
    assert_token_works(&app, &bob.token, "bob's session was not touched").await;
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_own_user_has_the_public_fields_and_the_email() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let (status, body) = me(&app, &alice.token).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], alice.id.as_str());
    assert_eq!(body["username"], "alice");
    assert_eq!(body["display_name"], "alice");
    assert_timestamp(&body["created_at"], "created_at");
    assert!(body.get("email").is_some_and(Value::is_null), "email is there and null: {body}");
}

#[tokio::test]
async fn patching_the_own_user_sets_and_clears_the_display_name_and_email() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&alice.token),
            Some(json!({"display_name": "Alice Liddell", "email": "alice@example.com"})),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Alice Liddell");
    assert_eq!(body["email"], "alice@example.com");
    let (_, own) = me(&app, &alice.token).await;
    assert_eq!(own["display_name"], "Alice Liddell");
    assert_eq!(own["email"], "alice@example.com");

    // An absent field is left alone; a null e-mail clears it.
    let (status, body) =
        app.call(Method::PATCH, "/api/v1/users/me", Some(&alice.token), Some(json!({"email": null}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], Value::Null);
    assert_eq!(body["display_name"], "Alice Liddell");
    let (_, own) = me(&app, &alice.token).await;
    assert!(own.get("email").is_some_and(Value::is_null), "{own}");

    let (status, body) = app
        .call(Method::PATCH, "/api/v1/users/me", Some(&alice.token), Some(json!({"display_name": "Al"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Al");
    assert_eq!(body["email"], Value::Null);
    let bob = app.register("bob").await;
    let (status, public) = app.get(&format!("/api/v1/users/{}", alice.id), &bob.token).await;
    assert_eq!(status, StatusCode::OK, "{public}");
    assert_eq!(public["display_name"], "Al", "others see the new name");
}

#[tokio::test]
async fn patching_the_own_user_with_bad_values_is_422_or_400() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let cases = [
        (
            json!({"display_name": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("display_name"),
        ),
        (
            json!({"display_name": "   "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("display_name"),
        ),
        (
            json!({"display_name": "d".repeat(65)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("display_name"),
        ),
        (json!({"email": "nope"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", Some("email")),
        (json!({"display_name": 42}), StatusCode::BAD_REQUEST, "invalid_request", None),
        (json!({"email": ["a@b.co"]}), StatusCode::BAD_REQUEST, "invalid_request", None),
    ];

    for (patch, want, code, field) in cases {
        let (status, body) =
            app.call(Method::PATCH, "/api/v1/users/me", Some(&alice.token), Some(patch.clone())).await;

        assert_error(status, &body, want, code, &patch.to_string());
        if let Some(field) = field {
            assert_eq!(body["error"]["field"], field, "{patch}: {body}");
        }
    }
    let (_, own) = me(&app, &alice.token).await;
    assert_eq!(own["display_name"], "alice", "nothing changed");
}

#[tokio::test]
async fn another_users_profile_has_no_email_and_an_unknown_id_is_404() {
    let app = TestApp::spawn().await;
    let (status, body) = register_body(
        &app,
        json!({"username": "alice", "password": "12345678", "email": "alice@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alice_id = body["user"]["id"].as_str().expect("id").to_owned();
    let bob = app.register("bob").await;

    let (status, public) = app.get(&format!("/api/v1/users/{alice_id}"), &bob.token).await;

    assert_eq!(status, StatusCode::OK, "{public}");
    assert_eq!(public["id"], alice_id.as_str());
    assert_eq!(public["username"], "alice");
    assert_eq!(public["display_name"], "alice");
    assert_timestamp(&public["created_at"], "created_at");
    assert!(public.get("email").is_none(), "another user's e-mail is private: {public}");
    assert_eq!(public["presence"]["status"], "offline");
    for path in ["/api/v1/users/no-such-user", "/api/v1/users/%E2%9C%93%20%27%3B--", "/api/v1/users/%25"] {
        let (status, body) = app.get(path, &bob.token).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found", path);
    }
}

#[tokio::test]
async fn a_user_is_online_while_a_websocket_is_open_and_offline_with_last_seen_after() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let before = wait_presence(&app, &bob.token, &alice.id, "offline").await;
    assert!(before.get("last_seen_at").is_some(), "presence has last_seen_at: {before}");

    let ws = app.ws(&alice.token).await;

    wait_presence(&app, &bob.token, &alice.id, "online").await;
    ws.close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let after = loop {
        let presence = wait_presence(&app, &bob.token, &alice.id, "offline").await;
        // The server records last_seen_at just after it marks the user offline.
        if presence["last_seen_at"].is_string() || tokio::time::Instant::now() >= deadline {
            break presence;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_timestamp(&after["last_seen_at"], "last_seen_at after a connection");
}

#[tokio::test]
async fn a_user_with_two_websockets_stays_online_until_the_last_one_closes() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&bob, "shared", "public").await;
    app.join(&alice, &room).await;
    let mut watcher = app.ws(&bob.token).await;
    let first = app.ws(&alice.token).await;
    let online = next_presence(&mut watcher, &alice.id).await;
    assert_eq!(online["status"], "online", "{online}");
    let second = app.ws(&alice.token).await;
    wait_presence(&app, &bob.token, &alice.id, "online").await;

    first.close().await;

    assert_no_offline(&mut watcher, &alice.id, Duration::from_millis(500)).await;
    wait_presence(&app, &bob.token, &alice.id, "online").await;
    second.close().await;
    let event = next_presence(&mut watcher, &alice.id).await;
    assert_eq!(event["user_id"], alice.id.as_str(), "{event}");
    assert_eq!(event["status"], "offline", "{event}");
    assert_timestamp(&event["last_seen_at"], "last_seen_at in the presence event");
    wait_presence(&app, &bob.token, &alice.id, "offline").await;
}

#[tokio::test]
async fn searching_users_by_prefix_answers_at_most_20_matches() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..22).map(|i| format!("sam{i:02}")).collect();
    futures_util::future::join_all(names.iter().map(|n| app.register(n))).await;
    let viewer = app.register("viewer").await;
    app.register("xsam").await;
    app.register("samuel").await;

    let (status, body) = app.get("/api/v1/users?q=sam", &viewer.token).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let users = body["users"].as_array().expect("a users array");
    assert_eq!(users.len(), 20, "at most 20: {body}");
    for u in users {
        let name = u["username"].as_str().expect("username");
        assert!(name.starts_with("sam"), "matches by prefix: {name}");
        assert!(u["id"].is_string() && u["display_name"].is_string(), "user objects: {u}");
        assert!(u.get("email").is_none(), "no e-mails in search: {u}");
    }
    let (status, body) = app.get("/api/v1/users?q=samu", &viewer.token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found = usernames(&body);
    assert_eq!(found, vec!["samuel"]);
    let (status, body) = app.get("/api/v1/users?q=zzz", &viewer.token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["users"], json!([]));
    let (status, body) = app.get("/api/v1/users?q=am", &viewer.token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["users"], json!([]), "a prefix, not a substring");
}

#[tokio::test]
async fn a_like_wildcard_in_the_search_prefix_matches_only_itself() {
    let app = TestApp::spawn().await;
    let viewer = app.register("viewer").await;
    app.register("a_b").await;
    app.register("axb").await;

    let (status, body) = app.get("/api/v1/users?q=a_", &viewer.token).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let found = usernames(&body);
    assert_eq!(found, vec!["a_b"]);
}

// ---------------------------------------------------------------------------------------------
// Auth rate limit
// ---------------------------------------------------------------------------------------------

/// Spends the auth budget of this address with refreshes of unknown tokens: each is counted but
/// needs no password hash, so all of them land well within one refill interval.
async fn spend_auth_budget(app: &TestApp, calls: usize) {
    for i in 0..calls {
        let (status, body) = refresh(app, &format!("bogus-{i}")).await;
        assert_unauthorized(status, &body, &format!("auth call {i} is served"));
    }
}

#[tokio::test]
async fn the_fourth_login_in_a_burst_of_three_is_429_with_retry_after() {
    let app = TestApp::spawn_with(&[("--auth-rate", "1"), ("--auth-burst", "3")]).await;
    let login_now = || {
        app.raw(
            Method::POST,
            "/api/v1/auth/login",
            None,
            json!({"username": "nobody", "password": "some password"}).to_string(),
        )
    };

    // Four logins at once: the limiter counts each before its (slow) password check, so the
    // fourth to arrive is over the burst however long the checks take.
    let answers = futures_util::future::join_all((0..4).map(|_| login_now())).await;

    let (limited, served): (Vec<_>, Vec<_>) =
        answers.into_iter().partition(|r| r.status() == StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.len(), 1, "exactly the fourth login is limited");
    for resp in served {
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "the first three are served");
    }
    let resp = limited.into_iter().next().expect("the limited answer");
    let retry_after = retry_after_secs(&resp);
    assert!((1..=2).contains(&retry_after), "about a second: {retry_after}");
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(code_of(&body), "rate_limited", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let ms = body["error"]["retry_after_ms"].as_u64().expect("retry_after_ms in the error object");
    assert!((1..=1000).contains(&ms), "within the refill of one token: {ms}");

    // Once the wait is over, the address is served again.
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = app.login("nobody", "some password").await;
        if status != StatusCode::TOO_MANY_REQUESTS {
            assert_unauthorized(status, &body, "after the wait");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still limited: {body}");
        let wait = body["error"]["retry_after_ms"].as_u64().unwrap_or(50);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

#[tokio::test]
async fn register_login_refresh_and_recover_share_the_per_address_budget() {
    let app = TestApp::spawn_with(&[("--auth-rate", "1"), ("--auth-burst", "3")]).await;
    spend_auth_budget(&app, 3).await;
    let calls = [
        ("/api/v1/auth/register", json!({"username": "alice", "password": "12345678"})),
        ("/api/v1/auth/login", json!({"username": "alice", "password": "12345678"})),
        ("/api/v1/auth/refresh", json!({"refresh_token": "bogus"})),
        (
            "/api/v1/auth/recover",
            json!({"username": "alice", "recovery_phrase": "x", "new_password": "12345678"}),
        ),
    ];

    for (path, body) in calls {
        let (status, answer) = app.call(Method::POST, path, None, Some(body)).await;

        assert_error(status, &answer, StatusCode::TOO_MANY_REQUESTS, "rate_limited", path);
        assert!(answer["error"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{answer}");
    }
}

#[tokio::test]
async fn the_auth_rate_limit_is_kept_per_client_address() {
    let app = TestApp::spawn_with(&[("--auth-rate", "1"), ("--auth-burst", "3")]).await;
    spend_auth_budget(&app, 3).await;
    let (status, body) = app.login("nobody", "some password").await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited", "127.0.0.1 is limited");
    let other_address = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(WAIT)
        .build()
        .expect("a client on 127.0.0.2");

    let resp = other_address
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "nobody", "password": "some password"}))
        .send()
        .await
        .expect("an answer");

    let status = resp.status();
    let body: Value = resp.json().await.expect("a JSON body");
    assert_unauthorized(status, &body, "another address has its own budget");
}
