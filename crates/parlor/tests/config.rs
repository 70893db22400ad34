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

/// The roles and flags `docker-compose.yml` runs, and the variables it sets, are ones the binary
/// has (Docker does not run here, so this is how the file is kept true).
#[test]
fn docker_compose_runs_real_roles_with_real_flags_and_variables() {
    let compose = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker-compose.yml"))
        .expect("docker-compose.yml at the root");
    let mut checked = 0;
    for line in compose.lines().map(str::trim) {
        let Some(list) = line.strip_prefix("command: [").and_then(|l| l.strip_suffix(']')) else { continue };
        let words: Vec<String> = list.split(',').map(|w| w.trim().trim_matches('"').to_owned()).collect();
        let Some(role) = words.first() else { continue };
        if role.starts_with("redis") {
            continue;
        }
        let help = Command::new(env!("CARGO_BIN_EXE_parlor"))
            .args([role.as_str(), "--help"])
            .output()
            .expect("parlor runs");
        assert!(help.status.success(), "`parlor {role}` exists");
        let text = String::from_utf8_lossy(&help.stdout);
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                text.contains(&format!("{flag} ")) || text.contains(&format!("{flag}\n")),
                "`parlor {role}` takes {flag}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 8, "the compose file runs every role ({checked} commands checked)");
    let mut known = String::new();
    for command in ["serve", "gateway", "worker", "moderation", "users", "notifier", "migrate"] {
        let help = Command::new(env!("CARGO_BIN_EXE_parlor"))
            .args([command, "--help"])
            .output()
            .expect("parlor runs");
        known.push_str(&String::from_utf8_lossy(&help.stdout));
    }
    for var in
        compose.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("PARLOR_"))
    {
        assert!(known.contains(&format!("env: {var}=")), "{var} is a variable the binary reads");
    }
}
