//! The browser client: the files under `web/` at the repository's root, embedded in the binary so
//! that the one executable is the whole product. Served at `/` and `/<file>` as plain routes,
//! outside the OpenAPI document (they are not part of the API), each with its content type, an
//! ETag from the file's SHA-256 (`Cache-Control: no-cache`, so a browser revalidates and gets a
//! 304 while the binary is the same) and a strict Content-Security-Policy: no inline script, no
//! third-party origin, nothing but this server.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

/// The client's files.
#[derive(RustEmbed)]
#[folder = "../../web/"]
struct Assets;

/// The policy of every page and file of the client. `connect-src 'self'` covers the WebSocket
/// to this same host (CSP level 3); rendered messages hold no image (the renderer turns images
/// into links), and `data:` is only for the icon.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
                   form-action 'self'";

/// The routes of the client: `/`, `/index.html` and one per embedded file. Anything else falls
/// through to the API's JSON 404.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router =
        Router::new().route("/", get(|headers: HeaderMap| async move { asset("index.html", &headers) }));
    for name in Assets::iter() {
        let name = name.into_owned();
        let path = format!("/{name}");
        router = router.route(&path, get(move |headers: HeaderMap| async move { asset(&name, &headers) }));
    }
    router
}

/// The content type of a file of the client, by its extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether `If-None-Match` names `etag` (or `*`); weak and strong forms compare alike.
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag))
}

fn asset(name: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(name) else {
        return crate::not_found_response();
    };
    let hash: String = file.metadata.sha256_hash().iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{hash}\"");
    let mut response = if matches_etag(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = file.data.into_owned().into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nosniff, no-referrer and DENY come from `security::headers`, as on every answer.
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_embedded() {
        for name in ["index.html", "app.js", "style.css"] {
            assert!(Assets::get(name).is_some(), "{name} is embedded");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("icon.svg"), "image/svg+xml");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn an_etag_matches_in_any_form() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(matches_etag(&h, "\"b\""));
        assert!(matches_etag(&h, "\"a\""));
        assert!(!matches_etag(&h, "\"c\""));
    }
}
