//! parlor's users role: accounts, sessions and tokens. Passwords and recovery phrases are kept
//! only as Argon2id hashes; access tokens are short-lived HS256 JWTs naming their session, which is
//! checked on every use so that logout kills them at once; refresh tokens are opaque, stored as
//! SHA-256 hashes, rotated on every use, and a reused one ends its whole session.

mod accounts;
mod secrets;
mod tokens;

pub use accounts::{AccountSettings, Accounts, Disabled, Registered, SignedIn};
pub use tokens::{Authenticated, Claims, TokenKeys, TokenPair};

/// Checks access tokens: in process (`Accounts`) or through the `Users` gRPC service.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync {
    /// Who a token speaks for: it must be well-formed, signed with our key, unexpired, and of a
    /// session that has not ended.
    async fn authenticate(&self, token: &str) -> parlor_domain::Result<Authenticated>;
}

#[async_trait::async_trait]
impl Authenticator for Accounts {
    async fn authenticate(&self, token: &str) -> parlor_domain::Result<Authenticated> {
        Accounts::authenticate(self, token).await
    }
}
