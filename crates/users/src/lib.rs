//! parlor's users role: accounts, sessions and tokens. Passwords and recovery phrases are kept
//! only as Argon2id hashes; access tokens are short-lived HS256 JWTs naming their session, which is
//! checked on every use so that logout kills them at once; refresh tokens are opaque, stored as
//! SHA-256 hashes, rotated on every use, and a reused one ends its whole session.

mod accounts;
mod secrets;
mod tokens;

pub use accounts::{AccountSettings, Accounts, Registered, SignedIn};
pub use tokens::{Authenticated, Claims, TokenPair};
