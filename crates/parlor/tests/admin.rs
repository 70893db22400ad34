//! The administration commands, run against the data directory of a running server.

mod common;

use common::{Got, TestApp, WsClient, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::Command;

fn parlor(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("parlor runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn users_and_rooms_made_on_the_command_line_work_through_the_api() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir().display().to_string();
    let (ok, out, err) = parlor(&[
        "user",
        "create",
        "--username",
        "admin",
        "--password",
        "first-password",
        "--data-dir",
        &dir,
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("created user admin") && out.contains("recovery phrase"), "{out}");
    let (status, _) = app.login("admin", "first-password").await;
    assert_eq!(status, StatusCode::OK);

    let (ok, out, err) = parlor(&[
        "user",
        "create",
        "--username",
        "admin",
        "--password",
        "other-password",
        "--data-dir",
        &dir,
    ]);
    assert!(!ok, "a taken name is refused: {out}");
    assert!(err.contains("taken"), "{err}");

    let (ok, out, err) = parlor(&[
        "user",
        "reset-password",
        "--username",
        "admin",
        "--password",
        "second-password",
        "--data-dir",
        &dir,
    ]);
    assert!(ok, "{out}{err}");
    let (status, _) = app.login("admin", "first-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, login) = app.login("admin", "second-password").await;
    assert_eq!(status, StatusCode::OK);
    let token = login["access_token"].as_str().expect("token").to_owned();

    let (ok, out, err) =
        parlor(&["room", "create", "--name", "Announcements", "--owner", "admin", "--data-dir", &dir]);
    assert!(ok, "{out}{err}");
    let (_, rooms) = app.get("/api/v1/rooms/public?q=announce", &token).await;
    assert_eq!(rooms["rooms"][0]["name"], "Announcements");
    let (ok, _, err) = parlor(&["room", "create", "--name", "x", "--owner", "nobody", "--data-dir", &dir]);
    assert!(!ok && err.contains("no user named"), "{err}");
}

#[test]
fn config_check_prints_the_configuration_with_secrets_masked_and_names_what_is_wrong() {
    let (ok, out, err) = parlor(&[
        "config",
        "check",
        "--jwt-secret",
        "a-very-secret-signing-key",
        "--smtp-url",
        "smtp://user:pw@mail:25",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("configuration ok"), "{out}");
    assert!(
        !out.contains("a-very-secret-signing-key") && !out.contains("user:pw"),
        "secrets are masked: {out}"
    );
    assert!(out.contains("[redacted]"), "{out}");
    let (ok, _, err) = parlor(&[
        "config",
        "check",
        "--listen",
        "nowhere",
        "--database-url",
        "mysql://x",
        "--jwt-secret",
        "short",
    ]);
    assert!(!ok);
    for problem in ["--listen", "--database-url", "--jwt-secret"] {
        assert!(err.contains(problem), "{problem} named in {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Disabling and enabling accounts
// ---------------------------------------------------------------------------------------------

/// The next frames end with an `error` saying `unauthorized`, then the close with 4001.
async fn expect_unauthorized_close(ws: &mut WsClient) {
    let mut told = false;
    loop {
        match ws.next().await {
            Got::Frame(frame) if frame["type"] == "error" => {
                assert_eq!(frame["code"], "unauthorized", "{frame}");
                told = true;
            }
            Got::Frame(_) => {}
            Got::Closed(code) => {
                assert_eq!(code, Some(4001));
                assert!(told, "an error frame says why before the close");
                return;
            }
        }
    }
}

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
async fn a_disabled_account_is_cut_off_at_once_and_an_enabled_one_logs_in_again() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir().display().to_string();
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let room = app.room(&alice, "general", "public").await;
    app.join(&mallory, &room).await;
    let said = app.say(&mallory, &room, "hello from mallory").await;
    let mut live = app.ws(&mallory.token).await;
    let mut bystander = app.ws(&alice.token).await;

    let (ok, out, err) = parlor(&["user", "disable", "Mallory", "--data-dir", &dir]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("disabled mallory") && out.contains("1 session(s) ended"), "{out}");

    // Every token of the account is refused at once...
    assert_error(app.get("/api/v1/users/me", &mallory.token).await, StatusCode::UNAUTHORIZED, "unauthorized");
    let refresh = app
        .call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": mallory.refresh})))
        .await;
    assert_error(refresh, StatusCode::UNAUTHORIZED, "unauthorized");
    let mut late = app.ws_raw().await;
    late.send(json!({"type": "auth", "token": mallory.token})).await;
    expect_unauthorized_close(&mut late).await;
    // ...and the socket it had open is closed as at the end of a session.
    expect_unauthorized_close(&mut live).await;

    // The right password or phrase says why; a wrong one says no more than for anyone.
    let refused =
        assert_error(app.login("mallory", &mallory.password).await, StatusCode::FORBIDDEN, "forbidden");
    assert!(refused["message"].as_str().unwrap_or_default().contains("disabled"), "{refused}");
    assert_error(app.login("mallory", "not-the-password").await, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(
        recover(&app, "mallory", &mallory.phrase, "a-brand-new-password").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let wrong_phrase = alice.phrase.clone();
    assert_error(
        recover(&app, "mallory", &wrong_phrase, "a-brand-new-password").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // Nothing else is hidden: the messages, the profile and the membership stay.
    let history = app.history(&alice, &room).await;
    assert!(history.iter().any(|m| m["id"] == said["id"] && m["body"] == "hello from mallory"));
    let (status, profile) = app.get(&format!("/api/v1/users/{}", mallory.id), &alice.token).await;
    assert_eq!((status, profile["username"].as_str()), (StatusCode::OK, Some("mallory")));
    let (_, members) = app.get(&format!("/api/v1/rooms/{room}/members"), &alice.token).await;
    assert_eq!(members["members"].as_array().map(Vec::len), Some(2));
    bystander.send(json!({"type": "ping"})).await;
    assert_eq!(bystander.next_of_type("pong").await["type"], "pong", "other users stay connected");

    let (ok, out, err) = parlor(&["user", "disable", "mallory", "--data-dir", &dir]);
    assert!(ok && out.contains("already disabled"), "{out}{err}");

    let (ok, out, err) = parlor(&["user", "enable", "mallory", "--data-dir", &dir]);
    assert!(ok && out.contains("enabled mallory"), "{out}{err}");
    let (token, _) = app.login_ok("mallory", &mallory.password).await;
    assert_eq!(app.get("/api/v1/users/me", &token).await.0, StatusCode::OK);
    assert_error(app.get("/api/v1/users/me", &mallory.token).await, StatusCode::UNAUTHORIZED, "unauthorized");
    let ws = app.ws(&token).await;
    assert_eq!(ws.ready["user"]["username"], "mallory");
    let (ok, out, err) = parlor(&["user", "enable", "mallory", "--data-dir", &dir]);
    assert!(ok && out.contains("was not disabled"), "{out}{err}");
}

#[test]
fn disabling_or_enabling_an_unknown_user_fails_and_says_so() {
    let dir = tempfile::tempdir().expect("a directory");
    let dir = dir.path().display().to_string();
    for command in ["disable", "enable"] {
        let (ok, out, err) = parlor(&["user", command, "nobody", "--data-dir", &dir]);
        assert!(!ok, "{command} of an unknown user fails: {out}");
        assert!(err.contains("no user named \"nobody\""), "{err}");
    }
    let (ok, _, err) = parlor(&["user", "disable", "--data-dir", &dir]);
    assert!(!ok && err.contains("<USERNAME>"), "the username is required: {err}");
}

// ---------------------------------------------------------------------------------------------
// The demo
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn seed_fills_a_live_server_with_a_demo_that_works_through_the_api_and_runs_twice() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir().display().to_string();
    let (ok, out, err) = parlor(&["seed", "--data-dir", &dir]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("seeded the demo") && out.contains("parlor-demo"), "{out}");

    // Every demo user logs in with the documented password.
    let mut tokens = Vec::new();
    for name in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        let (token, _) = app.login_ok(name, "parlor-demo").await;
        tokens.push(token);
    }
    let alice = &tokens[0];

    // The rooms: four public ones with topics, a private one, a direct conversation.
    let (status, mine) = app.get("/api/v1/rooms", alice).await;
    assert_eq!(status, StatusCode::OK);
    let mine = mine["rooms"].as_array().expect("rooms").clone();
    let named = |name: &str| mine.iter().find(|r| r["name"] == name).cloned();
    for name in ["general", "random", "rust", "book-club"] {
        let room = named(name).unwrap_or_else(|| panic!("#{name} in {mine:?}"));
        assert_eq!(room["visibility"], "public");
        assert!(room["topic"].as_str().is_some_and(|t| !t.is_empty()), "{room}");
        assert!(room["member_count"].as_i64() >= Some(4), "{room}");
    }
    assert_eq!(named("core-team").expect("#core-team")["visibility"], "private");
    assert!(mine.iter().any(|r| r["kind"] == "direct" && r["last_seq"].as_i64() > Some(0)), "{mine:?}");
    let (_, public) = app.get("/api/v1/rooms/public", &tokens[5]).await;
    let listed: Vec<&str> =
        public["rooms"].as_array().expect("rooms").iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(listed.contains(&"general") && !listed.contains(&"core-team"), "{listed:?}");
    let total: i64 = mine.iter().filter_map(|r| r["last_seq"].as_i64()).sum();
    assert!((90..=130).contains(&total), "about a hundred messages: {total}");

    // The history of #general: gapless, in time order over the past days, rendered, with
    // mentions, replies, links and an edit.
    let general = named("general").expect("#general")["id"].as_str().expect("id").to_owned();
    let (status, page) = app.get(&format!("/api/v1/rooms/{general}/messages?limit=200"), alice).await;
    assert_eq!(status, StatusCode::OK);
    let history = page["messages"].as_array().expect("messages").clone();
    let seqs: Vec<i64> = history.iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=history.len() as i64).collect::<Vec<_>>());
    let times: Vec<&str> = history.iter().filter_map(|m| m["created_at"].as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "in time order: {times:?}");
    assert!(times[0] < times[times.len() - 1] && times[0][..10] != times[times.len() - 1][..10], "over days");
    assert!(history.iter().all(|m| m["html"].as_str().is_some_and(|h| h.starts_with('<'))), "rendered");
    assert!(history.iter().any(|m| m["html"].as_str().unwrap_or_default().contains("<strong>")));
    let mention =
        history.iter().find(|m| m["mentions"].as_array().is_some_and(|a| !a.is_empty())).expect("a mention");
    assert!(mention["html"].as_str().unwrap_or_default().contains("class=\"mention\""), "{mention}");
    let reply = history.iter().find(|m| m["reply_to"].is_string()).expect("a reply");
    assert!(history.iter().any(|m| m["id"] == reply["reply_to"]), "a reply to a message of the room");
    let edited = history.iter().find(|m| m["edited_at"].is_string()).expect("an edit");
    assert!(edited["body"].as_str().unwrap_or_default().contains("search"), "{edited}");
    assert!(
        history
            .iter()
            .any(|m| m["html"].as_str().unwrap_or_default().contains("rel=\"nofollow noopener noreferrer\"")),
        "a link"
    );
    let (_, found) = app.get("/api/v1/search?q=coffee", alice).await;
    assert!(!found["messages"].as_array().expect("messages").is_empty(), "the history is searchable");

    // The live server goes on from there.
    let (status, posted) = app
        .post(&format!("/api/v1/rooms/{general}/messages"), alice, json!({"body": "back to **work**"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{posted}");
    assert_eq!(posted["seq"].as_i64(), Some(history.len() as i64 + 1));

    // A second run adds nothing and says so.
    let (ok, out, err) = parlor(&["seed", "--data-dir", &dir]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("already seeded"), "{out}");
    let (_, again) = app.get("/api/v1/rooms", alice).await;
    let again = again["rooms"].as_array().expect("rooms").clone();
    assert_eq!(again.len(), mine.len());
    let total_again: i64 = again.iter().filter_map(|r| r["last_seq"].as_i64()).sum();
    assert_eq!(total_again, total + 1, "only the message posted since");
}

#[test]
fn every_command_has_a_help_with_a_description_and_an_example() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["gateway"],
        &["worker"],
        &["moderation"],
        &["users"],
        &["notifier"],
        &["migrate"],
        &["config"],
        &["config", "check"],
        &["user"],
        &["user", "create"],
        &["user", "reset-password"],
        &["user", "disable"],
        &["user", "enable"],
        &["room"],
        &["room", "create"],
        &["seed"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let (ok, out, err) = parlor(&args);
        assert!(ok, "parlor {command:?} --help: {err}");
        assert!(out.contains("Usage: parlor"), "{out}");
        assert!(out.contains("Example"), "parlor {command:?} --help has an example: {out}");
        let description = out.lines().next().unwrap_or_default();
        assert!(description.len() > 15, "parlor {command:?} --help starts with what it does: {out}");
    }
    let (_, out, _) = parlor(&["seed", "--help"]);
    assert!(out.contains("parlor-demo") && out.contains("alice"), "the demo's users and password: {out}");
}
