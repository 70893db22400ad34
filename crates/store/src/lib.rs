//! parlor's storage drivers. Each driver owns its migrations directory and implements the domain's
//! `Store` port; the SQL both dialects read is written once (`sql`, `batch`), and each driver owns
//! the statements its dialect says its own way. The embedded driver is SQLite (WAL, one writer connection, group
//! commit); the distributed one is PostgreSQL.

// First, so that its `*_cols!` macros are in scope in the modules below.
#[macro_use]
mod rows;

mod batch;
mod jobs;
pub mod postgres;
mod sql;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

/// Times one of the reads the gateway serves into `parlor_store_seconds{op}`, the same for every
/// driver: made first thing in the read, it records when dropped, on every way out (an answer,
/// an error, a cancelled request).
pub(crate) struct ReadTimer {
    op: &'static str,
    started: std::time::Instant,
}

impl ReadTimer {
    pub(crate) fn start(op: &'static str) -> Self {
        Self { op, started: std::time::Instant::now() }
    }
}

impl Drop for ReadTimer {
    fn drop(&mut self) {
        metrics::histogram!("parlor_store_seconds", "op" => self.op)
            .record(self.started.elapsed().as_secs_f64());
    }
}
