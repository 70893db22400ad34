//! Access tokens (HS256 JWTs) as the gateway checks them for every request and socket.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use parlor_users::{Authenticated, TokenKeys};
use serde::Deserialize;
use sha2::Sha256;
use std::sync::LazyLock;

/// The key the targets' tokens are signed with (the corpus holds tokens signed with it).
pub const SECRET: &[u8] = b"parlor-fuzzing-secret";

static KEYS: LazyLock<TokenKeys> = LazyLock::new(|| TokenKeys::new(SECRET));

/// Base64url as a lenient reader would take it: padding or none.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Payload {
    exp: Option<i64>,
    sub: Option<String>,
    sid: Option<String>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// What a token the check accepted must be: a header naming HS256, a payload whose `exp` is
/// still ahead and whose `sub` and `sid` are what the check returned, and a valid signature.
fn assert_sound(token: &str, auth: &Authenticated) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted {token:?}");
    let decode = |part: &str| -> Vec<u8> {
        LENIENT.decode(part).unwrap_or_else(|e| panic!("accepted {token:?}: {e}"))
    };
    // Read as jsonwebtoken reads them: the fields it needs, anything else ignored (a `Value` would
    // also refuse numbers out of range in fields nobody reads).
    let header: Header = serde_json::from_slice(&decode(parts[0]))
        .unwrap_or_else(|e| panic!("accepted {token:?} with a header {e}"));
    let payload: Payload = serde_json::from_slice(&decode(parts[1]))
        .unwrap_or_else(|e| panic!("accepted {token:?} with a payload {e}"));
    assert_eq!(header.alg, "HS256", "accepted {token:?}");
    let exp = payload.exp.unwrap_or_else(|| panic!("accepted {token:?} without an integer exp"));
    assert!(exp >= now() - 1, "accepted {token:?}, expired at {exp}");
    assert_eq!(payload.sub.as_deref(), Some(auth.user_id.as_str()), "accepted {token:?}");
    assert_eq!(payload.sid.as_deref(), Some(auth.session_id.as_str()), "accepted {token:?}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let signature = LENIENT.decode(parts[2]).unwrap_or_else(|e| panic!("accepted {token:?}: {e}"));
    assert!(mac.verify_slice(&signature).is_ok(), "accepted {token:?} with a bad signature");
}

/// Signs `header.payload` with [`SECRET`], as only the server could.
pub fn sign(header: &[u8], payload: &[u8]) -> String {
    let unsigned = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(unsigned.as_bytes());
    format!("{unsigned}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// A token checked as the gateway checks it; nothing may panic, and an accepted token must be
/// sound. The input is used twice: as a token as it stands, and, split at its first newline into
/// a header and a payload (or all payload under a plain HS256 header), signed with the right key,
/// so that the fuzzer reaches the checks behind the signature (algorithm, expiry, claims).
pub fn jwt(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(auth) = KEYS.check(&text) {
        assert_sound(&text, &auth);
    }
    let (header, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], data),
    };
    let token = sign(header, payload);
    if let Ok(auth) = KEYS.check(&token) {
        assert_sound(&token, &auth);
    }
}
