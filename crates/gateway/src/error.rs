//! The HTTP edge's one error mapping: a domain `Error` becomes a status and the contract's body
//! `{"error": {"code", "message", ...}}`. Internal detail goes to the log, never to the client.

use crate::openapi::ErrorBody;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parlor_domain::Error;

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError(pub Error);

/// Results of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

/// The status the contract gives an error.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        Error::Validation { .. } | Error::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Error::Internal(detail) = &self.0 {
            tracing::error!(error = %detail, "internal error");
        }
        let mut response = (status_of(&self.0), Json(ErrorBody::from(&self.0))).into_response();
        if let Error::RateLimited { retry_after_ms } = self.0 {
            let secs = retry_after_ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
