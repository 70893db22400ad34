//! The administration commands, run against the data directory of a running server.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::json;
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
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "first-password"})),
        )
        .await;
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
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "first-password"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, login) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "second-password"})),
        )
        .await;
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
