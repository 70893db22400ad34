//! The gRPC edge's one error mapping, both ways: a domain `Error` becomes a `tonic::Status` with a
//! message a caller can act on (never INTERNAL for bad input, never an internal detail), and a
//! status from another service becomes the domain error it stands for.

use parlor_domain::{Error, RejectReason};
use tonic::{Code, Status};

/// The status for a domain error.
pub fn to_status(e: &Error) -> Status {
    match e {
        Error::InvalidRequest(m) => Status::invalid_argument(m.clone()),
        Error::Validation { field, message } => match field {
            Some(f) => Status::invalid_argument(format!("{f}: {message}")),
            None => Status::invalid_argument(message.clone()),
        },
        Error::Unauthorized(m) => Status::unauthenticated(m.clone()),
        Error::Forbidden(m) => Status::permission_denied(m.clone()),
        Error::NotFound(m) => Status::not_found(m.clone()),
        Error::Conflict(m) => Status::already_exists(m.clone()),
        Error::PayloadTooLarge(m) => Status::invalid_argument(m.clone()),
        Error::Rejected { reason, message } => {
            Status::invalid_argument(format!("rejected ({}): {message}", reason.as_str()))
        }
        Error::RateLimited { retry_after_ms } => {
            Status::resource_exhausted(format!("rate limited; retry in {retry_after_ms} ms"))
        }
        Error::Unavailable(m) => Status::unavailable(m.clone()),
        Error::Internal(detail) => {
            tracing::error!(error = %detail, "internal error");
            Status::internal("internal error")
        }
    }
}

/// The domain error for a status from another service.
pub fn from_status(s: &Status) -> Error {
    let message = s.message().to_owned();
    match s.code() {
        Code::InvalidArgument => Error::InvalidRequest(message),
        Code::Unauthenticated => Error::Unauthorized(message),
        Code::PermissionDenied => Error::Forbidden(message),
        Code::NotFound => Error::NotFound(message),
        Code::AlreadyExists => Error::Conflict(message),
        Code::ResourceExhausted => Error::RateLimited { retry_after_ms: 1000 },
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
            Error::Unavailable(format!("a service is unavailable: {message}"))
        }
        _ => Error::Unavailable(format!("a service failed: {message}")),
    }
}

/// Whether a failed call may simply be made again.
pub fn retryable(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::Unknown)
}

/// Parses a reject reason's wire name.
pub fn reason(name: &str) -> Option<RejectReason> {
    [RejectReason::Spam, RejectReason::BlockedWord, RejectReason::Flood, RejectReason::TooManyLinks]
        .into_iter()
        .find(|r| r.as_str() == name)
}
