//! The SQLite driver: the embedded store. One file in the data directory in WAL mode with
//! `synchronous = FULL`, so a commit survives a crash of the process and of the machine. Writes
//! go through a pool of one connection (SQLite has one writer anyway, and this way writers queue
//! in the pool instead of failing with SQLITE_BUSY); reads use a pool of their own.

/// Columns of a user record (see `rows::user_record`).
macro_rules! user_cols {
    () => {
        "id, username, display_name, created_at, email, email_notifications, password_hash, \
         phrase_hash, last_seen_at, disabled_at"
    };
}

/// Columns of a room, table alias `r` (see `rows::room`).
macro_rules! room_cols {
    () => {
        "r.id, r.kind, r.name, r.topic, r.visibility, r.owner_id, r.created_at, r.member_count, \
         r.last_seq"
    };
}

/// Columns of a message with its author, table aliases `m` and `u` (see `rows::message`).
macro_rules! message_cols {
    () => {
        "m.id, m.room_id, m.seq, m.body, m.html, m.mentions, m.reply_to, m.nonce, m.created_at, \
         m.edited_at, m.deleted, u.id AS u_id, u.username AS u_username, \
         u.display_name AS u_display_name, u.created_at AS u_created_at"
    };
}

mod jobs;
mod messages;
mod rooms;

mod sessions;
mod users;

use async_trait::async_trait;
use parlor_domain::ports::Store;
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

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await.map_err(db_err)?;
        Ok(())
    }
}

/// Maps a driver error to the domain's: unique violations are conflicts, a database that does
/// not answer is unavailable, the rest is internal.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict("already exists".into()),
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("5" | "6" | "13" | "14")) => {
            tracing::warn!(error = %e, "database busy or unwritable");
            Error::Unavailable("the database is unavailable".into())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::warn!(error = %e, "database unavailable");
            Error::Unavailable("the database is unavailable".into())
        }
        _ => Error::internal(format!("database: {e}")),
    }
}
