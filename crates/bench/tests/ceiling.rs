//! A tiny fanout against `parlor-bench ceiling`.

mod common;

use std::process::Command;

#[test]
fn tiny_fanout_against_the_ceiling_loses_nothing() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parlor-bench"));
    cmd.args(["ceiling", "--listen", "127.0.0.1:0"]);
    let (_server, addr) = common::spawn_listening(cmd);
    let dir = tempfile::tempdir().expect("tempdir");
    let report = common::tiny_fanout(&format!("http://{addr}"), dir.path());
    common::assert_sane(&report);
}
