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

#[test]
fn tiny_fanout_against_parlor_serve_loses_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(parlor_binary());
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(["--auth-rate", "1000", "--auth-burst", "1000", "--send-rate", "1000", "--send-burst", "1000"])
        .env("RUST_LOG", "info");
    let (_server, addr) = common::spawn_listening(cmd);
    let report = common::tiny_fanout(&format!("http://{addr}"), data.path());
    common::assert_sane(&report);
}
