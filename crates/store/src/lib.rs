//! parlor's storage drivers. Each driver owns its SQL and its migrations directory and implements
//! the domain's `Store` port. The embedded driver is SQLite (WAL, one writer connection, group
//! commit); the distributed one is PostgreSQL.

mod jobs;
pub mod postgres;
mod rows;
pub mod sqlite;

pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;
