//! Extractors that answer bad input in the contract's shape: JSON bodies (400 for malformed JSON
//! or wrong types, 413 over 64 KiB), query strings, and the bearer token.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use parlor_domain::Error;
use parlor_users::Authenticated;
use serde::de::DeserializeOwned;

/// A JSON object body. The content type is not required: the body is what counts. Anything but
/// an object (an empty body, `null`, an array, a string) is 400, as malformed JSON is.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge("the request body is over 64 KiB".into())
            } else {
                Error::invalid("the request body could not be read")
            }
        })?;
        json_object(&bytes).map(ApiJson).map_err(ApiError)
    }
}

/// Parses a body that must be a JSON object. Checked before serde sees it: serde would read an
/// array as a struct's fields in order, and its messages for a non-object name the Rust type
/// ("expected struct PatchMe"), which is none of a client's business.
pub(crate) fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(Error::invalid("invalid JSON body: expected a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let detail = e.to_string();
        if detail.contains("struct ") || detail.contains("enum ") {
            // A nested value of the wrong shape: say where, not which type.
            Error::invalid(format!(
                "invalid JSON body: a value has the wrong type at line {} column {}",
                e.line(),
                e.column()
            ))
        } else {
            Error::invalid(format!("invalid JSON body: {detail}"))
        }
    })
}

/// A query string.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| ApiError(Error::invalid(format!("invalid query string: {e}"))))
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The authenticated caller: a valid access token of a session that has not ended.
pub struct Auth(pub Authenticated);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token =
            bearer(&parts.headers).ok_or_else(|| Error::Unauthorized("missing bearer token".into()))?;
        Ok(Auth(state.authenticator.authenticate(token).await?))
    }
}

/// The client's `User-Agent`, if any.
pub struct UserAgent(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(UserAgent(parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned)))
    }
}
