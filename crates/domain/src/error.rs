//! The errors a client can be told about. Each variant is one row of the contract's error table;
//! `code()` is its wire code. Internal failures carry their detail for the log only.

use serde::{Deserialize, Serialize};

/// Why the moderation pipeline refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    Spam,
    BlockedWord,
    Flood,
    TooManyLinks,
}

impl RejectReason {
    /// The wire name of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spam => "spam",
            Self::BlockedWord => "blocked_word",
            Self::Flood => "flood",
            Self::TooManyLinks => "too_many_links",
        }
    }
}

/// An error a request can end in.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// Malformed JSON, wrong types, unknown enum value or frame type.
    #[error("{0}")]
    InvalidRequest(String),
    /// Well-formed input that breaks a rule.
    #[error("{message}")]
    Validation { field: Option<String>, message: String },
    /// Missing, malformed, expired or revoked token; wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource, or one the caller may not know exists.
    #[error("{0}")]
    NotFound(String),
    /// Username taken, already a member.
    #[error("{0}")]
    Conflict(String),
    /// A body or frame over its limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The moderation pipeline refused the message.
    #[error("{message}")]
    Rejected { reason: RejectReason, message: String },
    /// Too many requests; try again after the given time.
    #[error("rate limit exceeded, retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// A dependency is down; nothing was written.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the detail is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Results across the domain.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Every wire code `code()` can give.
    pub const CODES: [&'static str; 11] = [
        "invalid_request",
        "validation_failed",
        "unauthorized",
        "forbidden",
        "not_found",
        "conflict",
        "payload_too_large",
        "rejected",
        "rate_limited",
        "unavailable",
        "internal",
    ];

    /// The wire code of the error (`invalid_request`, `not_found`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::Validation { .. } => "validation_failed",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Rejected { .. } => "rejected",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The message shown to the client: internal detail is replaced by a generic text.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// A validation error on one field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation { field: Some(field.to_owned()), message: message.into() }
    }

    /// A request that could not be parsed.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }

    /// Wraps an unexpected failure, keeping its cause chain for the log.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::Internal(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once() {
        let all = [
            Error::InvalidRequest(String::new()),
            Error::validation("f", "m"),
            Error::Unauthorized(String::new()),
            Error::Forbidden(String::new()),
            Error::NotFound(String::new()),
            Error::Conflict(String::new()),
            Error::PayloadTooLarge(String::new()),
            Error::Rejected { reason: RejectReason::Spam, message: String::new() },
            Error::RateLimited { retry_after_ms: 1 },
            Error::Unavailable(String::new()),
            Error::Internal(String::new()),
        ];
        let codes: Vec<&str> = all.iter().map(Error::code).collect();
        assert_eq!(codes, Error::CODES);
    }
}
