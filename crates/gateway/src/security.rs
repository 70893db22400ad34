//! Browser-facing protections of every answer: the security headers, and the `Origin` check of
//! the WebSocket upgrade (a browser sends cookies-free upgrades from any page, so without it any
//! site could open a socket to this server from a visitor's browser; tokens are not cookies, so
//! the risk is small, but the check costs nothing).
//!
//! Headers, on every answer unless the route set its own: `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`, a Content-Security-Policy (the
//! client's own, from `web.rs`; one that lets Swagger UI run at `/api/docs/`; `default-src 'none'`
//! on everything else, which is JSON), `Cache-Control: no-store` on the API (its answers carry
//! tokens and personal data), and `Strict-Transport-Security` when configured.

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use parlor_domain::Error;

/// The policy of API answers: they are data, never a document to render or frame.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// The policy of the Swagger UI page and its assets: scripts and styles from this server only
/// (Swagger UI sets inline styles, and its icons are `data:` images).
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                        frame-ancestors 'none'; form-action 'self'";

fn set_default(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    headers.entry(name).or_insert(value);
}

/// Adds the security headers to every answer (see the module's documentation).
pub async fn headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    set_default(h, header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    set_default(h, header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    set_default(h, header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let docs = path
        .strip_prefix(crate::openapi::PAGE_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    let csp = if docs { DOCS_CSP } else { API_CSP };
    set_default(h, header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    if path.starts_with("/api/v1/") {
        set_default(h, header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(max_age) = state.settings.hsts_max_age
        && let Ok(v) = HeaderValue::from_str(&format!("max-age={}", max_age.as_secs()))
    {
        set_default(h, header::STRICT_TRANSPORT_SECURITY, v);
    }
    response
}

/// The host and port of an origin such as `https://chat.example.com:8443`, lower case; `None` for
/// `null` or anything that is not `scheme://authority`.
fn origin_authority(origin: &str) -> Option<String> {
    let (_, rest) = origin.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| authority.to_ascii_lowercase())
}

/// Whether a WebSocket upgrade may go ahead, by its `Origin`:
/// - no `Origin`: not a browser (browsers always send it on an upgrade), allowed;
/// - the same host as the request (`Host`, or `X-Forwarded-Host` from a proxy that rewrites
///   `Host`; a page cannot set either on a WebSocket), allowed: the web client;
/// - an origin of the allow-list (`--cors-origins`; `*` allows any), allowed;
/// - anything else (including `null`), refused.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    if allowed.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(authority) = origin_authority(origin) else { return false };
    let forwarded = headers
        .get("x-forwarded-host")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    [host, forwarded].into_iter().flatten().any(|h| h.eq_ignore_ascii_case(&authority))
}

/// What a socket from a foreign origin is told before it is closed: `forbidden`.
pub fn foreign_origin() -> Error {
    Error::Forbidden("this origin may not open a WebSocket here; see --cors-origins".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn an_upgrade_without_an_origin_or_from_the_same_host_is_allowed() {
        assert!(origin_allowed(&headers(&[("host", "127.0.0.1:8080")]), &[]));
        let same = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
        assert!(origin_allowed(&same, &[]));
        let proxied = headers(&[
            ("host", "gateway-1:8080"),
            ("x-forwarded-host", "Chat.Example.com"),
            ("origin", "https://chat.example.com"),
        ]);
        assert!(origin_allowed(&proxied, &[]));
    }

    #[test]
    fn a_foreign_or_null_origin_is_refused_unless_listed() {
        let evil = headers(&[("host", "127.0.0.1:8080"), ("origin", "https://evil.example")]);
        assert!(!origin_allowed(&evil, &[]));
        assert!(!origin_allowed(&evil, &["https://good.example".into()]));
        assert!(origin_allowed(&evil, &["https://evil.example".into()]));
        assert!(origin_allowed(&evil, &["*".into()]));
        let other_port = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:9999")]);
        assert!(!origin_allowed(&other_port, &[]));
        assert!(!origin_allowed(&headers(&[("host", "a"), ("origin", "null")]), &[]));
    }
}
