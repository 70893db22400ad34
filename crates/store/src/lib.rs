//! parlor's storage drivers. Each driver owns its SQL and its migrations directory and implements
//! the domain's `Store` port. The embedded driver is SQLite (WAL, one writer connection, group
//! commit); PostgreSQL comes with the distributed mode.

pub mod sqlite;

pub use sqlite::SqliteStore;
