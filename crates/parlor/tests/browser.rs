//! The browser client end to end, as part of `cargo test`: runs `e2e/run.mjs`, which starts this
//! build's `parlor` binary itself and drives Debian's Chromium through playwright-core (two
//! people chatting, a server restart, a phone-sized screen, the dark theme, recovery). Its output
//! (each step, and the path of every screenshot) goes straight to this process's output.
//!
//! Needs `node`, `/usr/bin/chromium` (`apt-get install -y chromium`) and `e2e/node_modules`
//! (`npm ci --prefix e2e`); without them the test fails and says so, it never skips.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
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

fn header(r: &reqwest::Response, name: impl reqwest::header::AsHeaderName) -> String {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_client_is_served_at_the_root_with_a_strict_policy_and_revalidation() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();

    let page = http.get(app.url("/")).send().await.expect("GET /");
    let script = http.get(app.url("/app.js")).send().await.expect("GET /app.js");
    let style = http.get(app.url("/style.css")).send().await.expect("GET /style.css");

    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, CONTENT_TYPE), "text/html; charset=utf-8");
    let csp = header(&page, CONTENT_SECURITY_POLICY);
    for rule in ["default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"] {
        assert!(csp.contains(rule), "{rule} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, CACHE_CONTROL), "no-cache");
    assert_eq!(header(&script, CONTENT_TYPE), "text/javascript; charset=utf-8");
    assert_eq!(header(&style, CONTENT_TYPE), "text/css; charset=utf-8");
    let html = page.text().await.expect("the page");
    assert!(html.contains(r#"<script type="module" src="/app.js"></script>"#), "the page loads its module");

    let etag = header(&script, ETAG);
    assert!(etag.starts_with('"') && etag.len() > 10, "an ETag: {etag}");
    let again = http.get(app.url("/app.js")).header(IF_NONE_MATCH, &etag).send().await.expect("GET again");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.expect("a body").is_empty());

    for path in ["/api/v1/no-such-route", "/api/app.js", "/no-such-file.js"] {
        let (status, body) = app.call(reqwest::Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
}
