//! The settings the binary really has are the ones `.env.example` lists.

use std::process::Command;

#[test]
fn every_variable_the_binary_reads_is_in_env_example() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.example"))
        .expect(".env.example at the root");
    let mut missing = Vec::new();
    for command in ["serve", "gateway", "worker", "moderation", "users", "notifier", "migrate"] {
        let help = Command::new(env!("CARGO_BIN_EXE_parlor"))
            .args([command, "--help"])
            .output()
            .expect("parlor runs");
        let text = String::from_utf8_lossy(&help.stdout);
        for var in text.split("env: ").skip(1).filter_map(|rest| rest.split(['=', ']']).next()) {
            if !example.contains(&format!("#{var}=")) && !missing.contains(&var.to_owned()) {
                missing.push(var.to_owned());
            }
        }
    }
    assert!(missing.is_empty(), "not in .env.example: {missing:?}");
}

#[test]
fn version_and_help_answer() {
    let out = Command::new(env!("CARGO_BIN_EXE_parlor")).arg("--version").output().expect("parlor runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("parlor "));
    let out = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["serve", "--listen", "not an address"])
        .output()
        .expect("parlor runs");
    assert!(!out.status.success(), "a bad setting is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"), "and named");
}
