//! Slow hashes for passwords and phrases, random tokens and recovery phrases.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use base64::Engine;
use parlor_domain::{Error, Result};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use tokio::sync::Semaphore;

/// At most this many hashes run at once, one per core: more would not finish sooner, and each
/// takes 19 MiB, which the allocator of a blocking thread tends to keep (a burst of sign-ups
/// once left a server holding gigabytes).
fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// Runs one slow hash off the async threads, waiting for a free slot.
async fn slow<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let _slot = slots().acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(work).await.map_err(Error::internal)?
}

/// Hashes a secret with Argon2id (default parameters: 19 MiB, 2 passes), off the async threads.
pub async fn hash(secret: String) -> Result<String> {
    slow(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("argon2: {e}")))
    })
    .await
}

/// Checks a secret against an Argon2 hash in constant time, off the async threads.
pub async fn verify(secret: String, hash: String) -> Result<bool> {
    slow(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| Error::internal(format!("stored hash: {e}")))?;
        Ok(Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok())
    })
    .await
}

/// A new opaque refresh token: 256 random bits, base64url.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How a refresh token is stored: its SHA-256, hex. A fast hash is enough for 256 random bits.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new 12-word BIP-39 recovery phrase (128 bits of entropy).
pub fn new_phrase() -> Result<String> {
    let mut entropy = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut entropy);
    bip39::Mnemonic::from_entropy(&entropy)
        .map(|m| m.to_string())
        .map_err(|e| Error::internal(format!("bip39: {e}")))
}

/// A phrase as typed, reduced to the canonical form that is hashed: lower case, single spaces.
/// `None` if it is not a valid 12- or 24-word BIP-39 mnemonic.
pub fn normalise_phrase(typed: &str) -> Option<String> {
    let canonical = typed.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ");
    let words = canonical.split(' ').count();
    if words != 12 && words != 24 {
        return None;
    }
    bip39::Mnemonic::parse_normalized(&canonical).ok().map(|m| m.to_string())
}

type HmacSha256 = hmac::Hmac<Sha256>;

/// HMAC-SHA256 (which takes keys of any length, so the error case cannot happen).
fn mac(key: &[u8], message: &str) -> Vec<u8> {
    use hmac::Mac;
    match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(message.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// `<payload>.<mac of purpose+payload>`, base64url: a value that only the key's holder makes.
pub fn sign(key: &[u8], purpose_and_payload: &str, payload: &str) -> String {
    let engine = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}", engine.encode(payload), engine.encode(mac(key, purpose_and_payload)))
}

/// The payload of a value made by `sign` for `purpose`, if the MAC holds (compared in constant
/// time).
pub fn verify_signed(key: &[u8], purpose: &str, token: &str) -> Option<String> {
    use subtle::ConstantTimeEq;
    let engine = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, tag) = token.split_once('.')?;
    let payload = String::from_utf8(engine.decode(payload).ok()?).ok()?;
    let tag = engine.decode(tag).ok()?;
    let expected = mac(key, &format!("{purpose}{payload}"));
    (!expected.is_empty() && bool::from(expected.ct_eq(&tag))).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_values_verify_only_with_their_key_and_purpose() {
        let t = sign(b"key-one", "unsubscribe:u1", "u1");
        assert_eq!(verify_signed(b"key-one", "unsubscribe:", &t).as_deref(), Some("u1"));
        assert_eq!(verify_signed(b"key-two", "unsubscribe:", &t), None);
        assert_eq!(verify_signed(b"key-one", "other:", &t), None);
        assert_eq!(verify_signed(b"key-one", "unsubscribe:", "garbage"), None);
    }

    #[test]
    fn phrases_are_valid_mnemonics_and_normalise() {
        let p = new_phrase().expect("phrase");
        assert_eq!(p.split(' ').count(), 12);
        let typed = format!("  {}  ", p.to_uppercase().replace(' ', "\n "));
        assert_eq!(normalise_phrase(&typed).as_deref(), Some(p.as_str()));
        assert_eq!(normalise_phrase("not a phrase"), None);
    }

    #[tokio::test]
    async fn hashes_verify_only_their_secret() {
        let h = hash("correct horse".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), h.clone()).await.expect("verify"));
        assert!(!verify("wrong horse".into(), h).await.expect("verify"));
    }
}
