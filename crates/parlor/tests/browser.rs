//! The browser client end to end, as part of `cargo test`: runs `e2e/run.mjs`, which starts this
//! build's `parlor` binary itself and drives Debian's Chromium through playwright-core (two
//! people chatting, a server restart, a phone-sized screen, the dark theme, recovery). Its output
//! (each step, and the path of every screenshot) goes straight to this process's output.
//!
//! Needs `node`, `/usr/bin/chromium` (`apt-get install -y chromium`) and `e2e/node_modules`
//! (`npm ci --prefix e2e`); without them the test fails and says so, it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_browser_client_works_end_to_end_in_chromium() {
    let repo = repo();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser tests need Chromium at {chromium}: install it with \
         `apt-get install -y --no-install-recommends chromium` (or set CHROMIUM)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "the browser tests need Node.js 18 or newer on the PATH: `apt-get install -y nodejs npm`"
    );
    assert!(
        repo.join("e2e/node_modules/playwright-core/package.json").exists(),
        "the browser tests need playwright-core: run `npm ci --prefix e2e` at the repository's root"
    );

    let status = Command::new("node")
        .arg(repo.join("e2e/run.mjs"))
        .current_dir(&repo)
        .env("PARLOR_BIN", env!("CARGO_BIN_EXE_parlor"))
        .env("CHROMIUM", &chromium)
        .status()
        .expect("node starts");

    assert!(status.success(), "the browser tests failed ({status}); their output is above");
}
