//! Access tokens: HS256 JWTs that name a user and a session.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use parlor_domain::{Error, Result, SessionId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// What an access token says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The session the token belongs to.
    pub sid: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

/// A token pair as the contract gives it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Who a valid access token speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Authenticated {
    pub user_id: UserId,
    pub session_id: SessionId,
}

/// Signs and checks access tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    /// Keys from the shared secret.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for a session, valid for `ttl_secs`.
    pub fn sign(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        now: Timestamp,
        ttl_secs: u64,
    ) -> Result<String> {
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            iat: now.seconds(),
            exp: now.seconds() + ttl_secs as i64,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(Error::internal)
    }

    /// The claims of a token that is well-formed, signed with our key by HS256, and not expired.
    pub fn check(&self, token: &str) -> Result<Authenticated> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| Error::Unauthorized("invalid or expired access token".into()))?;
        Ok(Authenticated { user_id: data.claims.sub.into(), session_id: data.claims.sid.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_check_only_with_their_key_and_until_they_expire() {
        let keys = TokenKeys::new(b"secret-one");
        let other = TokenKeys::new(b"secret-two");
        let t = keys.sign(&"u".into(), &"s".into(), Timestamp::now(), 60).expect("sign");
        assert_eq!(keys.check(&t).expect("valid").session_id, SessionId::from("s"));
        assert!(other.check(&t).is_err());
        let old =
            keys.sign(&"u".into(), &"s".into(), Timestamp::now().plus_millis(-120_000), 60).expect("sign");
        assert!(keys.check(&old).is_err());
    }
}
