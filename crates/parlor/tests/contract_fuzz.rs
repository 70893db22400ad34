//! Contract fuzzing from `cargo test`: runs `.ci/schemathesis.sh` against this build's binary,
//! SQLite only and 10 examples per operation (CI runs the script itself with more examples and
//! PostgreSQL too; see docs/testing.md). Needs schemathesis: `python3 -m pip install schemathesis`.

use std::process::Command;

#[test]
fn the_rest_api_answers_as_its_openapi_document_says() {
    let installed = Command::new("schemathesis").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "schemathesis is not installed: install it with `python3 -m pip install schemathesis` \
         (PyPI, version 4.32 or newer), then run this test again"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/schemathesis.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("PARLOR_BIN", env!("CARGO_BIN_EXE_parlor"))
        .env("FUZZ_EXAMPLES", std::env::var("FUZZ_EXAMPLES").unwrap_or_else(|_| "10".into()))
        .env(
            "PARLOR_FUZZ_POSTGRES_URL",
            std::env::var("PARLOR_FUZZ_POSTGRES_URL").unwrap_or_else(|_| "none".into()),
        )
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "contract fuzzing failed:\n{stdout}\n{stderr}");
}
