//! The SQLite driver: the embedded store. One file in the data directory in WAL mode with
//! `synchronous = FULL`, so a commit survives a crash of the process and of the machine. Writes
//! go through a pool of one connection (SQLite has one writer anyway, and this way writers queue
//! in the pool instead of failing with SQLITE_BUSY); reads use a pool of their own.

mod dialect;
mod jobs;
mod messages;

use parlor_domain::{Error, Result};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// The one connection that writes.
    writer: SqlitePool,
    /// Connections that only read.
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies the migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::with_options(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens a database from a `sqlite:` URL.
    pub async fn open_url(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::internal(format!("bad SQLite URL: {e}")))?;
        Self::with_options(options).await
    }

    /// Opens with parlor's settings: WAL, fsync on every commit, foreign keys, and a busy wait.
    async fn with_options(options: SqliteConnectOptions) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|e| Error::internal(format!("cannot open the database: {e}")))?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| Error::internal(format!("cannot migrate the database: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| Error::internal(format!("cannot open the database: {e}")))?;
        Ok(Self { writer, reader })
    }

    /// Closes both pools, waiting for queries in flight.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

crate::sql::ports!(SqliteStore, writer: writer, reader: reader, db_err: db_err);

/// Maps a driver error to the domain's (`sql::db_error`); SQLite's own codes: a database busy
/// (5, 6), full (13) or that cannot be opened (14) is unavailable.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    crate::sql::db_error(e, |code, e| match code {
        "5" | "6" | "13" | "14" => {
            tracing::warn!(error = %e, "database busy or unwritable");
            Some(Error::Unavailable("the database is unavailable".into()))
        }
        _ => None,
    })
}
