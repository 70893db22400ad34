//! A tiny fanout against a real `parlor serve`.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// The `parlor` binary of the same target directory as this test (`target/debug/parlor`).
fn parlor_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let bin = dir.join(format!("parlor{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build the server first (`cargo build -p parlor`, or run `cargo test --workspace`)",
        bin.display()
    );
    bin
}

/// `parlor serve` on a free port over `data`, with limits a bench does not trip.
fn serve(data: &std::path::Path) -> (common::Server, String) {
    let mut cmd = Command::new(parlor_binary());
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(["--auth-rate", "1000", "--auth-burst", "1000", "--send-rate", "1000", "--send-burst", "1000"])
        .env("RUST_LOG", "info");
    common::spawn_listening(cmd)
}

#[test]
fn tiny_fanout_against_parlor_serve_loses_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let (_server, addr) = serve(data.path());
    let report = common::tiny_fanout(&format!("http://{addr}"), data.path());
    common::assert_sane(&report);
}

#[test]
fn a_short_soak_samples_memory_and_files_and_loses_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let (server, addr) = serve(data.path());
    let json = data.path().join("soak.json");
    let out = Command::new(env!("CARGO_BIN_EXE_parlor-bench"))
        .args(["soak", "--url", &format!("http://{addr}"), "--connections", "60", "--accounts", "20"])
        .args(["--room-size", "5", "--msg-rate", "20", "--minutes", "0.1", "--sample-secs", "2"])
        .args(["--server-pid", &server.0.id().to_string(), "--source-ips", "0", "--json"])
        .arg(&json)
        .output()
        .expect("parlor-bench runs");
    assert!(out.status.success(), "soak failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON report")).expect("JSON");
    assert!(r["sent"].as_u64().unwrap_or(0) > 50, "traffic flowed: {r}");
    assert_eq!(r["delivered"], r["expected"], "every message reached every socket of its room: {r}");
    assert_eq!(r["errors"], 0);
    let samples = r["samples"].as_array().expect("samples");
    assert!(samples.len() >= 3, "sampled every 2 s: {r}");
    for s in samples {
        assert!(s["server_rss_kib"].as_u64().unwrap_or(0) > 0, "RSS read from /proc: {s}");
        // 60 sockets, the database and the listener at least.
        assert!(s["server_fds"].as_u64().unwrap_or(0) >= 62, "open files read from /proc: {s}");
    }
}
