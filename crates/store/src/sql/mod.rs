//! The SQL both drivers run, written once. Statements use numbered placeholders (`$1`), which
//! PostgreSQL and SQLite both read, so a statement that differs only in its placeholders is not
//! copied: each port's methods are one body, expanded for `SqliteStore` and for `PostgresStore` by
//! a macro of this module's files (`user_store!`, `session_store!`, `room_store!`,
//! `message_store!`), given the driver's pools (SQLite writes on its one writer connection and
//! reads on its own pool; PostgreSQL has one pool for both) and its error mapping.
//!
//! Where the dialects really differ, a driver supplies the statement through `Dialect`, as it
//! supplies a batch's statements through `batch::BatchDb`.
//!
//! Macros rather than functions generic over `sqlx::Database`: each expansion is checked against
//! its driver's concrete types, where a generic body would need a bound for every type it binds or
//! reads and for every executor it runs on, repeated on every function.

pub(crate) mod messages;
pub(crate) mod rooms;
pub(crate) mod sessions;
pub(crate) mod users;

use parlor_domain::Result;

/// What a driver says in its own dialect. Every statement takes the parameters its doc names, in
/// that order, and selects the columns its doc names.
pub(crate) trait Dialect {
    /// Raises member (`$3` room, `$4` user)'s read marker to `$1`, capped at room `$2`'s
    /// `last_seq` and never lowered; returns `last_read_seq` (no row: not a member).
    const MARK_READ: &'static str;

    /// The public users (`rows::user`) whose `username_key` is in the list `$1`, as bound by
    /// `text_list`.
    const USERS_BY_KEYS: &'static str;

    /// A list of texts as `USERS_BY_KEYS` binds it.
    type TextList;

    /// Makes the bound list of `USERS_BY_KEYS`.
    fn text_list(items: Vec<String>) -> Result<Self::TextList>;

    /// Full-text search: messages (`message_cols!`, aliases `m` and `u`) not deleted, in the
    /// rooms of user `$1`, matching `$2` (made by `text_query`), in room `$4` unless `$3` is null
    /// (both bound to the same room), newest first (`m.created_at DESC, m.pk DESC`), at most `$5`.
    const SEARCH: &'static str;

    /// The text query `SEARCH` matches for the user's words, or none when no word is left.
    fn text_query(q: &str) -> Option<String>;
}

/// Implements `Store` (the health check, on the reading pool).
macro_rules! store {
    ($store:ty, reader: $reader:ident, db_err: $db_err:path) => {
        #[::async_trait::async_trait]
        impl ::parlor_domain::ports::Store for $store {
            async fn ping(&self) -> ::parlor_domain::Result<()> {
                ::sqlx::query("SELECT 1").execute(&self.$reader).await.map_err($db_err)?;
                Ok(())
            }
        }
    };
}
pub(crate) use store;
