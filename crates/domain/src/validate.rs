//! The contract's limits on what clients send. Each check returns the value to keep (trimmed
//! where the contract says so) or a `validation_failed` error naming the field.

use crate::Error;

/// Longest message body, in Unicode scalar values after trimming.
pub const MAX_BODY_CHARS: usize = 4000;
/// Longest client nonce.
pub const MAX_NONCE_CHARS: usize = 64;
/// Largest HTTP request body and WebSocket frame.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Default and largest history page.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 200;

/// 3–32 characters of `A-Z a-z 0-9 _ . -`.
pub fn username(s: &str) -> Result<String, Error> {
    let n = s.chars().count();
    if !(3..=32).contains(&n) {
        return Err(Error::validation("username", "username must be 3 to 32 characters"));
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(Error::validation(
            "username",
            "username may hold only letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(s.to_owned())
}

/// 8–128 characters.
pub fn password(field: &str, s: &str) -> Result<(), Error> {
    let n = s.chars().count();
    if !(8..=128).contains(&n) {
        return Err(Error::validation(field, "password must be 8 to 128 characters"));
    }
    Ok(())
}

/// 1–64 characters after trimming.
pub fn display_name(s: &str) -> Result<String, Error> {
    let t = s.trim();
    let n = t.chars().count();
    if !(1..=64).contains(&n) {
        return Err(Error::validation("display_name", "display name must be 1 to 64 characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(Error::validation("display_name", "display name may not hold control characters"));
    }
    Ok(t.to_owned())
}

/// An e-mail address: something@something.tld, at most 254 characters; empty clears it.
pub fn email(s: &str) -> Result<Option<String>, Error> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let ok = t.len() <= 254
        && !t.chars().any(|c| c.is_whitespace() || c.is_control())
        && t.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if !ok {
        return Err(Error::validation("email", "not a valid e-mail address"));
    }
    Ok(Some(t.to_owned()))
}

/// 1–100 characters after trimming.
pub fn room_name(s: &str) -> Result<String, Error> {
    let t = s.trim();
    let n = t.chars().count();
    if !(1..=100).contains(&n) {
        return Err(Error::validation("name", "room name must be 1 to 100 characters"));
    }
    no_nul("name", t)?;
    Ok(t.to_owned())
}

/// Up to 1000 characters; kept as trimmed.
pub fn topic(s: &str) -> Result<String, Error> {
    let t = s.trim();
    if t.chars().count() > 1000 {
        return Err(Error::validation("topic", "topic must be at most 1000 characters"));
    }
    no_nul("topic", t)?;
    Ok(t.to_owned())
}

/// 1–4000 characters after trimming. The body is kept as sent: trimming could change its
/// CommonMark meaning (an indented code block).
pub fn body(s: &str) -> Result<(), Error> {
    let n = s.trim().chars().count();
    if n == 0 {
        return Err(Error::validation("body", "message body may not be empty"));
    }
    if n > MAX_BODY_CHARS {
        return Err(Error::validation("body", "message body must be at most 4000 characters"));
    }
    no_nul("body", s)
}

/// Text is stored as it is sent, and no store keeps U+0000 (PostgreSQL's text cannot): a text
/// holding one breaks the charset rule.
fn no_nul(field: &str, s: &str) -> Result<(), Error> {
    if s.contains('\0') {
        return Err(Error::validation(field, format!("{field} may not hold the NUL character")));
    }
    Ok(())
}

/// The message a send replies to. An id holding U+0000 names no message: the same answer as for
/// an id that does not exist, given here because PostgreSQL cannot even look such an id up.
pub fn reply_to(id: &str) -> Result<(), Error> {
    if id.contains('\0') {
        return Err(Error::validation("reply_to", "no such message in this room"));
    }
    Ok(())
}

/// 1–64 characters, no control characters.
pub fn nonce(s: &str) -> Result<(), Error> {
    let n = s.chars().count();
    if n == 0 || n > MAX_NONCE_CHARS || s.chars().any(char::is_control) {
        return Err(Error::validation("nonce", "nonce must be 1 to 64 printable characters"));
    }
    Ok(())
}

/// A page size: default 50, 1–200.
pub fn page_limit(limit: Option<i64>) -> Result<i64, Error> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Error::validation("limit", "limit must be between 1 and 200")),
    }
}

/// A seq cursor: not negative.
pub fn seq(field: &str, seq: i64) -> Result<i64, Error> {
    if seq < 0 {
        return Err(Error::validation(field, "seq may not be negative"));
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_holding_nul_are_refused() {
        assert!(room_name("a\0b").is_err());
        assert!(topic("a\0b").is_err());
        assert!(body("a\0b").is_err());
        assert!(reply_to("a\0b").is_err());
        assert!(body("a b").is_ok() && room_name("a b").is_ok() && reply_to("m1").is_ok());
    }

    #[test]
    fn usernames_follow_the_contract() {
        assert!(username("al").is_err());
        assert!(username("alice.b-c_1").is_ok());
        assert!(username("alice smith").is_err());
        assert!(username("ålice").is_err());
        assert!(username(&"a".repeat(33)).is_err());
    }

    #[test]
    fn bodies_count_scalar_values_after_trimming() {
        assert!(body("   ").is_err());
        assert!(body(&"é".repeat(4000)).is_ok());
        assert!(body(&format!("  {}  ", "x".repeat(4000))).is_ok());
        assert!(body(&"x".repeat(4001)).is_err());
    }

    #[test]
    fn emails_are_checked_loosely() {
        assert_eq!(email("").ok(), Some(None));
        assert!(email("a@b.co").is_ok());
        assert!(email("nope").is_err());
        assert!(email("a@b").is_err());
    }
}
