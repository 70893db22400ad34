//! The SQL both drivers run, written once. Statements use numbered placeholders (`$1`), which
//! PostgreSQL and SQLite both read, so a statement that differs only in its placeholders is not
//! copied: each port's methods are one body, expanded for `SqliteStore` and for `PostgresStore`
//! by a macro (`ports!`, and `message_store!`), given the driver's pools (SQLite writes on its
//! one writer connection and reads on a pool of its own; PostgreSQL has one pool for both) and
//! its error mapping.
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

use parlor_domain::{Error, Result};

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

/// Maps a driver error to the domain's: a unique violation is a conflict; then `by_code` says
/// what the driver's own error codes mean (given the code and the error); a pool that times out or
/// is closed, or a connection that fails, is unavailable; the rest is internal.
pub(crate) fn db_error(e: sqlx::Error, by_code: impl FnOnce(&str, &sqlx::Error) -> Option<Error>) -> Error {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return Error::Conflict("already exists".into());
        }
        if let Some(mapped) = d.code().and_then(|code| by_code(&code, &e)) {
            return mapped;
        }
    }
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            tracing::warn!(error = %e, "database unavailable");
            Error::Unavailable("the database is unavailable".into())
        }
        _ => Error::internal(format!("database: {e}")),
    }
}

/// Implements `Store`, `UserStore`, `SessionStore` and `RoomStore` for a driver, given the pool
/// that writes, the pool that reads and the driver's error mapping. (`MessageStore` is expanded
/// in the driver's `messages.rs`, beside the batch's statements, which read with its `load`.)
macro_rules! ports {
    ($store:ty, writer: $writer:ident, reader: $reader:ident, db_err: $db_err:path) => {
        #[::async_trait::async_trait]
        impl ::parlor_domain::ports::Store for $store {
            async fn ping(&self) -> ::parlor_domain::Result<()> {
                ::sqlx::query("SELECT 1").execute(&self.$reader).await.map_err($db_err)?;
                Ok(())
            }
        }
        $crate::sql::users::user_store!($store, writer: $writer, reader: $reader, db_err: $db_err);
        $crate::sql::sessions::session_store!($store, writer: $writer, reader: $reader, db_err: $db_err);
        $crate::sql::rooms::room_store!($store, writer: $writer, reader: $reader, db_err: $db_err);
    };
}
pub(crate) use ports;
