//! The OpenAPI document, generated from the code: every REST route is registered through
//! `utoipa_axum::routes!`, which reads the handler's `#[utoipa::path]` annotation, so a route and
//! its description cannot part. The answers of the error responses are the `ErrorBody` the error
//! mapping really serialises.

use parlor_domain::Error;
use parlor_domain::error::RejectReason;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Schema};
use utoipa::{Modify, OpenApi, ToSchema};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";

/// Where the browsable page is served.
pub const PAGE_PATH: &str = "/api/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "parlor",
        description = "parlor's REST API. Every error is `{\"error\": {\"code\", \"message\", ...}}`; \
                       realtime traffic goes over the WebSocket at `/api/v1/ws` (see docs/api.md).",
        license(name = "MIT OR Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody)),
    tags(
        (name = "auth", description = "Accounts, tokens, recovery and sessions"),
        (name = "users", description = "Profiles, presence and user search"),
        (name = "rooms", description = "Rooms, the directory, membership and direct messages"),
        (name = "messages", description = "History, sending, editing, read markers and search"),
        (name = "realtime", description = "The WebSocket endpoint"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The error's code; one of a fixed list.
    #[schema(schema_with = error_code)]
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
    /// The input field at fault (`validation_failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why moderation refused a message (`rejected`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// When to try again (`rate_limited`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

fn error_code() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(Error::CODES))
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        let (field, reason, retry_after_ms) = match e {
            Error::Validation { field, .. } => (field.clone(), None, None),
            Error::Rejected { reason, .. } => (None, Some(*reason), None),
            Error::RateLimited { retry_after_ms } => (None, None, Some(*retry_after_ms)),
            _ => (None, None, None),
        };
        ErrorBody {
            error: ErrorDetail { code: e.code(), message: e.public_message(), field, reason, retry_after_ms },
        }
    }
}

/// Error answers, one type per status, for the `responses(...)` of the handlers.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident = $status:tt, $description:tt;)*) => {$(
        $(#[$doc])*
        #[derive(utoipa::IntoResponses)]
        #[response(status = $status, description = $description)]
        #[allow(dead_code)]
        pub struct $name(ErrorBody);
    )*};
}

error_responses! {
    InvalidRequest = 400, "malformed JSON or query, wrong types or an unknown enum value";
    Unauthorized = 401, "missing, malformed, expired or revoked token; wrong credentials";
    Forbidden = 403, "authenticated but not allowed";
    NotFound = 404, "no such resource, or one the caller may not know exists";
    Conflict = 409, "taken, or already so";
    TooLarge = 413, "body over 64 KiB";
    Unprocessable = 422, "breaks a rule (`validation_failed` with the field), or rejected by moderation";
    RateLimited = 429, "too many requests; `Retry-After` and `retry_after_ms` say when to try again";
    Unavailable = 503, "a dependency is down; nothing was written";
}

/// The document as served: generated once.
pub fn document(api: Document) -> String {
    api.to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document could not be serialised");
        String::from("{}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_carry_their_extras() {
        let body = serde_json::to_value(ErrorBody::from(&Error::RateLimited { retry_after_ms: 1500 }))
            .expect("serialises");
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "rate_limited", "message": "rate limit exceeded, retry in 1500 ms", "retry_after_ms": 1500}})
        );
        let body = serde_json::to_value(ErrorBody::from(&Error::validation("name", "too long")))
            .expect("serialises");
        assert_eq!(body["error"]["field"], "name");
        assert!(body["error"].get("reason").is_none());
    }

    #[test]
    fn every_operation_declares_each_path_parameter_exactly_once_and_has_an_id_of_its_own() {
        let (_, api) = crate::api().split_for_parts();
        let doc = serde_json::to_value(&api).expect("serialises");
        let paths = doc["paths"].as_object().expect("paths");
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in paths {
            let placeholders: Vec<&str> =
                path.split('{').skip(1).filter_map(|rest| rest.split('}').next()).collect();
            for (method, operation) in item.as_object().expect("a path item") {
                let id = operation["operationId"].as_str().unwrap_or_default().to_owned();
                assert!(ids.insert(id.clone()), "{method} {path}: operationId {id:?} is taken");
                let params = operation["parameters"].as_array().cloned().unwrap_or_default();
                let mut seen = std::collections::BTreeSet::new();
                for param in &params {
                    let key = (
                        param["name"].as_str().unwrap_or_default(),
                        param["in"].as_str().unwrap_or_default(),
                    );
                    assert!(seen.insert(key), "{method} {path} lists {key:?} twice");
                }
                for name in &placeholders {
                    assert!(seen.contains(&(*name, "path")), "{method} {path} does not declare {name}");
                }
            }
        }
    }
}
